"""Backtests on a published gold dataset: a sample Qlib strategy with crypto settings and a report.

report = run_backtest(lake, dataset="okx-swap", overrides={"topk": 3})
report.report_dir / "report.html"
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.backtest.config import BacktestConfig, load_backtest_config
from pipeline.backtest.funding import funding_for, side_by_side, with_funding
from pipeline.backtest.report import write_report
from pipeline.backtest.strategy import BacktestOutcome, run_strategy
from pipeline.errors import ConfigError
from pipeline.gold.publish import gold_root
from pipeline.lake.location import Lake

__all__ = ["BacktestConfig", "BacktestReport", "load_backtest_config", "run_backtest"]


@dataclass(frozen=True)
class BacktestReport:
    report_dir: Path
    metrics: dict[str, float]
    config: BacktestConfig
    files: dict[str, Path]
    holdings: dict[pd.Timestamp, dict[str, float]]


def run_backtest(
    lake: Lake,
    *,
    dataset: str | None = None,
    config_path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    gold_dir: str | Path | None = None,
    run_name: str | None = None,
) -> BacktestReport:
    """Run the workflow's backtest on ``gold/qlib/<dataset>``; the report lands in
    ``gold/reports/<UTC date>/<run>/`` (metrics.json, equity.png, report.html)."""
    merged = dict(overrides or {})
    if dataset is not None:
        merged["dataset"] = dataset
    cfg = load_backtest_config(config_path, merged)
    root = gold_root(lake, gold_dir)
    provider = root / "qlib" / cfg.dataset
    if not provider.exists():
        raise ConfigError("backtest.dataset", f"{provider} is not published", "run `cryptolake gold` first")
    now = datetime.now(UTC)
    run = run_name or f"{now:%H%M%S}-{cfg.dataset}-{uuid.uuid4().hex[:6]}"
    if "/" in run or "\\" in run or run.startswith("."):
        raise ConfigError("run_name", f"{run!r} would leave the reports folder", "use letters, digits, '-' and '_'")
    outcome = run_strategy(cfg, provider)
    outcome = _charge_funding(lake, outcome, cfg)
    folder = root / "reports" / f"{now:%Y-%m-%d}" / run
    title = f"{cfg.dataset} TopkDropout(topk={cfg.topk}, n_drop={cfg.n_drop}) on {cfg.signal}"
    files = write_report(folder, outcome, cfg.as_dict(), title)
    return BacktestReport(folder, outcome.metrics, cfg, files, outcome.holdings)


def _charge_funding(lake: Lake, outcome: BacktestOutcome, cfg: BacktestConfig) -> BacktestOutcome:
    """Funding on the perpetual positions (silver/funding), booked after Qlib's run: see backtest.funding."""
    charge = funding_for(lake, outcome.holdings, outcome.start, outcome.end, cfg.freq)
    report = with_funding(outcome.report, charge, cfg.account)
    compare = side_by_side(report, cfg.account, cfg.annualization_days)
    metrics = dict(outcome.metrics)
    metrics["funding_pnl"] = charge.total
    metrics["funding_settlements"] = float(len(charge.cashflows))
    metrics["total_return_with_funding"] = float(compare.loc["total_return", "with funding"])
    metrics["final_account_with_funding"] = float(compare.loc["final_account", "with funding"])
    return replace(outcome, report=report, metrics=metrics, funding=charge, compare=compare)
