"""bronze/trades -> silver/trades: deduplicate on (venue, instrument, trade_id) and insert only trades the
table does not hold yet (a Delta MERGE ... WHEN NOT MATCHED INSERT, done with a keyed semi-join over the
few files whose statistics overlap the batch, then one append)."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import cast

import polars as pl

from contracts import bronze as bronze_contracts
from contracts.common import KeyRepeats
from pipeline.lake.tables import SILVER_TRADES, TRADE_KEY
from pipeline.silver import files, writes
from pipeline.silver.handles import Handles

CANDLE_COLUMNS = ["venue", "market", "instrument", "trade_id", "price", "size", "side", "exchange_ts", "seq"]


def dedupe(batch: pl.DataFrame, repeats: KeyRepeats | None = None) -> pl.Series:
    """A mask of the rows to keep, one per key: the same trade from ws and rest is kept once, the first
    received, then by source. (A mask, not the filtered batch: see ``promote``.)"""
    key = list(TRADE_KEY)
    keep = pl.repeat(True, batch.height, eager=True)
    # Hashing the key is ~20x cheaper than a unique() over three strings. Only rows sharing a hash
    # (duplicates, or the rare collision of two keys, which unique() on the real key then keeps apart)
    # are looked at closer, and only in the columns that decide which copy stays.
    repeats = KeyRepeats.of(batch, TRADE_KEY, reuse=repeats)
    if repeats.shared.len() == 0:
        return keep
    multi = repeats.rows(batch, *key, "receive_ts", "source")
    first = multi.sort(["receive_ts", "source"], maintain_order=True).unique(key, keep="first", maintain_order=True)[
        "__i"
    ]
    return keep.scatter(multi["__i"].filter(~multi["__i"].is_in(first.implode())), False)


@dataclass(frozen=True)
class Promoted:
    inserted: pl.LazyFrame  # rows written to silver/trades in this run (a lazy filter over the batch)
    rows: int  # how many
    duplicates: int  # rows of the batch dropped as already known (in the batch or in the table)
    pending: Future[int] | None = None  # the write, when promote(background=True) left it running

    def wait(self) -> None:
        """Block until the write is committed; raises what the write raised."""
        if self.pending is not None:
            self.pending.result()


def existing_keys(tables: Handles, batch: pl.DataFrame) -> pl.DataFrame:
    """Keys silver/trades already holds in the batch's partitions and time range."""
    none = pl.DataFrame(schema=dict.fromkeys(TRADE_KEY, pl.String))
    fs = tables.files(SILVER_TRADES)
    if fs.actions.height == 0:  # a first run: not even the batch's ranges are needed
        return none
    lo, hi = cast(dt.datetime, batch["exchange_ts"].min()), cast(dt.datetime, batch["exchange_ts"].max())
    fs = files.partition_filter(fs, "venue", batch["venue"].unique().to_list())
    fs = files.partition_filter(fs, "date", batch["date"].unique().to_list())
    fs = files.overlapping(fs, "exchange_ts", lo, hi + dt.timedelta(microseconds=1))
    if fs.actions.height == 0:
        return none
    instruments = batch["instrument"].unique().implode()
    return (
        files.scan(tables.lake, fs, [*TRADE_KEY, "exchange_ts"])
        .filter(pl.col("exchange_ts").is_between(lo, hi) & pl.col("instrument").is_in(instruments))
        .select(TRADE_KEY)
        .collect()
    )


@dataclass(frozen=True)
class NewRows:
    keep: pl.Series  # the rows of the batch to insert: one per key, none silver/trades already holds
    consistent: bool  # the batch keeps the contract rule that copies of a trade agree (found on the way)


def new_rows(tables: Handles, batch: pl.DataFrame) -> NewRows:
    """Which rows of ``batch`` to insert, and whether its copies of a trade agree: both look only at the rows
    whose key repeats, so the batch's keys are hashed and sorted once for the two."""
    repeats = KeyRepeats.of(batch, TRADE_KEY)
    consistent = bronze_contracts.disagreeing_trade_keys(batch, repeats).len() == 0
    keep = dedupe(batch, repeats)
    known = existing_keys(tables, batch)  # (the batch's ranges cover those of its unique rows)
    if known.height:
        seen = batch.select(TRADE_KEY).with_row_index("__i").join(known, on=list(TRADE_KEY), how="semi")["__i"]
        keep = keep.scatter(seen, False)
    return NewRows(keep, consistent)


def new_rows_soon(tables: Handles, batch: pl.DataFrame) -> Future[NewRows]:
    """``new_rows`` on a thread: polars works without the GIL, so the caller validates the batch meanwhile
    (dedupe's sort runs on one core; the two together keep both busy)."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="silver-trades-dedupe")
    future = pool.submit(new_rows, tables, batch)
    pool.shutdown(wait=False)
    return future


def promote(
    tables: Handles, good: pl.DataFrame, *, keep: pl.Series | None = None, background: bool = False
) -> Promoted:
    """Write the new trades of a validated bronze batch to silver/trades (insert-if-absent).

    The new trades stay a lazy filter over ``good``, never a copy of it (a copy touches ~170 bytes of fresh
    memory a row, which cost more than the filter): the write streams them into its file and the candles
    aggregate them straight from the batch.

    ``keep``: ``new_rows(tables, good).keep`` when the caller has it already. ``background``: return as soon as
    the new rows are known and write them on a thread (polars encodes parquet without the GIL, so the
    caller's candle work overlaps it); ``Promoted.wait()`` joins it."""
    if good.height == 0:
        return Promoted(good.lazy(), 0, 0)
    if keep is None:
        keep = new_rows(tables, good).keep
    fresh, rows = good.lazy().filter(keep), int(keep.sum())
    if rows == 0:
        return Promoted(fresh, 0, good.height)
    if not background:
        writes.append(tables, SILVER_TRADES, fresh)
        return Promoted(fresh, rows, good.height - rows)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="silver-trades-write")
    pending = pool.submit(writes.append, tables, SILVER_TRADES, fresh)
    pool.shutdown(wait=False)  # the thread ends with the write
    return Promoted(fresh, rows, good.height - rows, pending)
