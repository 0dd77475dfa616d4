"""Helpers for stream tests: a small configuration, ground truth from the simulator, and bronze reads."""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from pipeline.config import StreamConfig, VenueStreamConfig
from pipeline.lake import writer
from pipeline.lake.location import Lake
from pipeline.lake.tables import BRONZE_GAPS, BRONZE_TRADES
from pipeline.simulator import SimConfig, SimulatorThread
from pipeline.stream_settings import StreamSettings

OKX = ("BTC-USDT", "ETH-USDT-SWAP")
DERIBIT = ("ETH-PERPETUAL",)

FAST = StreamSettings(
    flush_interval_secs=0.5,
    stale_after_secs=5.0,
    idle_ping_secs=2.0,
    backoff_initial_secs=0.1,
    backoff_max_secs=0.5,
    healthy_after_secs=2.0,
    connections_per_sec=50.0,
    gap_settle_ms=500,
)


def sim_config(**faults: float) -> SimConfig:
    return SimConfig(
        port=0, seed=11, okx_instruments=6, deribit_options=10, trade_rate_per_instrument_per_s=25, faults=faults
    )


def stream_config(
    settings: StreamSettings = FAST, okx: Iterable[str] = OKX, deribit: Iterable[str] = DERIBIT
) -> StreamConfig:
    venues = {}
    if okx:
        venues["okx"] = VenueStreamConfig("okx", "sim", tuple(okx), (), ("trades", "quotes"))
    if deribit:
        venues["deribit"] = VenueStreamConfig("deribit", "sim", tuple(deribit), (), ("trades", "ticker"))
    return StreamConfig(name="test", settings=settings, venues=venues)


def truth_key(venue: str, trade) -> str:  # noqa: ANN001 - SimTrade
    # Deribit trade ids carry a currency prefix; trade_seq is the venue's own per-instrument counter.
    return str(trade.seq) if venue == "deribit" else str(trade.trade_id)


def bronze_key(df: pl.DataFrame, venue: str) -> pl.Series:
    return df["seq"].cast(pl.Utf8) if venue == "deribit" else df["trade_id"]


def ground_truth(sim: SimulatorThread, venue: str, instrument: str, start_ms: int, end_ms: int) -> dict[str, int]:
    """key -> exchange ts of every trade the simulator published in [start_ms, end_ms]."""
    trades = sim.call(lambda: sim.market.trades(venue, instrument, start_ms=start_ms, end_ms=end_ms, limit=None))
    return {truth_key(venue, t): t.ts_ms for t in trades}


def bronze_trades(lake: Lake, venue: str, instrument: str) -> pl.DataFrame:
    df = writer.read(lake, BRONZE_TRADES)
    return df.filter((pl.col("venue") == venue) & (pl.col("instrument") == instrument))


def covered_by_gap(gaps: pl.DataFrame, ts_ms: int, key: str) -> bool:
    """A missing trade is accounted for if a recorded gap spans its time (or its sequence number)."""
    for g in gaps.iter_rows(named=True):
        lo = int(g["from_ts"].timestamp() * 1000)
        hi = int(g["to_ts"].timestamp() * 1000)
        if lo <= ts_ms <= hi:
            return True
        if g["from_seq"] is not None and key.isdigit() and g["from_seq"] < int(key) < g["to_seq"]:
            return True
    return False


def gaps_for(lake: Lake, venue: str, instrument: str) -> pl.DataFrame:
    gaps = writer.read(lake, BRONZE_GAPS)
    return gaps.filter((pl.col("venue") == venue) & (pl.col("instrument") == instrument))
