"""The silver flow: Prefect around ``pipeline.silver.run_silver``.

One coarse task does the run (per run, never per row or file). Every contract failure becomes a
``cryptolake.contract.failed`` event (row-level ones with ``fatal=False``) and the run writes a markdown
artifact listing them (beside the data-quality table artifact every run writes); a table-level failure (schema drift, failing share over ``fail_share``) then fails
the flow run.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.alerts import emit_contract_failure
from pipeline.lake.location import resolve_lake
from pipeline.silver import SilverReport, run_silver
from pipeline.silver.run import DEFAULT_MAX_ROWS


@task(name="silver-run")
def silver_task(
    lake: str | None, lateness_secs: float, now_ms: int | None, fail_share: float, max_rows: int, restate_candles: bool
) -> SilverReport:
    logger = get_run_logger()
    return run_silver(
        resolve_lake(lake),
        lateness_secs=lateness_secs,
        now_ms=now_ms,
        fail_share=fail_share,
        max_rows=max_rows,
        progress=lambda r: logger.info(r.progress_line()),
        restate_candles=restate_candles,
    )


@flow(name="silver", log_prints=True)
def silver_flow(
    lake: str | None = None,
    lateness_secs: float = 60.0,
    now_ms: int | None = None,
    fail_share: float = 0.05,
    max_rows: int = DEFAULT_MAX_ROWS,
    restate_candles: bool = False,
) -> dict[str, int]:
    """Validate what bronze gained since the last run into silver trades, candles and quote bars (a backlog
    over ``max_rows`` new rows per bronze table in several committed passes). ``restate_candles``: recompute
    every published bar from silver/trades and rewrite those that differ (a manual run after a fix)."""
    report = silver_task(lake, lateness_secs, now_ms, fail_share, max_rows, restate_candles)
    announce(
        report,
        f"silver run {report.run_id}: per bronze table rows read, passed, quarantined by rule, "
        "duplicates dropped and the bronze version reached (watermark)",
    )
    if report.failures:
        create_markdown_artifact(
            key="silver-contract-failures",
            markdown=report.markdown(),
            description=f"silver run {report.run_id}: contract failures by table and rule, with a sample row",
        )
    report.raise_for_fatal()
    return report.written


def announce(report: SilverReport, quality_description: str) -> None:
    """A silver run's report in the flow: its lines in the log, one contract-failure event per failed rule, and
    the data-quality table artifact (every run, failed or not, so the UI shows the trend of what bronze
    delivered and what was held back). The silver flow and the fan-out flow both end with it."""
    logger = get_run_logger()
    for line in report.lines():
        logger.info(line)
    for f in report.failures:
        emit_contract_failure(
            table=f.table,
            rule=f.rule,
            failed_rows=f.failed_rows,
            total_rows=f.total_rows,
            sample=f.sample,
            fatal=f.fatal,
        )
    create_table_artifact(key="silver-data-quality", table=report.quality_rows(), description=quality_description)
