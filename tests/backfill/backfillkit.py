"""Helpers for the backfill tests: fault settings, ground truth from the simulator, bronze reads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import polars as pl

from pipeline.backfill import RetryPolicy
from pipeline.lake import writer
from pipeline.lake.location import Lake
from pipeline.lake.tables import BRONZE_TRADES
from pipeline.simulator import SimConfig, SimulatorThread

FAST_RETRY = RetryPolicy(max_attempts=10, initial_backoff_secs=0.02, max_backoff_secs=0.2)
FAULTS = {"rest_429_rate": 0.1, "rest_5xx_rate": 0.1}


def sim_config(**changes: object) -> SimConfig:
    base = dict(port=0, seed=7, okx_instruments=6, deribit_options=8, trade_history_minutes=10, faults=FAULTS)
    return SimConfig(**(base | changes))  # type: ignore[arg-type]


def set_faults(sim: SimulatorThread, **faults: float) -> None:
    sim.call(lambda: sim.ctx.faults.update(faults))


def window(sim: SimulatorThread) -> tuple[int, int]:
    """The simulator's pre-start trade window [t0, start): history that exists the moment it starts."""
    return sim.call(lambda: (sim.market.t0_ms, sim.market.start_ms))


def truth(sim: SimulatorThread, venue: str, instrument: str, start_ms: int, end_ms: int) -> list:
    """Every trade the simulator published with start_ms <= ts < end_ms, oldest first."""
    return sim.call(
        lambda: sim.market.trades(
            venue, instrument, start_ms=start_ms, end_ms=end_ms - 1, limit=None, newest_first=False
        )
    )


def bronze(lake: Lake, venue: str, instrument: str) -> pl.DataFrame:
    df = writer.read(lake, BRONZE_TRADES)
    return df.filter((pl.col("venue") == venue) & (pl.col("instrument") == instrument)).sort("exchange_ts", "trade_id")


def rest_counter(sim: SimulatorThread, name: str) -> int:
    return int(sim.call(lambda: sim.ctx.counters.get(name, 0)))


class Stop(Exception):
    """Raised by a ``stop_after`` progress callback: a backfill stopped part-way."""


def stop_after(chunks: int) -> Callable[[Any], None]:
    """A progress callback that stops the run once ``chunks`` chunks are done (and committed)."""

    def progress(p: Any) -> None:  # a BackfillProgress
        if p.done_chunks == chunks:
            raise Stop

    return progress
