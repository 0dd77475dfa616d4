"""The sample strategy: Qlib's TopkDropoutStrategy on a momentum signal, with crypto settings.

Crypto settings (field notes, all run here): a 24/7 calendar from the gold dataset, region "us" (trade
unit 1 and no price limit, so fractional amounts trade), ``limit_threshold=None``, fees as configured,
the default NumpyQuote (PandasQuote breaks on pandas 3), and annualisation over 365 days.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.backtest.config import BacktestConfig
from pipeline.backtest.funding import FundingCharge
from pipeline.errors import ConfigError
from pipeline.gold.verify import qlib_init


@dataclass(frozen=True)
class BacktestOutcome:
    report: pd.DataFrame  # Qlib's portfolio report: account, return, cost, bench, turnover, ... per step
    holdings: dict[pd.Timestamp, dict[str, float]]  # step -> instrument -> amount held after the step
    metrics: dict[str, float]
    start: pd.Timestamp
    end: pd.Timestamp
    funding: FundingCharge | None = None  # set by run_backtest: what perpetual positions paid in funding
    compare: pd.DataFrame | None = None  # without / with funding, side by side


def run_strategy(cfg: BacktestConfig, provider_uri: Path) -> BacktestOutcome:
    from qlib.backtest import backtest
    from qlib.backtest.executor import SimulatorExecutor
    from qlib.contrib.strategy import TopkDropoutStrategy
    from qlib.data import D

    qlib_init(provider_uri)
    calendar = D.calendar(freq=cfg.freq)
    if len(calendar) < 3:
        raise ConfigError(
            "backtest.dataset", f"{cfg.dataset} has {len(calendar)} {cfg.freq} slots", "publish more history first"
        )
    codes = D.list_instruments(D.instruments("all"), freq=cfg.freq, as_list=True)
    if cfg.benchmark.upper() not in {c.upper() for c in codes}:
        raise ConfigError(
            "backtest.benchmark", f"{cfg.benchmark!r} is not in {cfg.dataset}", f"use one of {sorted(codes)[:10]}"
        )
    raw = D.features(codes, [cfg.signal], freq=cfg.freq).iloc[:, 0]
    # Qlib strategies want the score indexed (datetime, instrument).
    signal = raw.swaplevel().sort_index().astype(float)
    defined = signal.dropna()
    if defined.empty:
        raise ConfigError(
            "backtest.signal",
            f"{cfg.signal!r} is never defined on {cfg.dataset}",
            "use a shorter look-back or more history",
        )
    start = pd.Timestamp(cfg.start) if cfg.start else defined.index.get_level_values(0).min()
    end = pd.Timestamp(cfg.end) if cfg.end else pd.Timestamp(calendar[-1])
    strategy = TopkDropoutStrategy(signal=signal, topk=cfg.topk, n_drop=cfg.n_drop, risk_degree=cfg.risk_degree)
    executor = SimulatorExecutor(time_per_step=cfg.freq, generate_portfolio_metrics=True)
    with warnings.catch_warnings():
        # Qlib averages empty windows on the future calendar slots: harmless, and noisy.
        warnings.filterwarnings("ignore", message="Mean of empty slice", category=RuntimeWarning)
        portfolio, _indicators = _run(backtest, start, end, strategy, executor, cfg)
    report, positions = next(iter(portfolio.values()))
    holdings = {
        pd.Timestamp(t): {c: float(p.get_stock_amount(c)) for c in p.get_stock_list()} for t, p in positions.items()
    }
    return BacktestOutcome(report, holdings, _metrics(report, cfg.annualization_days), start, end)


def _run(
    backtest: Any, start: pd.Timestamp, end: pd.Timestamp, strategy: Any, executor: Any, cfg: BacktestConfig
) -> Any:
    return backtest(
        start_time=start,
        end_time=end,
        strategy=strategy,
        executor=executor,
        benchmark=cfg.benchmark.upper(),
        account=cfg.account,
        exchange_kwargs=dict(
            freq=cfg.freq,
            limit_threshold=None,
            deal_price=cfg.deal_price,
            open_cost=cfg.open_cost,
            close_cost=cfg.close_cost,
            min_cost=cfg.min_cost,
            trade_unit=None,  # fractional amounts
            codes="all",
        ),
    )


def _metrics(report: pd.DataFrame, days: int) -> dict[str, float]:
    from qlib.contrib.evaluate import risk_analysis

    net = report["return"] - report["cost"]
    bench = report["bench"]
    strat = risk_analysis(net, N=days, freq=None)["risk"]
    excess = risk_analysis(net - bench, N=days, freq=None)["risk"]
    bench_r = risk_analysis(bench, N=days, freq=None)["risk"]
    values: dict[str, Any] = {
        # Qlib's convention: annualised return = mean step return x N (sum, not compound).
        "annualized_return": strat["annualized_return"],
        "information_ratio": strat["information_ratio"],
        "max_drawdown": strat["max_drawdown"],
        "excess_annualized_return": excess["annualized_return"],
        "excess_information_ratio": excess["information_ratio"],
        "excess_max_drawdown": excess["max_drawdown"],
        "benchmark_annualized_return": bench_r["annualized_return"],
        "total_return": float(np.prod(1 + net.to_numpy()) - 1),
        "benchmark_total_return": float(np.prod(1 + bench.to_numpy()) - 1),
        "turnover": float(report["turnover"].mean()),
        "total_cost": float((report["cost"] * report["account"].shift(1).fillna(report["account"].iloc[0])).sum()),
        "final_account": float(report["account"].iloc[-1]),
        "steps": len(report),
        "annualization_days": days,
    }
    return {k: float(v) for k, v in values.items()}
