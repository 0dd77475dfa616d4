"""A full publish: Qlib's own reader returns every silver value, the files are dump_bin's bytes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.gold import publish_qlib, read_back
from pipeline.gold.calendar import FUTURE_SLOTS
from pipeline.lake.tables import SILVER_CANDLES
from pipeline.lake.writer import read
from tests.gold.gold_synthetic import candles, write

FIELDS = ("open", "high", "low", "close", "volume", "amount", "vwap", "trades", "factor", "change")
SILVER_COL = {"amount": "quote_volume", "trades": "trade_count"}


@pytest.fixture
def published(lake, gold_dir):
    write(
        lake,
        candles("BTC-USDT-SWAP", "1d", range(0, 40), seed=1),
        candles("ETH-USDT-SWAP", "1d", [3, 4, 5, 9, 10, 30], seed=2),  # holes inside its span
        candles("CON", "1d", range(10, 20), seed=3),  # a Windows device name
        candles("BTC-USDT-SWAP", "1m", [*range(0, 100), *range(150, 200)], seed=4),
        candles("ETH-USDT-SWAP", "1m", [120, 121, 199], seed=5),
        candles("BTC-USDT-SWAP", "1h", range(0, 30), seed=6),
        candles("CON", "1h", [5, 6, 29], seed=7),
        candles("OTHER", "1d", range(5), market="spot", seed=8),  # a second dataset
    )
    return publish_qlib(lake, gold_dir=gold_dir)


def _reference_bin(rows: pd.DataFrame, field: str, calendar: list[pd.Timestamp]) -> bytes:
    """The dump_bin algorithm restated with pandas: reindex on the calendar between the first and the
    last bar, prefix the start index, cast to little-endian float32."""
    col = SILVER_COL.get(field, field)
    series = rows.set_index("open_time")[col].astype(float) if field not in ("factor", "change") else None
    if field == "factor":
        series = pd.Series(1.0, index=rows["open_time"])
    if field == "change":
        close = rows.set_index("open_time")["close"]
        series = close / close.shift(1) - 1
    cal = pd.DatetimeIndex(calendar)
    span = cal[(cal >= series.index.min()) & (cal <= series.index.max())]
    start = calendar.index(span[0])
    return np.hstack([start, series.reindex(span).to_numpy(dtype=float)]).astype("<f").tobytes()


def test_files_are_dump_bin_bytes(lake, published):
    okx_swap = next(d for d in published.datasets if d.dataset == "okx-swap")
    root = okx_swap.path
    assert {d.dataset for d in published.datasets} == {"okx-spot", "okx-swap"}
    assert root.is_symlink() and okx_swap.mode == "full"
    silver = read(lake, SILVER_CANDLES).to_pandas()
    silver = silver[silver.market == "swap"]
    silver["open_time"] = silver["open_time"].dt.tz_localize(None)
    for freq, tf in (("day", "1d"), ("1min", "1m"), ("60min", "1h")):
        part = silver[silver.timeframe == tf].sort_values("open_time")
        calendar = sorted(set(part.open_time))
        fmt = "%Y-%m-%d" if freq == "day" else "%Y-%m-%d %H:%M:%S"
        text = "".join(t.strftime(fmt) + "\n" for t in calendar)
        assert (root / "calendars" / f"{freq}.txt").read_text() == text
        future = (root / "calendars" / f"{freq}_future.txt").read_text().splitlines()
        assert future[: len(calendar)] == text.splitlines() and len(future) == len(calendar) + FUTURE_SLOTS
        assert pd.Timestamp(future[len(calendar)]) > calendar[-1]
        for name, rows in part.groupby("instrument"):
            folder = "_qlib_con" if name == "CON" else name.lower()
            for field in FIELDS:
                got = (root / "features" / folder / f"{field}.{freq}.bin").read_bytes()
                assert got == _reference_bin(rows.reset_index(drop=True), field, calendar), (name, freq, field)
    # One span per instrument over all frequencies, intraday format, sorted as dump_bin lists files.
    assert (root / "instruments" / "all.txt").read_text() == (
        "CON\t2024-01-01 05:00:00\t2024-01-20 00:00:00\n"
        "BTC-USDT-SWAP\t2024-01-01 00:00:00\t2024-02-09 00:00:00\n"
        "ETH-USDT-SWAP\t2024-01-01 02:00:00\t2024-01-31 00:00:00\n"
    )


def test_qlib_reads_back_every_silver_value(lake, published):
    for d in published.datasets:
        venue, market = d.dataset.split("-")
        freqs = tuple(d.calendar_len)
        result = read_back(lake, d.path, dataset=d.dataset, venue=venue, market=market, freqs=freqs)
        assert result.ok, result.sample
        assert result.checked_bars == sum(d.bars.values())
    # And directly, the way a researcher would: holes come back as NaN rows, values as float32.
    from qlib.data import D

    from pipeline.gold.verify import qlib_init

    qlib_init(next(d for d in published.datasets if d.dataset == "okx-swap").path)
    eth = D.features(["ETH-USDT-SWAP"], ["$close", "$change"], freq="day").loc["ETH-USDT-SWAP"]
    assert list(eth.index.day) == list(range(4, 32))  # 2024-01-04 .. 2024-01-31, holes included
    expected = candles("ETH-USDT-SWAP", "1d", [3, 4, 5, 9, 10, 30], seed=2).column("close").to_numpy()
    present = eth["$close"].dropna()
    assert present.to_numpy().tolist() == expected.astype(np.float32).tolist()
    assert eth["$close"].isna().sum() == 28 - 6
    # change after a hole is relative to the last existing bar (Qlib data-collector convention)
    assert eth.loc["2024-01-10", "$change"] == np.float32(expected[3] / expected[2] - 1)
    con = D.features(["CON"], ["$close"], freq="60min")
    assert len(con.dropna()) == 3 and con.index.get_level_values("datetime")[0] == pd.Timestamp("2024-01-01 05:00")
