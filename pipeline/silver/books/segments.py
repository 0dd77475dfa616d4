"""Verified segments: from a venue snapshot until the next break, one ``silver/book_segments`` row each.

A break found while rebuilding (a chain break, a crossed book, a bronze ``kind = book`` gap at that message,
a REST snapshot the updates do not chain onto) ends its segment with ``end_reason`` and the message that
broke it (``break_ts``/``break_seq``, ``gap_id`` where bronze named it): breaks are recorded here rather
than as new bronze/gaps rows, since bronze already holds the gaps its verifier found and silver only adds
the place each one ends a segment. A segment followed by the next snapshot of its chain without a break
ends with ``end_reason = snapshot``; the last one of a chain stays ``open``.

Rows are merged across runs: a run adds its messages to the segments they continue.
"""

from __future__ import annotations

import polars as pl

from pipeline.lake.schemas import BOOK_SEGMENTS_SCHEMA
from pipeline.silver.books import kernel
from pipeline.silver.books.rebuild import CHAIN

SEGMENTS_POLARS = pl.Schema(pl.DataFrame(BOOK_SEGMENTS_SCHEMA.empty_table()).schema)
_BREAKS = {
    kernel.BROKE_CHAIN: "chain",
    kernel.BROKE_CROSSED: "crossed",
    kernel.BROKE_GAP: "gap",
    kernel.BROKE_REST: "rest_chain",
}


def segment_id(session: pl.Expr, segment_no: pl.Expr) -> pl.Expr:
    return pl.concat_str(session, pl.lit("#"), segment_no.cast(pl.String))


def new_segment_rows(messages: pl.DataFrame, last_segment: pl.DataFrame) -> pl.DataFrame:
    """What one replay says about each segment it touched (BOOK_SEGMENTS columns; ``messages`` counts only
    this replay's). ``last_segment``: CHAIN + ``segment_no`` of each chain's newest segment (end states)."""
    m = messages.filter(pl.col("segment_no") > 0)
    good = pl.col("status").is_in([kernel.APPLIED, kernel.STARTED])
    broke = pl.col("status").is_in(list(_BREAKS))
    reason = pl.col("status").replace_strict(_BREAKS, default=None, return_dtype=pl.String)
    rows = m.group_by([*CHAIN, "segment_no"]).agg(
        start_ts=pl.col("exchange_ts").filter(pl.col("is_snapshot")).first(),
        start_seq=pl.col("seq").filter(pl.col("is_snapshot")).first(),
        end_ts=pl.col("exchange_ts").filter(good).last(),
        end_seq=pl.col("seq").filter(good).last(),
        messages=good.sum().cast(pl.Int64),
        end_reason=reason.filter(broke).first(),
        break_ts=pl.col("exchange_ts").filter(broke).first(),
        break_seq=pl.col("seq").filter(broke).first(),
        gap_id=pl.col("gap_id").filter(broke).first(),
        detail=pl.col("gap_kind").filter(broke).first(),
    )
    last = last_segment.select(*CHAIN, __last="segment_no")
    rows = rows.join(last, on=CHAIN, how="left").with_columns(
        end_reason=pl.when(pl.col("end_reason").is_null() & (pl.col("segment_no") < pl.col("__last")))
        .then(pl.lit("snapshot"))
        .otherwise("end_reason")
    )
    return _finish(rows)


def _finish(rows: pl.DataFrame) -> pl.DataFrame:
    return (
        rows.with_columns(
            segment_id=segment_id(pl.col("session"), pl.col("segment_no")),
            status=pl.when(pl.col("end_reason").is_null()).then(pl.lit("open")).otherwise(pl.lit("ended")),
            detail=pl.when(pl.col("end_reason") == "gap")
            .then(pl.lit("bronze gap: ") + pl.col("detail").fill_null("book"))
            .otherwise(pl.col("detail")),
        )
        .select(SEGMENTS_POLARS.names())
        .cast(SEGMENTS_POLARS)
    )


def merge_segments(new: pl.DataFrame, existing: pl.DataFrame) -> pl.DataFrame:
    """``new`` (this run's) laid over ``existing`` rows of the same segments: the start kept, the end
    advanced, the messages added, a break or a later snapshot recorded."""
    if existing.height == 0:
        return new
    old = existing.select(
        "segment_id", o_start_ts="start_ts", o_start_seq="start_seq", o_end_ts="end_ts", o_end_seq="end_seq",
        o_messages="messages", o_reason="end_reason", o_break_ts="break_ts", o_break_seq="break_seq",
        o_gap="gap_id", o_detail="detail",
    )  # fmt: skip
    j = new.join(old, on="segment_id", how="left")
    has_old = pl.col("o_messages").is_not_null()
    newer_end = pl.col("end_ts").is_not_null()
    # a break stays the break; "snapshot" (replaced) only fills an open segment
    old_break = pl.col("o_reason").is_not_null() & (pl.col("o_reason") != "snapshot")
    merged = j.with_columns(
        start_ts=pl.coalesce("o_start_ts", "start_ts"),
        start_seq=pl.when(has_old).then("o_start_seq").otherwise("start_seq"),
        end_ts=pl.coalesce("end_ts", "o_end_ts"),
        end_seq=pl.when(newer_end).then("end_seq").otherwise("o_end_seq"),
        messages=pl.col("messages") + pl.col("o_messages").fill_null(0),
        end_reason=pl.when(old_break).then("o_reason").otherwise(pl.coalesce("end_reason", "o_reason")),
        break_ts=pl.when(old_break).then("o_break_ts").otherwise("break_ts"),
        break_seq=pl.when(old_break).then("o_break_seq").otherwise("break_seq"),
        gap_id=pl.when(old_break).then("o_gap").otherwise("gap_id"),
        detail=pl.when(old_break).then("o_detail").otherwise("detail"),
    )
    return merged.with_columns(
        status=pl.when(pl.col("end_reason").is_null()).then(pl.lit("open")).otherwise(pl.lit("ended"))
    ).select(SEGMENTS_POLARS.names())


def replaced(existing: pl.DataFrame, last_segment: pl.DataFrame) -> pl.DataFrame:
    """Open segments of ``existing`` that a later snapshot of their chain has since replaced, now ended."""
    last = last_segment.select(*CHAIN, __last="segment_no")
    return (
        existing.filter(pl.col("end_reason").is_null())
        .join(last, on=CHAIN, how="inner")
        .filter(pl.col("segment_no") < pl.col("__last"))
        .with_columns(end_reason=pl.lit("snapshot"), status=pl.lit("ended"))
        .select(SEGMENTS_POLARS.names())
    )
