"""Backfill parameters -> a validated plan of chunks. No network here: every parameter error is raised
(as ``ConfigError`` naming the parameter and the fix) before a single request is sent; the one check that
needs the venue (does this instrument exist?) is ``check_instruments`` in ``jobs.py``, a listing call made
before any data request.

A plan is a list of (instrument, start, end) items cut into chunks on a fixed UTC grid (one day by
default): the unit of commit, of checkpoint and of progress. The job id is a hash of the plan, so running
the same backfill again resumes it instead of starting over.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import time
from dataclasses import dataclass
from types import ModuleType
from typing import cast

from pipeline.backfill import open_interest
from pipeline.backfill.funding import FUNDING_CHUNK_SECS, FUNDING_HISTORY_MS, check_swaps
from pipeline.errors import ConfigError
from pipeline.lake.schemas import TIMEFRAME_MS
from pipeline.venues import VENUES, get_venue

KINDS = ("trades", "candles", "funding", "open-interest")
DAY_SECS = 86_400
MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: the last instant ISO 8601 and datetime can say


def rest_venue(venue: str) -> ModuleType:
    """The backfill venue module (``pipeline.backfill.okx`` / ``deribit``) for a venue name."""
    get_venue(venue)  # ConfigError naming the known venues
    return importlib.import_module(f"pipeline.backfill.{venue.strip().lower()}")


def parse_time_ms(value: object, name: str, *, now_ms: int | None = None) -> int:
    """A UTC time as epoch ms: ``datetime``/``date``, epoch ms int, ISO 8601 text (``2026-05-01``,
    ``2026-05-01T12:00``, naive = UTC), ``now``, or ``-2h`` / ``-30m`` / ``-7d`` relative to now."""
    now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    if isinstance(value, bool):
        raise ConfigError(name, f"{value!r} is not a time", "use ISO 8601 such as 2026-05-01T00:00Z")
    if isinstance(value, int):
        if not 0 <= value <= MAX_TIME_MS:
            raise ConfigError(
                name, f"{value!r} is outside 1970..9999", "give epoch ms, ISO 8601 (2026-05-01T00:00Z), 'now' or '-6h'"
            )
        return value
    if isinstance(value, dt.datetime):
        return int((value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp() * 1000)
    if isinstance(value, dt.date):
        return int(dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).timestamp() * 1000)
    if isinstance(value, str):
        text = value.strip()
        if text == "now":
            return now_ms
        if text.isdigit():  # epoch ms as text (CLI)
            return parse_time_ms(int(text), name)
        units = {"m": 60_000, "h": 3_600_000, "d": 86_400_000}
        if text.startswith("-") and text[-1:] in units and text[1:-1].isdigit():
            return now_ms - int(text[1:-1]) * units[text[-1]]
        try:
            parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            try:
                return parse_time_ms(parsed, name)
            except (OverflowError, OSError, ValueError):  # a date no clock can hold
                pass
    raise ConfigError(name, f"{value!r} is not a time", "use ISO 8601 (2026-05-01T00:00Z), epoch ms, 'now' or '-6h'")


@dataclass(frozen=True)
class Chunk:
    instrument: str
    number: int  # 0-based position in this instrument's chunk list: the Delta transaction version - 1
    start_ms: int
    end_ms: int  # exclusive


@dataclass(frozen=True)
class BackfillPlan:
    venue: str
    kind: str  # "trades" | "candles" | "funding" | "open-interest"
    timeframe: str | None  # candles: our timeframe names; open interest: the OKX period
    items: tuple[tuple[str, int, int], ...]  # (instrument, start_ms, end_ms)
    chunk_secs: int = DAY_SECS

    @property
    def job_id(self) -> str:
        text = f"{self.venue}|{self.kind}|{self.timeframe}|{self.chunk_secs}|" + "|".join(
            f"{i}:{a}:{b}" for i, a, b in self.items
        )
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    def app_id(self, instrument: str) -> str:
        """Delta application-transaction id of one instrument's chunks (versions = chunk number + 1)."""
        return f"cryptolake-backfill-{self.job_id}-{instrument}"

    @property
    def instruments(self) -> list[str]:
        return [i for i, _, _ in self.items]

    def chunks(self, instrument: str) -> list[Chunk]:
        step = self.chunk_secs * 1000
        out: list[Chunk] = []
        for name, start, end in self.items:
            if name != instrument:
                continue
            edge = start - start % step
            while edge < end:
                out.append(Chunk(name, len(out), max(start, edge), min(end, edge + step)))
                edge += step
        return out

    def total_chunks(self) -> int:
        return sum(len(self.chunks(i)) for i in self.instruments)


def make_plan(
    venue: str,
    instruments: list[str] | tuple[str, ...],
    kind: str,
    start: object,
    end: object = "now",
    *,
    timeframe: str | None = None,
    chunk_secs: int | None = None,
    now_ms: int | None = None,
) -> BackfillPlan:
    """Validate the parameters of a backfill (no request is sent) and cut it into chunks. ``chunk_secs``
    None: a UTC day, 30 days for funding (a few settlements a day: one request and one commit a chunk), 96
    points of the period for open interest (one request). ``timeframe``: the candles' timeframe, or the
    open-interest period (OKX's spelling, default 5m)."""
    now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    if not isinstance(venue, str) or venue.strip().lower() not in VENUES:
        raise ConfigError("venue", f"unknown venue {venue!r}", f"use one of: {', '.join(VENUES)}")
    venue = venue.strip().lower()
    rest = rest_venue(venue)
    if kind not in KINDS:
        raise ConfigError("kind", f"unknown kind {kind!r}", "use trades, candles, funding or open-interest")
    if kind == "open-interest":
        open_interest.check_venue(venue)
        timeframe = open_interest.check_period(timeframe)
    if chunk_secs is None:
        if kind == "open-interest":
            chunk_secs = open_interest.chunk_secs(cast(str, timeframe))
        else:
            chunk_secs = FUNDING_CHUNK_SECS if kind == "funding" else DAY_SECS
    if kind == "candles":
        if timeframe not in rest.TIMEFRAMES:
            raise ConfigError(
                "timeframe", f"{venue} has no {timeframe!r} candles", f"use one of {', '.join(rest.TIMEFRAMES)}"
            )
    elif kind != "open-interest":
        timeframe = None
    start_ms, end_ms = parse_time_ms(start, "start", now_ms=now_ms), parse_time_ms(end, "end", now_ms=now_ms)
    end_ms = min(end_ms, now_ms)  # nothing exists after now
    if start_ms >= end_ms:
        raise ConfigError(
            "start/end",
            f"start {_iso(start_ms)} is not before end {_iso(end_ms)}",
            "give a start earlier than the end (and than now)",
        )
    if kind == "trades" and rest.TRADE_HISTORY_MS is not None and start_ms < now_ms - rest.TRADE_HISTORY_MS:
        days = rest.TRADE_HISTORY_MS // 86_400_000
        raise ConfigError(
            "start",
            f"{venue} serves only the last {days} days of trades",
            f"start after {_iso(now_ms - rest.TRADE_HISTORY_MS)}, or backfill candles",
        )
    if kind == "funding" and (history := FUNDING_HISTORY_MS[venue]) is not None and start_ms < now_ms - history:
        raise ConfigError(
            "start",
            f"{venue} serves only about the last {history // 86_400_000} days of funding history",
            f"start after {_iso(now_ms - history)}",
        )
    if kind == "open-interest" and start_ms < now_ms - (oi_ms := open_interest.history_ms(cast(str, timeframe))):
        raise ConfigError(
            "start",
            f"{venue} serves only the latest {open_interest.HISTORY_POINTS} {timeframe} open-interest points "
            f"(about {oi_ms / 86_400_000:g} days)",
            f"start after {_iso(now_ms - oi_ms)}, or use a longer --period ({_depths()})",
        )
    if not isinstance(chunk_secs, int) or chunk_secs < 60 or (DAY_SECS % chunk_secs and chunk_secs % DAY_SECS):
        raise ConfigError("chunk_secs", f"{chunk_secs!r}", "use a divisor or multiple of a day, >= 60 (default 86400)")
    if kind == "candles":
        bar_ms = TIMEFRAME_MS[cast(str, timeframe)]  # checked against TIMEFRAMES above for candles
        if (chunk_secs * 1000) % bar_ms:
            raise ConfigError(
                "chunk_secs", f"{chunk_secs} s is not a whole number of {timeframe} bars", "use a multiple of the bar"
            )
        start_ms -= start_ms % bar_ms  # whole bars only
    names = _instrument_names(venue, instruments)
    if kind == "funding":
        check_swaps(venue, names)
    if kind == "open-interest":
        open_interest.check_contracts(venue, names)
    return BackfillPlan(venue, kind, timeframe, tuple((n, start_ms, end_ms) for n in names), chunk_secs)


def _instrument_names(venue: str, instruments: list[str] | tuple[str, ...]) -> list[str]:
    if isinstance(instruments, str):
        instruments = instruments.split(",")
    names = [i.strip() for i in instruments if isinstance(i, str) and i.strip()]
    if not names or len(names) != len(instruments):
        raise ConfigError(
            "instruments",
            f"{instruments!r} names no instruments",
            'give venue-native names such as ["BTC-USDT"], or "universe"',
        )
    bad = []
    for name in names:
        try:
            get_venue(venue).market_of(name)
        except ValueError:
            bad.append(name)
    if bad:
        raise ConfigError(
            "instruments",
            f"not {venue} instrument names: {', '.join(bad)}",
            f"use {venue}'s own spelling, e.g. "
            + ("BTC-USDT, BTC-USDT-SWAP" if venue == "okx" else "ETH-PERPETUAL, ETH-27DEC26-3000-C"),
        )
    return list(dict.fromkeys(names))


def _depths() -> str:
    """How far back each open-interest period reaches, e.g. "1H: 60 days"."""
    return ", ".join(f"{p}: {open_interest.history_ms(p) / 86_400_000:g} days" for p in ("5m", "1H", "1D"))


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
