"""On-demand refresh: bring bronze up to date for some instruments over REST, then rebuild silver and gold.

``refresh(["BTC-USDT"])`` backfills trades and closed 1-minute candles from the last stored row of each
instrument (or ``lookback_secs`` back when there is none) up to now, and the funding history of the swaps
among them from their last stored settlement (or the venue's history window: ``funding.catch_up_items``),
then runs
``pipeline.silver.run_silver(lake)`` and ``pipeline.gold.publish_qlib(lake)``. ``from pipeline import refresh``
gives the function (the package exports it; this module is named for what it does so the two never clash).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.backfill import existing
from pipeline.backfill.funding import FUNDING_CHUNK_SECS, catch_up_items
from pipeline.backfill.jobs import BackfillProgress, BackfillResult, run_backfill
from pipeline.backfill.plan import BackfillPlan, make_plan, rest_venue
from pipeline.gold import publish_qlib
from pipeline.lake.location import Lake, resolve_lake
from pipeline.lake.tables import BRONZE_CANDLES, BRONZE_TRADES
from pipeline.silver import run_silver
from pipeline.universe import resolve_instruments

MINUTE_MS = 60_000


@dataclass
class RefreshResult:
    venue: str
    instruments: list[str]
    backfills: list[BackfillResult] = field(default_factory=list)
    layers: dict[str, str] = field(default_factory=dict)  # "silver"/"gold" -> ran | skipped

    @property
    def rows(self) -> int:
        return sum(b.rows for b in self.backfills)


def _start_ms(
    lake: Lake, venue: str, instrument: str, kind: str, now_ms: int, lookback_ms: int, history_ms: int | None
) -> int:
    spec, tf = (BRONZE_TRADES, None) if kind == "trades" else (BRONZE_CANDLES, "1m")
    last = existing.last_time_ms(
        lake, spec, venue, instrument, timeframe=tf, lookback_ms=max(lookback_ms, 7 * 86_400_000), now_ms=now_ms
    )
    if last is None:
        start = now_ms - lookback_ms
    else:  # trades: the last millisecond again (others may share it; existing ids are skipped); bars: the next one
        start = last if kind == "trades" else last + MINUTE_MS
    if kind == "trades" and history_ms is not None:
        start = max(start, now_ms - history_ms + MINUTE_MS)
    return start if kind == "trades" else start - start % MINUTE_MS  # whole bars


def refresh(
    instruments: Sequence[str] | str | None = None,
    *,
    venue: str = "okx",
    lake: Lake | str | None = None,
    rest_url: str | None = None,
    lookback_secs: int = 3_600,
    candles: bool = True,
    funding: bool = True,
    silver: bool = True,
    gold: bool = True,
    progress: Callable[[BackfillProgress], Any] | None = None,
    now_ms: int | None = None,
    **backfill_kwargs: Any,
) -> RefreshResult:
    """Backfill trades (and 1m candles, and the swaps' funding history) since the last stored row for
    ``instruments`` (default: the venue's current universe), then run silver and gold (each unless told not to)."""

    lake = lake if isinstance(lake, Lake) else resolve_lake(lake)
    now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    names = resolve_instruments(lake, venue, "universe" if instruments is None else instruments)
    # every parameter error before any request: make_plan checks the venue and each name
    make_plan(venue, names, "trades", now_ms - lookback_secs * 1000, now_ms, now_ms=now_ms)
    history_ms = rest_venue(venue).TRADE_HISTORY_MS
    result = RefreshResult(venue, names)
    kinds = [("trades", None)] + ([("candles", "1m")] if candles else [])
    for kind, timeframe in kinds:
        items = []
        for name in names:
            start = _start_ms(lake, venue, name, kind, now_ms, lookback_secs * 1000, history_ms)
            end = now_ms - now_ms % MINUTE_MS if kind == "candles" else now_ms
            if start < end:
                items.append((name, start, end))
        if items:
            plan = BackfillPlan(venue, kind, timeframe, tuple(items))
            result.backfills.append(run_backfill(lake, plan, rest_url=rest_url, progress=progress, **backfill_kwargs))
    funding_items = catch_up_items(lake, venue, names, now_ms) if funding else []
    if funding_items:
        plan = BackfillPlan(venue, "funding", None, tuple(funding_items), FUNDING_CHUNK_SECS)
        result.backfills.append(run_backfill(lake, plan, rest_url=rest_url, progress=progress, **backfill_kwargs))
    if silver:
        run_silver(lake)
    if gold:
        publish_qlib(lake)
    result.layers = {"silver": "ran" if silver else "skipped", "gold": "ran" if gold else "skipped"}
    return result
