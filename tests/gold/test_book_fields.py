"""The book fields of the Qlib datasets (issue #16): $spread, $imb1, $imb5, $microprice, $depth10, $depth50,
$ofi, $book_cover read back through Qlib's own reader equal silver/book_features aggregated per bar here
with pandas (coverage-weighted means, last, sum, covered share; the most covered channel of a minute), at
1min, 60min and day; gold's read-back passes; a backtest signal on $imb1 runs, from the API and the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pipeline.backtest import run_backtest
from pipeline.cli import main
from pipeline.gold import publish_qlib, read_back
from pipeline.gold.verify import qlib_init
from pipeline.lake import writer
from pipeline.lake.tables import SILVER_BOOK_FEATURES
from tests.gold.gold_synthetic import START_US, candles, write

MIN_US, HOUR_US, DAY_US = 60_000_000, 3_600_000_000, 86_400_000_000
DAYS = 2
FIELDS = ["spread", "imb1", "imb5", "microprice", "depth10", "depth50", "ofi", "book_cover"]
RAW = ["spread_bps", "imb1_mean", "imb5_mean", "microprice", "d10", "d50", "ofi", "book_cover"]


def book_rows(inst: str, minutes: np.ndarray, seed: int, *, channel: str = "books", venue: str = "okx") -> pa.Table:
    """silver/book_features rows at these minute slots, random but within the contract's ranges."""
    rng = np.random.default_rng(seed)
    n = len(minutes)
    open_us = START_US + minutes * MIN_US
    mid = 100 + rng.uniform(0, 5, n)
    imb1, imb5 = rng.uniform(0, 1, n), rng.uniform(0, 1, n)
    return pa.table(
        {
            "venue": [venue] * n, "instrument": [inst] * n, "channel": [channel] * n,
            "open_time": pa.array(open_us, pa.timestamp("us", tz="UTC")), "session": ["s"] * n,
            "mid_open": mid, "mid_high": mid * 1.001, "mid_low": mid * 0.999, "mid_close": mid,
            "spread_bps": rng.uniform(0.5, 20, n), "imb1_mean": imb1, "imb1_last": imb1, "imb5_mean": imb5,
            "imb5_last": imb5, "microprice": mid * (1 + rng.uniform(-1e-4, 1e-4, n)),
            "depth10_bid": rng.uniform(0, 50, n), "depth10_ask": rng.uniform(0, 50, n),
            "depth50_bid": rng.uniform(50, 500, n), "depth50_ask": rng.uniform(50, 500, n),
            "ofi": rng.normal(0, 10, n), "messages": rng.integers(1, 600, n),
            "book_cover": np.where(rng.random(n) < 0.7, 1.0, rng.uniform(0.01, 1, n)),
            "date": pa.array((open_us // DAY_US).astype(np.int32), pa.date32()),
        },
        schema=SILVER_BOOK_FEATURES.schema,
    )  # fmt: skip


def expected(rows: pa.Table, step_us: int) -> pd.DataFrame:
    """Per (instrument, bar open us) from the silver rows, computed here with pandas."""
    t = rows.to_pandas()
    t["us"] = rows.column("open_time").cast(pa.int64()).to_numpy()
    # one channel per minute: the most covered, then the most messages, then the channel name
    t = t.sort_values(["instrument", "us", "book_cover", "messages", "channel"], ascending=[1, 1, 0, 0, 1])
    t = t.drop_duplicates(["instrument", "us"], keep="first").sort_values(["instrument", "us"])
    t["d10"] = (t.depth10_bid + t.depth10_ask) / 2
    t["d50"] = (t.depth50_bid + t.depth50_ask) / 2
    t["t"] = t.us // step_us * step_us
    out = {}
    for (inst, bar), g in t.groupby(["instrument", "t"]):
        w = g.book_cover
        out[(inst, bar)] = {
            "spread": (g.spread_bps * w).sum() / w.sum(),
            "imb1": (g.imb1_mean * w).sum() / w.sum(),
            "imb5": (g.imb5_mean * w).sum() / w.sum(),
            "microprice": g.microprice.iloc[-1],
            "depth10": (g.d10 * w).sum() / w.sum(),
            "depth50": (g.d50 * w).sum() / w.sum(),
            "ofi": g.ofi.sum(),
            "book_cover": w.sum() * MIN_US / step_us,
        }
    frame = pd.DataFrame.from_dict(out, orient="index")
    frame.index = frame.index.set_names(["instrument", "t"])
    return frame


def qlib_fields(path, instruments: list[str], freq: str) -> pd.DataFrame:
    from qlib.data import D

    qlib_init(path)
    got = D.features([i.upper() for i in instruments], [f"${f}" for f in FIELDS], freq=freq)
    got.columns = FIELDS
    flat = got.reset_index()
    flat["t"] = flat["datetime"].astype("datetime64[us]").astype("int64")
    flat["instrument"] = flat["instrument"].str.upper()
    return flat.set_index(["instrument", "t"])[FIELDS]


@pytest.fixture
def book_lake(lake):
    minutes = DAYS * 1440
    for inst, seed in (("BTC-USDT", 1), ("ETH-USDT", 5)):
        write(
            lake,
            candles(inst, "1m", np.arange(minutes), market="spot", seed=seed),
            candles(inst, "1h", range(minutes // 60), market="spot", seed=seed + 1),
            candles(inst, "1d", range(minutes // 1440), market="spot", seed=seed + 2),
        )
    rows = [
        book_rows("BTC-USDT", np.arange(0, minutes, 2), 11),
        book_rows("BTC-USDT", np.arange(0, minutes, 6), 12, channel="books5"),  # a second channel
        book_rows("ETH-USDT", np.arange(3, minutes, 5), 13),
        book_rows("SOL-USDT", np.arange(0, 60), 14),  # no candles: not published
    ]
    table = pa.concat_tables(rows)
    writer.append(lake, SILVER_BOOK_FEATURES, table)
    return lake, table


@pytest.mark.parametrize(("freq", "step_us"), [("day", DAY_US), ("60min", HOUR_US), ("1min", MIN_US)])
def test_qlib_reads_the_book_fields_as_silver_aggregated_per_bar(book_lake, gold_dir, freq, step_us):
    lake, table = book_lake
    report = publish_qlib(lake, gold_dir=gold_dir, freqs=(freq,))
    spot = next(d for d in report.datasets if d.dataset == "okx-spot")
    got = qlib_fields(spot.path, ["BTC-USDT", "ETH-USDT"], freq)
    want = expected(table, step_us)
    assert len(got) == {"day": 2, "60min": 48, "1min": 2880}[freq] * 2
    for f in FIELDS:
        w = want[f].reindex(got.index).astype(np.float32).to_numpy()
        g = got[f].to_numpy()
        assert np.array_equal(np.isnan(w), np.isnan(g)), f
        assert np.allclose(g[~np.isnan(g)], w[~np.isnan(w)], rtol=1e-6), f
        assert (~np.isnan(g)).any(), f
    cover = got["book_cover"].to_numpy()
    assert np.nanmax(cover) <= 1 + 1e-6 and np.nanmin(cover) > 0
    if freq == "1min":  # a minute without a book row is NaN in every book field
        assert got.loc[("ETH-USDT", START_US)].isna().all()
    back = read_back(lake, spot.path, dataset="okx-spot", venue="okx", market="spot", freqs=(freq,))
    assert back.ok and back.checked_bars == len(got), back.sample


def test_a_backtest_signal_can_use_imb1(lake, gold_dir):
    """$imb1 prefers the book with more bids: BID (imbalance 0.8) over ASK (0.2), whatever the prices."""
    days = 40
    write(
        lake,
        candles("ASK", "1d", range(days), drift=0.01, seed=1),
        candles("BID", "1d", range(days), drift=-0.01, seed=3),
        candles("BTC-USDT-SWAP", "1d", range(days)),  # the workflow's benchmark
    )
    slots = np.arange(days) * 1440 + 600
    rows = [book_rows("ASK", slots, 1), book_rows("BID", slots, 2), book_rows("BTC-USDT-SWAP", slots, 3)]
    table = pa.concat_tables(rows)
    inst = np.array(table.column("instrument").to_pylist())
    imb = np.select([inst == "BID", inst == "ASK"], [0.8, 0.2], 0.5)
    table = table.set_column(table.schema.get_field_index("imb1_mean"), "imb1_mean", pa.array(imb))
    writer.append(lake, SILVER_BOOK_FEATURES, table)
    publish_qlib(lake, gold_dir=gold_dir, freqs=("day",))
    report = run_backtest(
        lake, dataset="okx-swap", gold_dir=gold_dir, overrides={"topk": 1, "n_drop": 0, "signal": "$imb1"},
        run_name="imb1-signal",
    )  # fmt: skip
    held = {inst for h in report.holdings.values() for inst, amount in h.items() if amount}
    assert held == {"BID"}
    code = main(
        ["--lake", lake.root, "backtest", "--dataset", "okx-swap", "--gold-dir", str(gold_dir),
         "--set", "signal=$imb1-$imb5", "--set", "topk=1", "--set", "n_drop=0"]
    )  # fmt: skip
    assert code == 0


def _tree(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_book_fields_publish_incrementally_and_rebuild_on_a_restated_minute(book_lake, gold_dir):
    lake, _ = book_lake
    freqs = ("day", "60min")
    first = {d.dataset: d for d in publish_qlib(lake, gold_dir=gold_dir, freqs=freqs).datasets}
    assert first["okx-spot"].mode == "full"
    # a new day of candles and of book minutes, after the published calendar: incremental, the same bytes
    write(
        lake,
        candles("BTC-USDT", "1d", range(DAYS, DAYS + 1), market="spot", seed=3),
        candles("BTC-USDT", "1h", range(48, 72), market="spot", seed=4),
    )
    writer.append(lake, SILVER_BOOK_FEATURES, book_rows("BTC-USDT", np.arange(DAYS * 1440, DAYS * 1440 + 1440, 3), 7))
    inc = {d.dataset: d for d in publish_qlib(lake, gold_dir=gold_dir, freqs=freqs).datasets}
    assert inc["okx-spot"].mode == "incremental"
    rebuilt = {d.dataset: d for d in publish_qlib(lake, gold_dir=gold_dir.parent / "rebuilt", freqs=freqs).datasets}
    assert _tree(inc["okx-spot"].version_dir) == _tree(rebuilt["okx-spot"].version_dir)
    # a book minute inside published history (a capture imported late): the dataset is rebuilt with it
    before = qlib_fields(inc["okx-spot"].path, ["ETH-USDT"], "60min").loc[("ETH-USDT", START_US), "book_cover"]
    writer.append(lake, SILVER_BOOK_FEATURES, book_rows("ETH-USDT", np.array([1]), 8))
    full = {d.dataset: d for d in publish_qlib(lake, gold_dir=gold_dir, freqs=freqs).datasets}
    assert full["okx-spot"].mode == "full"
    after = qlib_fields(full["okx-spot"].path, ["ETH-USDT"], "60min").loc[("ETH-USDT", START_US), "book_cover"]
    assert after > before
    assert read_back(lake, full["okx-spot"].path, dataset="okx-spot", venue="okx", market="spot", freqs=freqs).ok
