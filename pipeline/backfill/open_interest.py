"""Open-interest history over REST into bronze/derivatives (``backfill --kind open-interest``).

Only OKX serves it: ``GET /api/v5/rubik/stat/contracts/open-interest-history`` (instId of a swap or future,
``period``, ``begin``/``end`` in ms, both exclusive, ``limit`` <= 100): the newest ``limit`` points of the
window, newest first, each ``[ts, oi, oiCcy, oiUsd]``; the latest 1,440 points of a period and no older;
10 requests per 2 s per IP and instrument (our limiter keeps one bucket for all instruments: safe, slower).
Deribit has current open interest only (its ticker, captured by the stream): ``check_venue`` refuses it.

A chunk is 96 points of the period (5m: 8 h, 1H: 4 days, 1D: 96 days), so one request reads it; a longer
``--chunk-secs`` pages back within the chunk. Rows are ``pipeline.venues.okx.open_interest_history_row``
(channel "open-interest-history"); a point bronze already holds (same instrument and time, from any period)
is not written again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import partial
from typing import Any

from pipeline.backfill.markets import of_markets, refuse_others
from pipeline.backfill.rest import RestClient
from pipeline.backfill.rows import page_rows
from pipeline.errors import ConfigError, VenueResponseError
from pipeline.lake.schemas import DERIVATIVE_FIELDS
from pipeline.venues import okx as okx_venue

ENDPOINT = "rubik/stat/contracts/open-interest-history"
CHANNEL = "open-interest-history"
PAGE = 100
CHUNK_POINTS = 96  # a divisor or multiple of a day for every period below, and one page
HISTORY_POINTS = 1440  # OKX serves the latest 1,440 points of a period
MINUTE_MS, HOUR_MS, DAY_MS = 60_000, 3_600_000, 86_400_000
# OKX period -> length in ms. "1D" days open at 00:00 UTC+8 (16:00 UTC), "1Dutc" at 00:00 UTC.
PERIODS: dict[str, int] = {
    "5m": 5 * MINUTE_MS, "15m": 15 * MINUTE_MS, "30m": 30 * MINUTE_MS, "1H": HOUR_MS, "2H": 2 * HOUR_MS,
    "4H": 4 * HOUR_MS, "1D": DAY_MS, "1Dutc": DAY_MS,
}  # fmt: skip
DEFAULT_PERIOD = "5m"
CONTRACTS = ("swap", "future")
_TS = DERIVATIVE_FIELDS.index("exchange_ts_ms")


def check_venue(venue: str) -> None:
    if venue != "okx":
        raise ConfigError(
            "kind",
            f"{venue} serves no open-interest history (only the current open interest)",
            "backfill open interest from OKX (--venue okx); Deribit's is recorded live by `cryptolake stream` "
            "(the ticker's open_interest in bronze/derivatives)",
        )


def check_period(period: object) -> str:
    if period is None:
        return DEFAULT_PERIOD
    if not isinstance(period, str) or period not in PERIODS:
        raise ConfigError(
            "period",
            f"OKX has no {period!r} open-interest period",
            f"use one of {', '.join(PERIODS)} (OKX's spelling; 1D days start at 00:00 UTC+8, 1Dutc at 00:00 UTC)",
        )
    return period


def chunk_secs(period: str) -> int:
    return CHUNK_POINTS * PERIODS[period] // 1000


def history_ms(period: str) -> int:
    """How far back the venue serves points of ``period``."""
    return HISTORY_POINTS * PERIODS[period]


def check_contracts(venue: str, names: Sequence[str]) -> None:
    """ConfigError naming every instrument that is not a swap or future (no request is sent)."""
    refuse_others(
        venue, names, CONTRACTS, "open-interest history is served for swaps and futures only, not for",
        "give swaps or futures such as BTC-USDT-SWAP or BTC-USD-261225",
    )  # fmt: skip


def contracts_of(venue: str, names: Sequence[str]) -> list[str]:
    """The swaps and futures among ``names`` (``--instruments universe --kind open-interest``)."""
    return of_markets(venue, names, CONTRACTS)


async def open_interest_between(
    client: RestClient, instrument: str, period: str, start_ms: int, end_ms: int
) -> list[tuple[Any, ...]]:
    """Points of ``instrument`` with ``start_ms <= ts < end_ms``, oldest first, as bronze/derivatives rows."""
    by_ts: dict[int, tuple[Any, ...]] = {}
    end = end_ms
    while end > start_ms:
        body = await client.call(
            ENDPOINT,
            "publicGetRubikStatContractsOpenInterestHistory",
            {"instId": instrument, "period": period, "begin": str(start_ms - 1), "end": str(end), "limit": str(PAGE)},
        )
        build = partial(okx_venue.open_interest_history_row, instrument=instrument, receive_us=time.time_ns() // 1000)
        page = page_rows("okx", ENDPOINT, instrument, body.get("data") or [], build)
        for row in page:
            if not start_ms <= row[_TS] < end:
                raise VenueResponseError(
                    "okx", ENDPOINT, instrument, f"answered ts {row[_TS]} outside [{start_ms}, {end})"
                )
            by_ts[row[_TS]] = row
        if len(page) < PAGE:
            break  # the window is read (or the venue's history ends)
        end = min(r[_TS] for r in page)
    return [by_ts[t] for t in sorted(by_ts)]
