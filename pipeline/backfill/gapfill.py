"""Fill the open gaps of ``bronze/gaps`` over REST and mark each one filled, or unfillable with the reason.

Per gap kind:
- ``trade_id`` (OKX) and ``seq`` (Deribit): the missing ids lie strictly between ``from_seq`` and
  ``to_seq``; the venue module reads exactly that range.
- ``reconnect`` / ``restart`` / ``stale``: nothing was listening between ``from_ts`` and ``to_ts``; the
  trades of that window (plus a margin: those times are the collector's clock) are read. Instrument
  ``*`` (a whole connection) expands to the venue's instruments seen in bronze around the window.

Only trades bronze does not already hold are written (so a run killed between writing trades and
updating the gap, then run again, writes nothing twice). Then the gap rows are updated with one Delta
merge on ``gap_id``: bronze/gaps is the one bronze table that is updated in place.

Unfillable: quote gaps (no venue serves quote history over REST), windows older than the venue's trade
history, venues that keep only recent trades, and id gaps the venue returned nothing for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa

from pipeline.backfill import existing
from pipeline.backfill.plan import rest_venue
from pipeline.backfill.rest import RestClient, RestStats, RetryPolicy, VenueRequestError
from pipeline.lake import writer
from pipeline.lake.location import Lake
from pipeline.lake.merge import merge
from pipeline.lake.tables import BRONZE_GAPS, BRONZE_TRADES

WINDOW_MARGIN_MS = 5_000  # reconnect/restart times are the collector's clock, not the venue's
ONE_SCAN_MAX_MS = 2 * 86_400_000  # open gaps spanning up to this: read bronze's trade ids once, not per gap
QUOTE_KINDS = frozenset({"quote", "quotes", "book", "ticker"})


@dataclass
class GapOutcome:
    gap_id: str
    venue: str
    status: str  # filled | unfillable
    trades: int
    detail: str


@dataclass
class GapFillResult:
    gaps: int = 0
    filled: int = 0
    unfillable: int = 0
    trades: int = 0
    seconds: float = 0.0
    outcomes: list[GapOutcome] = field(default_factory=list)
    rest: dict[str, RestStats] = field(default_factory=dict)


def open_gaps(lake: Lake, venue: str | None = None) -> list[dict[str, Any]]:
    gaps = writer.read(lake, BRONZE_GAPS).filter(pl.col("status") == "open")
    if venue:
        gaps = gaps.filter(pl.col("venue") == venue)
    gaps = gaps.unique("gap_id", keep="first").sort("from_ts")
    return [{**row, "from_ms": _ms(row["from_ts"]), "to_ms": _ms(row["to_ts"])} for row in gaps.to_dicts()]


def _ms(value: Any) -> int:
    return int(value.timestamp() * 1000)


def unfillable_reason(gap: dict[str, Any], venue_module: Any, now_ms: int) -> str | None:
    name = gap["venue"]
    if gap["kind"] in QUOTE_KINDS:
        return f"quotes have no history: {name} serves no past quotes over REST"
    history = venue_module.TRADE_HISTORY_MS
    if history == 0:
        return f"{name} keeps only recent trades: the window cannot be read back"
    if history is not None and gap["from_ms"] < now_ms - history:
        return f"window older than {name}'s trade history ({history // 86_400_000} days)"
    return None


class _Filler:
    def __init__(self, lake: Lake, client: RestClient, now_ms: int, gaps: list[dict[str, Any]] | None = None) -> None:
        self.lake, self.client, self.now_ms = lake, client, now_ms
        self.seen: dict[str, set[str]] = {}  # instrument -> trade ids fetched this run (gaps overlap)
        # After a long faulty stream there are hundreds of gaps; one scan of bronze over their whole span
        # replaces a scan per gap (2-3 s each there). A superset of ids dedupes at least as well.
        self._window: tuple[int, int] | None = None
        self._ids: dict[str, set[str]] | None = None
        if gaps:
            lo = min(g["from_ms"] for g in gaps) - WINDOW_MARGIN_MS - 60_000
            hi = max(g["to_ms"] for g in gaps) + WINDOW_MARGIN_MS + 60_001
            if hi - lo <= ONE_SCAN_MAX_MS:
                self._window = (lo, hi)

    def _have(self, venue: str, inst: str, start_ms: int, end_ms: int) -> set[str]:
        if self._window is not None and self._window[0] <= start_ms and end_ms <= self._window[1]:
            if self._ids is None:
                self._ids = existing.trade_ids_by_instrument(self.lake, venue, *self._window)
            return self._ids.get(inst, set())
        return existing.trade_ids(self.lake, venue, inst, start_ms, end_ms)

    async def fill(self, gap: dict[str, Any]) -> tuple[GapOutcome, list[tuple[Any, ...]]]:
        venue = self.client.venue
        reason = unfillable_reason(gap, venue, self.now_ms)
        if reason is not None:
            return self._outcome(gap, "unfillable", 0, reason), []
        id_gap = gap["kind"] in ("trade_id", "seq") and gap["from_seq"] is not None and gap["to_seq"] is not None
        start_ms, end_ms = gap["from_ms"] - WINDOW_MARGIN_MS, gap["to_ms"] + WINDOW_MARGIN_MS + 1
        instruments = [gap["instrument"]]
        if gap["instrument"] == "*":
            instruments = await asyncio.to_thread(
                existing.distinct_instruments, self.lake, gap["venue"], start_ms - 3_600_000, end_ms + 3_600_000
            )
        rows: list[tuple[Any, ...]] = []
        try:
            for inst in instruments:
                if id_gap and gap["venue"] == "deribit":
                    got = await venue.trades_in_id_gap(
                        self.client, inst, gap["from_seq"], gap["to_seq"], start_ms, end_ms
                    )
                elif id_gap:
                    got = await venue.trades_in_id_gap(self.client, inst, gap["from_seq"], gap["to_seq"])
                else:
                    got = await venue.trades_between(self.client, inst, start_ms, end_ms)
                have = await asyncio.to_thread(self._have, gap["venue"], inst, start_ms - 60_000, end_ms + 60_000)
                seen = self.seen.setdefault(inst, set())
                new = [r for r in got if r[3] not in have and r[3] not in seen]
                seen.update(r[3] for r in new)
                rows += new
                if id_gap and not got:
                    return self._outcome(
                        gap, "unfillable", 0, f"{gap['venue']} returned none of the missing trades"
                    ), []
        except VenueRequestError as exc:
            if "does not exist" in str(exc) or "not found" in str(exc) or "BadSymbol" in str(exc):
                return self._outcome(gap, "unfillable", 0, f"instrument no longer listed: {exc}"), []
            raise
        return self._outcome(gap, "filled", len(rows), f"{len(rows)} trades over REST"), rows

    def _outcome(self, gap: dict[str, Any], status: str, trades: int, why: str) -> GapOutcome:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.now_ms / 1000))
        detail = f"{gap['detail'] or ''} | {status} {stamp}: {why}".lstrip(" |")
        return GapOutcome(gap["gap_id"], gap["venue"], status, trades, detail)


def mark_gaps(lake: Lake, outcomes: list[GapOutcome]) -> None:
    """Set status and detail of the given gaps with one Delta merge on (venue, gap_id); ``lake.merge``
    retries it when a concurrent writer (the stream appending new gaps) wins the commit race."""
    if not outcomes:
        return
    source = pa.table(
        {"gap_id": [o.gap_id for o in outcomes], "venue": [o.venue for o in outcomes],
         "status": [o.status for o in outcomes], "detail": [o.detail for o in outcomes]}
    )  # fmt: skip
    merge(lake, BRONZE_GAPS, source, ("venue", "gap_id"), update=("status", "detail"), insert=False)


async def afill_gaps(
    lake: Lake,
    *,
    venue: str | None = None,
    rest_url: str | None = None,
    progress: Callable[[int, int, GapOutcome], Any] | None = None,
    retry: RetryPolicy | None = None,
    commit_every: int = 50,
    now_ms: int | None = None,
) -> GapFillResult:
    """Fill every open gap (of ``venue``, or all). ``progress(done, total, outcome)`` after each gap."""
    started = time.perf_counter()
    now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    if venue is not None:
        rest_venue(venue)  # ConfigError for an unknown venue before anything else
    gaps = await asyncio.to_thread(open_gaps, lake, venue)
    result = GapFillResult(gaps=len(gaps))
    done = 0
    for venue_name in sorted({g["venue"] for g in gaps}):
        async with RestClient(rest_venue(venue_name), rest_url, retry=retry) as client:
            result.rest[venue_name] = client.stats
            filler = _Filler(lake, client, now_ms, [g for g in gaps if g["venue"] == venue_name])
            pending_rows: list[tuple[Any, ...]] = []
            pending: list[GapOutcome] = []
            for gap in (g for g in gaps if g["venue"] == venue_name):
                outcome, rows = await filler.fill(gap)
                pending.append(outcome)
                pending_rows += rows
                done += 1
                if progress is not None:
                    progress(done, len(gaps), outcome)
                if len(pending) >= commit_every:
                    await asyncio.to_thread(_commit, lake, pending_rows, pending, result)
                    pending_rows, pending = [], []
            await asyncio.to_thread(_commit, lake, pending_rows, pending, result)
    result.seconds = time.perf_counter() - started
    return result


def _commit(lake: Lake, rows: list[tuple[Any, ...]], outcomes: list[GapOutcome], result: GapFillResult) -> None:
    # Trades first, then the status: a crash in between leaves the gaps open and the next run (which
    # skips trades bronze already holds) closes them without writing anything twice.
    if rows:
        writer.append_rows(lake, BRONZE_TRADES, rows)
    mark_gaps(lake, outcomes)
    result.trades += len(rows)
    result.filled += sum(o.status == "filled" for o in outcomes)
    result.unfillable += sum(o.status == "unfillable" for o in outcomes)
    result.outcomes += outcomes


def fill_gaps(lake: Lake, **kwargs: Any) -> GapFillResult:
    """Blocking ``afill_gaps`` (CLI, Prefect tasks)."""
    return asyncio.run(afill_gaps(lake, **kwargs))
