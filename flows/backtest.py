"""The backtest flow: run the workflow's sample strategy on a gold dataset, publish the report.

Scheduled after gold (its deployment runs on the gold schedule's heels) and runnable by hand with
per-run ``overrides`` of ``config/workflow.toml`` [backtest]. One coarse task.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact

from pipeline.backtest import BacktestReport, run_backtest
from pipeline.backtest.report import PAGE, metrics_markdown
from pipeline.lake.location import resolve_lake


@task(name="run-backtest")
def backtest_task(
    lake: str | None,
    dataset: str | None,
    config_path: str | None,
    overrides: dict[str, Any] | None,
    gold_dir: str | None,
) -> BacktestReport:
    return run_backtest(
        resolve_lake(lake), dataset=dataset, config_path=config_path, overrides=overrides, gold_dir=gold_dir
    )


@flow(name="backtest", log_prints=True)
def backtest_flow(
    lake: str | None = None,
    dataset: str | None = None,
    config_path: str | None = None,
    overrides: dict[str, Any] | None = None,
    gold_dir: str | None = None,
) -> dict[str, Any]:
    report = backtest_task(lake, dataset, config_path, overrides, gold_dir)
    title = f"Backtest {report.config.dataset}: {report.report_dir.name}"
    create_markdown_artifact(
        key="backtest-metrics",
        markdown=metrics_markdown(report.metrics, title),
        description=f"backtest of {report.config.dataset}: the strategy's metrics (net of fees) against the benchmark",
    )
    create_link_artifact(
        key="backtest-report",
        link=(report.report_dir / PAGE).as_uri(),
        link_text=f"{title} (report.html)",
        description=f"backtest of {report.config.dataset}: report.html with the equity curve, metrics and configuration",
    )
    return {"report_dir": str(report.report_dir), "metrics": report.metrics}
