"""The book of one instrument as of a time: ``book_at(lake, instrument, at)``.

The verified segment covering ``at`` is found in silver/book_segments; the book is rebuilt from the nearest
exact starting point at or before ``at``: the chain's silver/book_state when it is of that segment and not
after ``at``, else the venue snapshot that started the segment, plus the bronze deltas after it up to
``at`` (the state after the last message at or before ``at``, by exchange time). A time outside every
verified segment is answered with the break it falls in: the segment that ended before it, why, and the
bronze gap that named it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from pipeline.errors import CryptolakeError
from pipeline.lake.location import Lake
from pipeline.lake.tables import BRONZE_BOOK_DELTAS, BRONZE_GAPS, SILVER_BOOK_SEGMENTS
from pipeline.silver import files
from pipeline.silver.books.rebuild import CHAIN, empty_states, rebuild
from pipeline.silver.books.state import read_state
from pipeline.silver.books.step import DELTA_COLUMNS
from pipeline.silver.handles import Handles


@dataclass(frozen=True)
class BookAt:
    """The answer: a book (``bids``/``asks`` as (price, size), best first) or the break ``at`` falls in."""

    venue: str
    instrument: str
    at: dt.datetime
    channel: str | None = None
    segment_id: str | None = None
    bids: list[tuple[float, float]] = field(default_factory=list)
    asks: list[tuple[float, float]] = field(default_factory=list)
    last_seq: int | None = None
    last_ts: dt.datetime | None = None
    in_break: bool = False
    gap_id: str | None = None
    reason: str | None = None  # why there is no book (the break, or no segment at all)
    after_last_message: bool = False  # ``at`` is past the segment's last message (the stream may be behind)

    @property
    def age_ms(self) -> int | None:
        return None if self.last_ts is None else int((self.at - self.last_ts) / dt.timedelta(milliseconds=1))

    def as_dict(self) -> dict[str, Any]:
        return {
            "venue": self.venue, "instrument": self.instrument, "at": self.at.isoformat(), "channel": self.channel,
            "segment_id": self.segment_id, "last_seq": self.last_seq,
            "last_ts": self.last_ts.isoformat() if self.last_ts else None, "age_ms": self.age_ms,
            "bids": [list(x) for x in self.bids], "asks": [list(x) for x in self.asks],
            "in_break": self.in_break, "gap_id": self.gap_id, "reason": self.reason,
            "after_last_message": self.after_last_message,
        }  # fmt: skip


def _segments(tables: Handles, instrument: str, venue: str | None, channel: str | None) -> pl.DataFrame:
    lf = files.scan(tables.lake, tables.files(SILVER_BOOK_SEGMENTS)).filter(pl.col("instrument") == instrument)
    if venue is not None:
        lf = lf.filter(pl.col("venue") == venue)
    if channel is not None:
        lf = lf.filter(pl.col("channel") == channel)
    return lf.collect()


def _covering(segs: pl.DataFrame, at: dt.datetime) -> pl.DataFrame:
    """Segments whose verified span holds ``at``: from their snapshot to their last good message, or on
    past it while open; the freshest start first."""
    span = (pl.col("start_ts") <= at) & ((pl.col("end_ts") >= at) | (pl.col("status") == "open"))
    return segs.filter(span).sort(["start_ts", "segment_id"], descending=[True, False])


def _break_answer(tables: Handles, segs: pl.DataFrame, venue: str | None, instrument: str, at: dt.datetime) -> BookAt:
    before = segs.filter(pl.col("start_ts") <= at).sort("end_ts", descending=True)
    named = (before["gap_id"][0] if before.height else None) or ""  # "": no gap named
    gaps = (
        files.scan(tables.lake, tables.files(BRONZE_GAPS))
        .filter(
            (pl.col("kind") == "book")
            & (pl.col("instrument") == instrument)
            & (((pl.col("from_ts") <= at) & (pl.col("to_ts") >= at)) | (pl.col("gap_id") == named))
        )
        .collect()
        .sort(pl.col("gap_id") != named)  # the gap that ended the segment first
    )
    v = venue or (str(segs["venue"][0]) if segs.height else "")
    if before.height == 0 and gaps.height == 0:
        return BookAt(
            v, instrument, at, reason=f"no verified book of {instrument} starts at or before {at.isoformat()}"
        )
    last = before.row(0, named=True) if before.height else None
    gap_id = gaps["gap_id"][0] if gaps.height else (last["gap_id"] if last else None)
    parts = []
    if last is not None:
        why = last["end_reason"] or "open"
        parts.append(
            f"segment {last['segment_id']} ({last['channel']}) ended at {last['end_ts'].isoformat()} ({why}"
            + (f", broken at {last['break_ts'].isoformat()}" if last["break_ts"] is not None else "")
            + ")"
        )
    if gaps.height:
        g = gaps.row(0, named=True)
        parts.append(f"gap {g['gap_id']} from {g['from_ts'].isoformat()} to {g['to_ts'].isoformat()}: {g['detail']}")
    after = segs.filter(pl.col("start_ts") > at).sort("start_ts")
    if after.height:
        parts.append(f"the next verified book starts at {after['start_ts'][0].isoformat()}")
    return BookAt(
        v, instrument, at, channel=last["channel"] if last else None, in_break=True, gap_id=gap_id,
        reason=f"{at.isoformat()} falls in a break: " + "; ".join(parts),
    )  # fmt: skip


def _replay_to(tables: Handles, seg: dict[str, Any], at: dt.datetime, depth: int) -> BookAt | None:
    chain = {k: seg[k] for k in CHAIN}
    states, _ = read_state(tables)
    st = states.filter(*(pl.col(k) == v for k, v in chain.items()))
    use_state = (
        st.height == 1
        and bool(st["valid"][0])
        and st["segment_no"][0] == seg["segment_no"]
        and st["position_ts"][0] <= at
    )
    start = st if use_state else empty_states()
    lo = st["position_ts"][0] if use_state else seg["start_ts"]
    hi = at + dt.timedelta(microseconds=1)
    fs = files.overlapping(tables.files(BRONZE_BOOK_DELTAS), "exchange_ts", lo, hi)
    rows = (
        files.scan(tables.lake, fs, DELTA_COLUMNS)
        .with_columns(pl.col("session").fill_null(""))
        .filter(*(pl.col(k) == v for k, v in chain.items()))
        .filter((pl.col("exchange_ts") >= lo) & (pl.col("exchange_ts") <= at))
        .collect()
    )
    if use_state:  # only what comes after the state's position
        p_ts, p_seq, p_rcv = st["position_ts"][0], st["position_seq"][0], st["position_receive_ts"][0]
        low = -(2**63)
        seq = pl.col("seq").fill_null(low)
        p = p_seq if p_seq is not None else low
        later = (pl.col("exchange_ts") > p_ts) | (
            (pl.col("exchange_ts") == p_ts) & ((seq > p) | ((seq == p) & (pl.col("receive_ts") > p_rcv)))
        )
        rows = rows.filter(later)
    else:  # from the segment's own snapshot: nothing of the session before it
        rows = rows.filter(pl.col("exchange_ts") >= seg["start_ts"])
    gaps = files.scan(tables.lake, files.overlapping(tables.files(BRONZE_GAPS), "to_ts", lo, hi)).collect()
    replay = rebuild(rows, start, gaps, interval_ms=0, depth=depth)
    end = replay.states.filter(*(pl.col(k) == v for k, v in chain.items()))
    if end.height == 0 or not end["valid"][0]:
        return None
    if not use_state and end["segment_no"][0] != 1:  # replayed from the segment's snapshot: the first segment
        return None
    e = end.row(0, named=True)
    return BookAt(
        seg["venue"], seg["instrument"], at, channel=seg["channel"], segment_id=seg["segment_id"],
        bids=list(zip(e["bid_px"][:depth], e["bid_sz"][:depth], strict=True)),
        asks=list(zip(e["ask_px"][:depth], e["ask_sz"][:depth], strict=True)),
        last_seq=e["last_seq"], last_ts=e["last_ts"],
        after_last_message=seg["status"] == "open" and at > seg["end_ts"],
    )  # fmt: skip


def book_at(
    lake: Lake,
    instrument: str,
    at: dt.datetime,
    *,
    venue: str | None = None,
    channel: str | None = None,
    depth: int = 25,
    tables: Handles | None = None,
) -> BookAt:
    """The book of ``instrument`` as of ``at`` (see the module doc). Where several verified books cover
    ``at`` (two channels, or a capture beside the stream), the freshest one (smallest age) is given.
    ``tables``: the lake's tables opened once for many questions (``Handles(lake)``; it keeps the
    version it first read, so open a new one to see later writes)."""
    if at.tzinfo is None:
        raise CryptolakeError(f"book_at needs a timezone-aware time, got {at!r} (use UTC)")
    if depth < 1:
        raise CryptolakeError(f"depth must be at least 1, got {depth}")
    tables = tables if tables is not None else Handles(lake)
    if tables.table(SILVER_BOOK_SEGMENTS) is None:
        raise CryptolakeError("no silver/book_segments yet: run `cryptolake silver` after importing or streaming books")
    segs = _segments(tables, instrument, venue, channel)
    found = [
        book
        for seg in _covering(segs, at).iter_rows(named=True)
        if (book := _replay_to(tables, seg, at, depth)) is not None
    ]
    if not found:
        return _break_answer(tables, segs, venue, instrument, at)
    return min(found, key=lambda b: (b.age_ms or 0, b.segment_id or ""))


__all__ = ["BookAt", "book_at"]
