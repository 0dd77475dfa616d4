"""Funding history over REST into bronze/funding (``backfill --kind funding``), and the catch-up that
``refresh`` and the daily universe refresh run for their swaps.

Endpoints and paging (venue docs; the simulator implements the same semantics):
- OKX ``GET /api/v5/public/funding-rate-history`` (instId, before/after/limit): settlements newest first,
  ``after`` = fundingTime older than; at most 100 a call (our page); about the last 3 months; 10 requests
  per 2 s per IP. Each item: fundingRate, realizedRate, fundingTime, method.
- Deribit ``public/get_funding_rate_history`` (instrument_name, start_timestamp, end_timestamp): one item
  per hour (``interest_1h``, ``interest_8h``, index prices), at most 744 a call, so windows of 744 h.

``interval_hours`` is never assumed: it is the time since the previous settlement of the returned series
(OKX instruments settle every 8 h, some every 4 h or 1 h, and an instrument's interval can change). To
know it for the first settlement of a chunk, each chunk also reads the settlement just before its window
(OKX: the next older item; Deribit: a day before the window); a settlement with none before it (the start
of the venue's history) has interval None. Rows are built by the venue modules' ``funding_row``.

Only swaps / perpetuals settle funding: ``check_swaps`` refuses anything else by name before any request.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import partial
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.backfill.markets import of_markets, refuse_others
from pipeline.backfill.rest import RestClient
from pipeline.backfill.rows import page_rows
from pipeline.errors import VenueResponseError
from pipeline.lake import writer
from pipeline.lake.location import Lake
from pipeline.lake.schemas import FUNDING_FIELDS, TS
from pipeline.lake.tables import BRONZE_FUNDING
from pipeline.venues import deribit as deribit_venue
from pipeline.venues import okx as okx_venue

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
FUNDING_CHUNK_SECS = 30 * 86_400  # 90 settlements at 8 h: one OKX page, one Deribit window
# How far back the venues serve funding history (None: all of it). OKX says "about 3 months".
FUNDING_HISTORY_MS: dict[str, int | None] = {"okx": 90 * DAY_MS, "deribit": None}
OKX_HISTORY = "public/funding-rate-history"  # OKX limit 10 requests per 2 s: the venue module's default bucket
OKX_PAGE = 100
DERIBIT_HISTORY = "public/get_funding_rate_history"
DERIBIT_WINDOW_MS = 744 * HOUR_MS  # Deribit answers at most 744 hours a call
DERIBIT_LOOKBACK_MS = DAY_MS  # read before the window, for the first settlement's interval
_TIME, _INTERVAL = FUNDING_FIELDS.index("funding_time_ms"), FUNDING_FIELDS.index("interval_hours")
_INST = FUNDING_FIELDS.index("instrument")


def check_swaps(venue: str, names: Sequence[str]) -> None:
    """ConfigError naming every instrument that is not a swap / perpetual (no request is sent)."""
    refuse_others(
        venue, names, ("swap",), "funding is settled only by swaps/perpetuals, not by",
        "give swaps such as BTC-USDT-SWAP (OKX) or ETH-PERPETUAL (Deribit)",
    )  # fmt: skip


def swaps_of(venue: str, names: Sequence[str]) -> list[str]:
    """The swaps / perpetuals among ``names`` (``--instruments universe --kind funding``: the universe's swaps)."""
    return of_markets(venue, names, ("swap",))


def with_intervals(rows: list[tuple[Any, ...]], start_ms: int, end_ms: int) -> list[tuple[Any, ...]]:
    """Rows of one instrument sorted by funding time, each with the hours since the one before it (the
    first row's predecessor is the series' own first item, read from before the window), kept in
    [start_ms, end_ms); a settlement returned twice (overlapping pages) counts once."""
    by_time = {r[_TIME]: r for r in rows}
    out: list[tuple[Any, ...]] = []
    prev: int | None = None
    for t in sorted(by_time):
        if start_ms <= t < end_ms:
            row = list(by_time[t])
            row[_INTERVAL] = None if prev is None else (t - prev) / HOUR_MS
            out.append(tuple(row))
        prev = t
    return out


async def okx_funding_between(client: RestClient, instrument: str, start_ms: int, end_ms: int) -> list[tuple[Any, ...]]:
    """Settlements of ``instrument`` with ``start_ms <= fundingTime < end_ms``, oldest first."""
    rows: list[tuple[Any, ...]] = []
    after = end_ms
    while True:
        body = await client.call(
            OKX_HISTORY,
            "publicGetPublicFundingRateHistory",
            {"instId": instrument, "after": str(after), "limit": str(OKX_PAGE)},
        )
        build = partial(okx_venue.funding_row, receive_us=time.time_ns() // 1000, source="rest")
        page = page_rows("okx", OKX_HISTORY, instrument, body.get("data") or [], build)
        for row in page:
            if row[_INST] != instrument:
                raise VenueResponseError("okx", OKX_HISTORY, instrument, f"answered for {row[_INST]}")
        rows += page
        if len(page) < OKX_PAGE:
            break  # the start of the venue's history
        oldest = min(r[_TIME] for r in page)
        if oldest < start_ms:
            break  # the settlement before the window is in: every interval is known
        if oldest >= after:
            raise VenueResponseError("okx", OKX_HISTORY, instrument, f"paging did not move back past {after}")
        after = oldest
    return with_intervals(rows, start_ms, end_ms)


async def deribit_funding_between(
    client: RestClient, instrument: str, start_ms: int, end_ms: int
) -> list[tuple[Any, ...]]:
    """Hours of ``instrument`` with ``start_ms <= timestamp < end_ms``, oldest first (``interest_1h``)."""
    rows: list[tuple[Any, ...]] = []
    cursor = start_ms - DERIBIT_LOOKBACK_MS
    while cursor < end_ms:
        window_end = min(end_ms, cursor + DERIBIT_WINDOW_MS)
        body = await client.call(
            "credits",
            "publicGetGetFundingRateHistory",
            {"instrument_name": instrument, "start_timestamp": cursor, "end_timestamp": window_end - 1},
        )
        build = partial(deribit_venue.funding_row, instrument=instrument, receive_us=time.time_ns() // 1000)
        rows += page_rows("deribit", DERIBIT_HISTORY, instrument, body.get("result") or [], build)
        cursor = window_end
    return with_intervals(rows, start_ms, end_ms)


async def funding_between(client: RestClient, instrument: str, start_ms: int, end_ms: int) -> list[tuple[Any, ...]]:
    if client.venue.NAME == "okx":
        return await okx_funding_between(client, instrument, start_ms, end_ms)
    return await deribit_funding_between(client, instrument, start_ms, end_ms)


def existing_times(lake: Lake, venue: str, instrument: str, start_ms: int, end_ms: int) -> set[int]:
    """Funding times (ms) of ``instrument`` bronze/funding already holds in [start_ms, end_ms), any source."""
    table = writer.open_table(lake, BRONZE_FUNDING)
    if table is None:
        return set()
    expr = (
        (pc.field("venue") == venue)
        & (pc.field("instrument") == instrument)
        & (pc.field("funding_time") >= pa.scalar(start_ms * 1000, TS))
        & (pc.field("funding_time") < pa.scalar(end_ms * 1000, TS))
    )
    data = table.to_pyarrow_dataset().to_table(columns=["funding_time"], filter=expr)
    return {int(v) // 1000 for v in data.column("funding_time").cast(pa.int64()).to_pylist()}


def last_funding_ms(lake: Lake, venue: str, instrument: str) -> int | None:
    """The latest funding time of ``instrument`` in bronze/funding (None: none stored)."""
    table = writer.open_table(lake, BRONZE_FUNDING)
    if table is None:
        return None
    expr = (pc.field("venue") == venue) & (pc.field("instrument") == instrument)
    data = table.to_pyarrow_dataset().to_table(columns=["funding_time"], filter=expr)
    latest = pc.max(data.column("funding_time").cast(pa.int64())).as_py() if data.num_rows else None
    return None if latest is None else int(latest) // 1000


def catch_up_items(
    lake: Lake, venue: str, instruments: Sequence[str], now_ms: int, lookback_ms: int | None = None
) -> list[tuple[str, int, int]]:
    """(instrument, start, now) for the swaps among ``instruments``: from just after the last funding time
    bronze/funding holds, else from ``lookback_ms`` back (default: the venue's whole history window, or 90
    days where the venue keeps more). Other markets are left out: they have no funding."""
    history = FUNDING_HISTORY_MS[venue]
    window = history - HOUR_MS if history is not None else 90 * DAY_MS  # an hour inside the venue's edge
    back = min(lookback_ms, window) if lookback_ms is not None else window
    items = []
    for name in swaps_of(venue, instruments):
        last = last_funding_ms(lake, venue, name)
        start = now_ms - back if last is None else max(last + 1, now_ms - window)
        if start < now_ms:
            items.append((name, start, now_ms))
    return items
