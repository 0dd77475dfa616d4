"""Perpetual datasets' extra Qlib fields (issue #17): $funding read back through Qlib's own reader equals
silver/funding summed per bar; $oi, $basis, $liq_buy, $liq_sell equal silver/derivative_bars aggregated;
spot datasets have none; a change in those tables republishes (incremental after the calendar, else in
full); a backtest signal can use $funding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pipeline.backtest import run_backtest
from pipeline.errors import ConfigError
from pipeline.gold import publish_qlib, read_back
from pipeline.gold.verify import qlib_init
from pipeline.lake import writer
from pipeline.lake.tables import SILVER_DERIVATIVE_BARS, SILVER_FUNDING
from tests.gold.gold_synthetic import START_US, candles, write

MIN_US, HOUR_US, DAY_US = 60_000_000, 3_600_000_000, 86_400_000_000
DAYS = 2
FIELDS = ["funding", "oi", "basis", "liq_buy", "liq_sell"]


def _funding(rows: list[tuple[str, int, float]]) -> pa.Table:
    """silver/funding rows (instrument, funding time in us, rate)."""
    return pa.table(
        {
            "venue": ["okx"] * len(rows),
            "instrument": [r[0] for r in rows],
            "funding_time": pa.array([r[1] for r in rows], pa.timestamp("us", tz="UTC")),
            "funding_rate": [r[2] for r in rows],
            "interval_hours": [8.0] * len(rows),
            "rate_cap": [0.0075] * len(rows),
            "source": ["rest"] * len(rows),
        },
        schema=SILVER_FUNDING.schema,
    )


def _derivative_bars(inst: str, minutes: np.ndarray, seed: int) -> pa.Table:
    """silver/derivative_bars rows at these minute slots: open interest in USD or in coins (then x mark),
    some bars without a basis, liquidations on a few."""
    rng = np.random.default_rng(seed)
    n = len(minutes)
    open_us = START_US + minutes * MIN_US
    mark = 100 + rng.uniform(0, 5, n)
    index = mark * (1 - rng.uniform(-0.001, 0.001, n))
    usd = np.where(rng.random(n) < 0.5, rng.uniform(1e6, 2e6, n), np.nan)
    ccy = rng.uniform(1e4, 2e4, n)
    basis = np.where(rng.random(n) < 0.8, mark / index - 1, np.nan)
    liq = rng.random(n) < 0.1
    return pa.table(
        {
            "venue": ["okx"] * n,
            "market": ["swap"] * n,
            "instrument": [inst] * n,
            "open_time": pa.array(open_us, pa.timestamp("us", tz="UTC")),
            "close_time": pa.array(open_us + MIN_US, pa.timestamp("us", tz="UTC")),
            "mark_open": mark, "mark_high": mark, "mark_low": mark, "mark_close": mark,
            "index_close": index,
            "basis": pa.array(basis, pa.float64(), from_pandas=True),
            "open_interest": ccy * 10,
            "open_interest_ccy": ccy,
            "open_interest_usd": pa.array(usd, pa.float64(), from_pandas=True),
            "funding_rate": rng.uniform(-1e-4, 1e-4, n),
            "liq_buy_volume": np.where(liq, rng.uniform(0, 3, n), 0.0),
            "liq_sell_volume": np.where(liq, rng.uniform(0, 3, n), 0.0),
            "liq_buy_count": np.where(liq, 1, 0).astype(np.int64),
            "liq_sell_count": np.where(liq, 1, 0).astype(np.int64),
            "date": pa.array((open_us // DAY_US).astype(np.int32), pa.date32()),
        },
        schema=SILVER_DERIVATIVE_BARS.schema,
    )  # fmt: skip


def _candles_all(inst: str, seed: int, *, market: str = "swap", minutes: int = DAYS * 1440) -> list[pa.Table]:
    hole = np.arange(minutes) != 777  # one minute without a candle: its settlement-free slot stays NaN
    return [
        candles(inst, "1m", np.arange(minutes)[hole], market=market, seed=seed),
        candles(inst, "1h", range(minutes // 60), market=market, seed=seed + 1),
        candles(inst, "1d", range(minutes // 1440), market=market, seed=seed + 2),
    ]


def _expected(funding: pd.DataFrame, dbars: pd.DataFrame, step_us: int) -> pd.DataFrame:
    """Per (instrument, bar open us): the fields computed here with pandas, from the silver rows."""
    f = funding.assign(t=funding.us // step_us * step_us).groupby(["instrument", "t"])["rate"].sum().rename("funding")
    d = dbars.assign(t=dbars.us // step_us * step_us).sort_values("us")
    d["oi"] = d.usd.fillna(d.ccy * d.mark)
    g = d.groupby(["instrument", "t"])
    return pd.concat(
        [
            f,
            g["oi"].agg(lambda s: s.dropna().iloc[-1] if s.notna().any() else np.nan),
            g["basis"].agg(lambda s: s.dropna().iloc[-1] if s.notna().any() else np.nan),
            g["liq_buy"].sum(),
            g["liq_sell"].sum(),
        ],
        axis=1,
    )


def _frames(tables: list[pa.Table]) -> pd.DataFrame:
    table = pa.concat_tables(tables)
    t = table.to_pandas()
    return pd.DataFrame(
        {
            "instrument": t.instrument,
            "us": table.column("open_time").cast(pa.int64()).to_numpy(),
            "usd": t.open_interest_usd,
            "ccy": t.open_interest_ccy,
            "mark": t.mark_close,
            "basis": t.basis,
            "liq_buy": t.liq_buy_volume,
            "liq_sell": t.liq_sell_volume,
        }
    )


@pytest.fixture
def perp_lake(lake):
    write(lake, *_candles_all("BTC-USDT-SWAP", 1), *_candles_all("ETH-USDT-SWAP", 5))
    write(lake, *_candles_all("BTC-USDT", 9, market="spot", minutes=1440))
    eight_h = 8 * HOUR_US
    rows = [("BTC-USDT-SWAP", START_US + k * eight_h, 1e-4 * (k + 1)) for k in range(3 * DAYS)]
    rows += [("ETH-USDT-SWAP", START_US + k * HOUR_US, -2e-5 * (k % 5)) for k in range(24 * DAYS)]
    rows += [("ETH-USDT-SWAP", START_US + 777 * MIN_US + 30_000_000, 5e-5)]  # inside the candle-less minute
    rows += [("XRP-USDT-SWAP", START_US, 1e-4)]  # no candles: not published
    writer.append(lake, SILVER_FUNDING, _funding(rows))
    dbars = [
        _derivative_bars("BTC-USDT-SWAP", np.arange(0, DAYS * 1440, 3), 11),
        _derivative_bars("ETH-USDT-SWAP", np.arange(5, DAYS * 1440, 7), 12),
    ]
    writer.append(lake, SILVER_DERIVATIVE_BARS, pa.concat_tables(dbars))
    funding = pd.DataFrame(rows, columns=["instrument", "us", "rate"])
    return lake, funding, _frames(dbars)


def _tree(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _qlib(path, instruments: list[str], freq: str) -> pd.DataFrame:
    from qlib.data import D

    qlib_init(path)
    got = D.features([i.upper() for i in instruments], [f"${f}" for f in FIELDS], freq=freq)
    got.columns = FIELDS
    flat = got.reset_index()
    flat["t"] = flat["datetime"].astype("datetime64[us]").astype("int64")
    flat["instrument"] = flat["instrument"].str.upper()
    return flat.set_index(["instrument", "t"])[FIELDS]


@pytest.mark.parametrize("freq,step_us", [("day", DAY_US), ("60min", HOUR_US), ("1min", MIN_US)])
def test_qlib_reads_the_perpetual_fields_as_silver_aggregated_per_bar(perp_lake, gold_dir, freq, step_us):
    lake, funding, dbars = perp_lake
    report = publish_qlib(lake, gold_dir=gold_dir, freqs=(freq,))
    swap = next(d for d in report.datasets if d.dataset == "okx-swap")
    got = _qlib(swap.path, ["BTC-USDT-SWAP", "ETH-USDT-SWAP"], freq)
    want = _expected(funding, dbars, step_us)
    want.index = want.index.set_levels(want.index.levels[0].str.upper(), level=0)
    assert len(got) == {"day": 2, "60min": 48, "1min": 2879}[freq] * 2  # every slot of the calendar (a hole)
    for f in FIELDS:
        w = want[f].reindex(got.index).astype(np.float32).to_numpy()
        g = got[f].to_numpy()
        assert np.array_equal(np.isnan(w), np.isnan(g)), f
        assert np.allclose(g[~np.isnan(g)], w[~np.isnan(w)], rtol=1e-6), f
        assert (~np.isnan(g)).any(), f
    if freq == "day":  # the day's total of the settlements inside it
        day0 = got.loc[("BTC-USDT-SWAP", START_US), "funding"]
        assert day0 == pytest.approx(np.float32(1e-4 + 2e-4 + 3e-4))
    if freq == "1min":  # a settlement in a minute without a candle is not published; settlement-free bars NaN
        assert ("ETH-USDT-SWAP", START_US + 777 * MIN_US) not in got.index
        assert np.isnan(got.loc[("BTC-USDT-SWAP", START_US + MIN_US), "funding"])
    back = read_back(lake, swap.path, dataset="okx-swap", venue="okx", market="swap", freqs=(freq,))
    assert back.ok and back.checked_bars == len(got)


def test_spot_datasets_have_no_perpetual_fields(perp_lake, gold_dir):
    lake, _, _ = perp_lake
    report = publish_qlib(lake, gold_dir=gold_dir, freqs=("day",))
    spot = next(d for d in report.datasets if d.dataset == "okx-spot")
    swap = next(d for d in report.datasets if d.dataset == "okx-swap")
    assert not list(spot.path.glob("features/*/funding.day.bin"))
    assert {p.name for p in swap.path.glob("features/btc-usdt-swap/*.day.bin")} >= {f"{f}.day.bin" for f in FIELDS}
    assert read_back(lake, spot.path, dataset="okx-spot", venue="okx", market="spot", freqs=("day",)).ok


def test_a_change_in_the_field_tables_republishes_the_dataset(perp_lake, gold_dir):
    lake, _, _ = perp_lake
    freqs = ("day", "60min")
    first = {d.dataset: d for d in publish_qlib(lake, gold_dir=gold_dir, freqs=freqs).datasets}
    assert first["okx-swap"].mode == "full"
    again = {d.dataset: d for d in publish_qlib(lake, gold_dir=gold_dir, freqs=freqs).datasets}
    assert again["okx-swap"].mode == "unchanged"

    # a new day of candles and its settlements, after the published calendar: incremental
    nxt = START_US + DAYS * DAY_US
    write(
        lake,
        candles("BTC-USDT-SWAP", "1d", range(DAYS, DAYS + 1), seed=3),
        candles("BTC-USDT-SWAP", "1h", range(48, 72), seed=4),
    )
    new = [("BTC-USDT-SWAP", nxt + k * 8 * HOUR_US, 3e-4) for k in range(3)]
    writer.append(lake, SILVER_FUNDING, _funding(new))
    inc = {d.dataset: d for d in publish_qlib(lake, gold_dir=gold_dir, freqs=freqs).datasets}
    assert inc["okx-swap"].mode == "incremental"
    # the same bytes as a full rebuild of the same silver
    rebuilt = {d.dataset: d for d in publish_qlib(lake, gold_dir=gold_dir.parent / "rebuilt", freqs=freqs).datasets}
    assert rebuilt["okx-swap"].mode == "full"
    assert _tree(inc["okx-swap"].version_dir) == _tree(rebuilt["okx-swap"].version_dir)
    got = _qlib(inc["okx-swap"].path, ["BTC-USDT-SWAP"], "day")
    assert got.loc[("BTC-USDT-SWAP", nxt), "funding"] == pytest.approx(np.float32(9e-4))

    # a backfilled settlement inside published history: the dataset is rebuilt with it
    writer.append(lake, SILVER_FUNDING, _funding([("BTC-USDT-SWAP", START_US + 4 * HOUR_US, 1e-3)]))
    full = {d.dataset: d for d in publish_qlib(lake, gold_dir=gold_dir, freqs=freqs).datasets}
    assert full["okx-swap"].mode == "full" and full["okx-spot"].mode == "unchanged"
    got = _qlib(full["okx-swap"].path, ["BTC-USDT-SWAP"], "day")
    assert got.loc[("BTC-USDT-SWAP", START_US), "funding"] == pytest.approx(np.float32(1e-4 + 2e-4 + 3e-4 + 1e-3))
    assert read_back(lake, full["okx-swap"].path, dataset="okx-swap", venue="okx", market="swap", freqs=freqs).ok


def test_a_backtest_signal_can_use_funding(lake, gold_dir):
    """0-$funding prefers the perpetual that pays its longs: DOWN (negative rates) over UP, whatever the prices."""
    write(
        lake,
        candles("UP", "1d", range(40), drift=0.01, seed=1),
        candles("DOWN", "1d", range(40), drift=-0.01, seed=3),
        candles("BTC-USDT-SWAP", "1d", range(40)),
    )
    times = [START_US + k * 8 * HOUR_US for k in range(40 * 3)]
    rows = [(inst, t, rate) for t in times for inst, rate in (("UP", 1e-4), ("DOWN", -1e-4), ("BTC-USDT-SWAP", 0.0))]
    writer.append(lake, SILVER_FUNDING, _funding(rows))
    publish_qlib(lake, gold_dir=gold_dir, freqs=("day",))
    report = run_backtest(
        lake, dataset="okx-swap", gold_dir=gold_dir, overrides={"topk": 1, "n_drop": 0, "signal": "0-$funding"},
        run_name="funding-signal",
    )  # fmt: skip
    held = {inst for h in report.holdings.values() for inst, amount in h.items() if amount}
    assert held == {"DOWN"}
    assert report.metrics["funding_pnl"] > 0  # a long in a negative rate is paid
    with pytest.raises(ConfigError, match=r"\$funding is not a field"):
        run_backtest(lake, dataset="okx-spot", gold_dir=gold_dir, overrides={"signal": "0-$funding"}, run_name="x")
