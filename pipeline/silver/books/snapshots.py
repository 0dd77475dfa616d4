"""silver/book_snapshots rows from a replay's samples: checked, one per (venue, instrument, channel, ts).

Two chains can cover the same instant (a capture imported beside the stream of the same hours, a
resubscription overlapping its old session): the row kept is the freshest book (smallest ``age_ms``), then
the smallest ``segment_id``, a total order, so the table is the same whatever order the chains arrive in.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from contracts.silver import SilverBookSnapshots
from pipeline.lake.tables import BOOK_SNAPSHOT_KEY, SILVER_BOOK_SNAPSHOTS
from pipeline.silver import writes
from pipeline.silver.books.segments import segment_id
from pipeline.silver.handles import Handles
from pipeline.silver.validate import Checked, check
from pipeline.silver.writes import Written

KEY = list(BOOK_SNAPSHOT_KEY)


def snapshot_rows(samples: pl.DataFrame) -> pl.DataFrame:
    """Table rows (SILVER_BOOK_SNAPSHOTS columns) from ``rebuild``'s samples, one per key."""
    rows = samples.with_columns(
        segment_id=segment_id(pl.col("session"), pl.col("segment_no")), date=pl.col("ts").dt.date()
    )
    return best_per_key(writes.conform(rows, SILVER_BOOK_SNAPSHOTS))


def best_per_key(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.sort([*KEY, "age_ms", "segment_id"]).unique(KEY, keep="first", maintain_order=True)


def checked(rows: pl.DataFrame, *, run_id: str, detected: dt.datetime) -> Checked:
    """The contract over the rows; failures go to quarantine with the rule, the rest are written."""
    return check(
        SilverBookSnapshots.to_schema(),
        rows,
        SILVER_BOOK_SNAPSHOTS.key,
        run_id=run_id,
        detected=detected,
        fail_share=1.0,
    )


def write(tables: Handles, rows: pl.DataFrame) -> Written:
    """Upsert ``rows`` against the table's rows of the same chains and times (the freshest book wins)."""
    if rows.height == 0:
        return Written()
    lo = rows["ts"].min()
    hi = rows["ts"].max()
    assert isinstance(lo, dt.datetime) and isinstance(hi, dt.datetime)
    where = pl.col("instrument").is_in(rows["instrument"].unique().implode())
    existing = writes.existing_rows(tables, SILVER_BOOK_SNAPSHOTS, "ts", lo, hi + dt.timedelta(microseconds=1), where)
    if existing.height:
        rows = best_per_key(
            pl.concat([writes.conform(existing, SILVER_BOOK_SNAPSHOTS), rows])
        )  # unchanged: not written
    return writes.upsert(tables, SILVER_BOOK_SNAPSHOTS, rows, existing, BOOK_SNAPSHOT_KEY)
