"""Synthetic silver candles for the gold tests and benchmark, written to real Delta tables with the lake writer."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from pipeline.lake import writer
from pipeline.lake.location import Lake
from pipeline.lake.schemas import TIMEFRAME_MS
from pipeline.lake.tables import SILVER_CANDLES

START = datetime(2024, 1, 1, tzinfo=UTC)
START_US = int(START.timestamp() * 1_000_000)


def candles(
    instrument: str,
    timeframe: str,
    slots: np.ndarray | range,
    *,
    venue: str = "okx",
    market: str = "swap",
    base: float = 100.0,
    drift: float = 0.0,
    seed: int = 0,
) -> pa.Table:
    """Bars at slot numbers ``slots`` (slot k opens at START + k * timeframe), prices with awkward decimals
    so float32 rounding is exercised; ``drift`` per slot makes a trend."""
    k = np.asarray(slots, dtype=np.int64)
    rng = np.random.default_rng(seed)
    close = base * np.exp(drift * k + 0.01 * np.cumsum(rng.normal(size=len(k)))) + 0.123456789
    open_ = close * (1 + 0.001 * rng.normal(size=len(k)))
    high = np.maximum(open_, close) * 1.0031
    low = np.minimum(open_, close) * 0.9969
    volume = rng.uniform(0.1, 50.0, size=len(k))
    count = rng.integers(1, 500, size=len(k))
    step_us = TIMEFRAME_MS[timeframe] * 1000
    open_us = START_US + k * step_us
    n = len(k)
    return pa.table(
        {
            "venue": [venue] * n,
            "market": [market] * n,
            "instrument": [instrument] * n,
            "timeframe": [timeframe] * n,
            "open_time": pa.array(open_us, pa.timestamp("us", tz="UTC")),
            "close_time": pa.array(open_us + step_us, pa.timestamp("us", tz="UTC")),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
            "quote_volume": volume * close,
            "trade_count": count,
            "vwap": (high + low + close) / 3,
            "buy_volume": volume / 2,
            "sell_volume": volume / 2,
            "source": ["trades"] * n,
            "date": pa.array((open_us // 86_400_000_000).astype(np.int32), pa.date32()),
        },
        schema=SILVER_CANDLES.schema,
    )


def write(lake: Lake, *tables: pa.Table) -> None:
    writer.append(lake, SILVER_CANDLES, pa.concat_tables(tables))
