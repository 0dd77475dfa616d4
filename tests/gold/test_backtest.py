"""The sample backtest on a known synthetic market, its report, and its configuration."""

from __future__ import annotations

import json

import pytest

from pipeline.backtest import load_backtest_config, run_backtest
from pipeline.errors import ConfigError
from pipeline.gold import publish_qlib
from tests.gold.gold_synthetic import candles, write


def trending_market(lake, gold_dir):
    """UP rises ~1 %/day, DOWN falls, FLAT and the benchmark wander: momentum must pick UP."""
    write(
        lake,
        candles("UP", "1d", range(90), drift=0.01, seed=1),
        candles("FLAT", "1d", range(90), seed=2),
        candles("DOWN", "1d", range(90), drift=-0.01, seed=3),
        candles("BTC-USDT-SWAP", "1d", range(90), seed=4),
    )
    publish_qlib(lake, gold_dir=gold_dir, freqs=("day",))


def test_momentum_backtest_holds_the_trend_and_writes_a_report(lake, gold_dir):
    trending_market(lake, gold_dir)
    report = run_backtest(
        lake, dataset="okx-swap", gold_dir=gold_dir, overrides={"topk": 1, "n_drop": 1}, run_name="t1"
    )
    m = report.metrics
    # 90 daily bars, the 20-day momentum is defined from day 20 on: 70 steps to the last day.
    assert m["steps"] == 70 and m["annualization_days"] == 365
    held = [set(h) for h in report.holdings.values()]
    assert sum(h == {"UP"} for h in held) >= 0.9 * len(held)
    assert "DOWN" not in set().union(*held)
    assert m["total_return"] > 0.5 and m["total_return"] > m["benchmark_total_return"] + 0.4
    assert m["annualized_return"] > 0 and m["excess_annualized_return"] > 0
    assert -1 < m["max_drawdown"] <= 0 and 0 < m["turnover"] < 1 and m["total_cost"] > 0
    # The report: three files, a real PNG, and metrics.json that says the same as the return value.
    assert report.report_dir.parent.parent == gold_dir / "reports" and report.report_dir.name == "t1"
    assert sorted(p.name for p in report.report_dir.iterdir()) == ["equity.png", "metrics.json", "report.html"]
    assert (report.report_dir / "equity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads((report.report_dir / "metrics.json").read_text())
    assert doc["metrics"] == pytest.approx(m) and doc["config"]["topk"] == 1
    page = (report.report_dir / "report.html").read_text()
    assert 'src="equity.png"' in page and "information_ratio" in page and "benchmark_annualized_return" in page


def test_workflow_file_and_overrides():
    cfg = load_backtest_config()  # config/workflow.toml of the repo
    assert (cfg.signal, cfg.topk, cfg.n_drop, cfg.annualization_days) == ("$close/Ref($close,20)-1", 2, 1, 365)
    assert load_backtest_config(overrides={"topk": "3", "open_cost": "0.0005"}).topk == 3
    with pytest.raises(ConfigError, match=r"backtest\.topk"):
        load_backtest_config(overrides={"topk": "many"})
    with pytest.raises(ConfigError, match=r"backtest\.colour"):
        load_backtest_config(overrides={"colour": "red"})
    with pytest.raises(ConfigError, match="n_drop"):
        load_backtest_config(overrides={"topk": 1, "n_drop": 2})


def test_backtest_needs_a_published_dataset(lake, gold_dir):
    with pytest.raises(ConfigError, match="not published"):
        run_backtest(lake, dataset="okx-swap", gold_dir=gold_dir)
