"""Funding charged on perpetual positions after Qlib's backtest (issue #17): the charge, and the report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pipeline.backtest import run_backtest
from pipeline.backtest.funding import charge_funding, side_by_side, with_funding
from pipeline.gold import publish_qlib
from pipeline.lake import writer
from pipeline.lake.tables import SILVER_FUNDING
from tests.gold.gold_synthetic import START, candles, write

DAY = pd.Timedelta(days=1)


def _settlements(inst: str, first: pd.Timestamp, count: int, hours: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    times = [first + pd.Timedelta(hours=hours * k) for k in range(count)]
    return pd.DataFrame({"instrument": inst, "funding_time": times, "rate": rng.uniform(-0.001, 0.002, count)})


def test_a_constant_long_pays_notional_times_rate_at_every_settlement_it_is_held_across():
    steps = [pd.Timestamp("2024-01-01") + k * DAY for k in range(10)]  # daily steps: bars end at the next 00:00
    holdings = {t: {"PERP": 2.5} for t in steps}
    settle = _settlements("PERP", pd.Timestamp("2024-01-01"), 3 * 12, 8, seed=7)  # every 8 h for 12 days
    marks = settle[["instrument", "funding_time"]].assign(mark=100.0 + np.arange(len(settle)))
    charge = charge_funding(holdings, settle, marks, "day")

    # Held from the first trade (the close of day 0, 2024-01-02 00:00) until the last step trades (close of
    # day 9 = 2024-01-11 00:00): every settlement in [Jan 2, Jan 11) is paid, each at its own price.
    held_from, held_to = steps[0] + DAY, steps[-1] + DAY
    inside = marks[(marks.funding_time >= held_from) & (marks.funding_time < held_to)]
    rates = settle.set_index("funding_time").loc[inside.funding_time, "rate"].to_numpy()
    expected = -(2.5 * inside["mark"].to_numpy() * rates).sum()
    assert len(charge.cashflows) == len(inside) == 27
    assert charge.total == pytest.approx(expected, rel=1e-12)
    assert charge.per_step.sum() == pytest.approx(expected, rel=1e-12)
    # A positive rate costs a long: the sign follows the rate.
    assert (np.sign(charge.cashflows["payment"]) == -np.sign(charge.cashflows["rate"])).all()


def test_a_short_receives_and_nothing_is_charged_for_what_is_not_held():
    steps = [pd.Timestamp("2024-01-01") + k * DAY for k in range(4)]
    holdings = {t: {"PERP": -1.0, "SPOT": 3.0} for t in steps}
    settle = pd.DataFrame(
        {"instrument": ["PERP", "OTHER"], "funding_time": [steps[1] + DAY / 3] * 2, "rate": [0.001, 0.001]}
    )
    marks = settle[["instrument", "funding_time"]].assign(mark=50.0)
    charge = charge_funding(holdings, settle, marks, "day")
    assert list(charge.cashflows["instrument"]) == ["PERP"]
    assert charge.total == pytest.approx(1.0 * 50.0 * 0.001)


def test_a_held_position_without_a_price_is_an_error_not_a_free_ride():
    steps = [pd.Timestamp("2024-01-01") + k * DAY for k in range(3)]
    settle = pd.DataFrame({"instrument": ["PERP"], "funding_time": [steps[1] + DAY / 2], "rate": [0.001]})
    marks = settle[["instrument", "funding_time"]].assign(mark=np.nan)
    with pytest.raises(ValueError, match="no mark price for PERP"):
        charge_funding({t: {"PERP": 1.0} for t in steps}, settle, marks, "day")


def test_side_by_side_compares_the_same_account_with_and_without_funding():
    index = pd.DatetimeIndex([pd.Timestamp("2024-01-01") + k * DAY for k in range(3)])
    report = pd.DataFrame({"account": [100.0, 110.0, 121.0], "return": 0.1, "cost": 0.0}, index=index)
    steps = list(index)
    settle = pd.DataFrame({"instrument": ["P"], "funding_time": [steps[1] + DAY / 2], "rate": [0.01]})
    charge = charge_funding({t: {"P": 1.0} for t in steps}, settle, settle.assign(mark=100.0), "day")
    funded = with_funding(report, charge, 100.0)
    # Jan 2 12:00 falls in the holding over bar 1 (Jan 2), booked to step 1: 1 x 100 x 1 % paid.
    assert list(funded["account_funded"]) == [100.0, 109.0, 120.0]
    compare = side_by_side(funded, 100.0, 365)
    assert compare.loc["total_return", "without funding"] == pytest.approx(0.21)
    assert compare.loc["total_return", "with funding"] == pytest.approx(0.20)


def test_the_backtest_report_shows_funding_paid_by_its_perpetual_positions(lake, gold_dir):
    """A momentum strategy holds UP (a perpetual with a constant positive rate every 8 h): the report's funding
    equals the sum over settlements of amount held x close x rate, computed here from the holdings and candles."""
    bars = candles("UP", "1d", range(60), drift=0.01, seed=1)
    write(lake, bars, candles("DOWN", "1d", range(60), drift=-0.01, seed=3), candles("BTC-USDT-SWAP", "1d", range(60)))
    publish_qlib(lake, gold_dir=gold_dir, freqs=("day",))
    times = pd.date_range(START, periods=60 * 3, freq="8h")
    writer.append(
        lake,
        SILVER_FUNDING,
        pa.table(
            {
                "venue": ["okx"] * len(times),
                "instrument": ["UP"] * len(times),
                "funding_time": pa.array(times.to_pydatetime(), pa.timestamp("us", tz="UTC")),
                "funding_rate": [0.0001] * len(times),
                "interval_hours": [8.0] * len(times),
                "rate_cap": [0.0075] * len(times),
                "source": ["rest"] * len(times),
            },
            schema=SILVER_FUNDING.schema,
        ),
    )
    report = run_backtest(lake, dataset="okx-swap", gold_dir=gold_dir, overrides={"topk": 1, "n_drop": 1}, run_name="f")
    m = report.metrics

    close = pd.Series(bars.column("close").to_numpy(), index=pd.DatetimeIndex(range(60)).map(lambda k: k))
    close.index = pd.DatetimeIndex([START.replace(tzinfo=None) + k * DAY for k in range(60)])
    steps = sorted(report.holdings)
    expected = 0.0
    for i, step in enumerate(steps[:-1]):  # held over the next step's bar: settlements in [end of bar i, end of i+1)
        amount = report.holdings[step].get("UP", 0.0)
        lo, hi = step + DAY, steps[i + 1] + DAY
        for t in times.tz_localize(None):
            if lo <= t < hi and amount:
                expected -= amount * close[close.index + DAY <= t].iloc[-1] * 0.0001
    assert expected < 0 and m["funding_pnl"] == pytest.approx(expected, rel=1e-4)  # float32 closes in Qlib
    assert m["funding_settlements"] > 100
    assert m["total_return_with_funding"] < m["total_return"]
    doc = json.loads((report.report_dir / "metrics.json").read_text())
    assert doc["metrics"]["funding_pnl"] == pytest.approx(m["funding_pnl"])
    page = (report.report_dir / "report.html").read_text()
    assert "with funding" in page and "without funding" in page and "Settlements paid" in page
