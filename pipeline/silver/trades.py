"""bronze/trades -> silver/trades: deduplicate on (venue, instrument, trade_id) and insert only trades the
table does not hold yet (a Delta MERGE ... WHEN NOT MATCHED INSERT, done with a keyed anti-join over the
few files whose statistics overlap the batch, then one append)."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import polars as pl

from pipeline.lake.location import Lake
from pipeline.lake.tables import SILVER_TRADES, TRADE_KEY
from pipeline.silver import files
from pipeline.silver import writes

CANDLE_COLUMNS = ["venue", "market", "instrument", "trade_id", "price", "size", "side", "exchange_ts", "seq"]


def dedupe(batch: pl.DataFrame) -> pl.DataFrame:
    """One row per key. The same trade from ws and rest is kept once: the first received, then by source."""
    key = list(TRADE_KEY)
    # Hashing the key is ~20x cheaper than a unique() over three strings. Sorting the hashes finds the
    # repeated ones (~3x cheaper than is_duplicated); only rows sharing a hash (duplicates, or the rare
    # collision of two keys, which unique() on the real key then keeps apart) are looked at closer.
    hashes = batch.select(pl.struct(key).hash().alias("h"))["h"]
    ordered = hashes.sort()
    repeated = ordered.filter((ordered == ordered.shift(1)).fill_null(False))
    if repeated.len() == 0:
        return batch
    multi = batch.with_row_index("__i").filter(hashes.is_in(repeated.implode()))
    keep = multi.sort(["receive_ts", "source"], maintain_order=True).unique(key, keep="first", maintain_order=True)["__i"]
    drop = multi["__i"].filter(~multi["__i"].is_in(keep.implode()))
    return batch.filter(pl.repeat(True, batch.height, eager=True).scatter(drop, False))


@dataclass(frozen=True)
class Promoted:
    inserted: pl.DataFrame  # rows written to silver/trades in this run
    duplicates: int  # rows of the batch dropped as already known (in the batch or in the table)
    pending: Future[int] | None = None  # the write, when promote(background=True) left it running

    def wait(self) -> None:
        """Block until the write is committed; raises what the write raised."""
        if self.pending is not None:
            self.pending.result()


def existing_keys(lake: Lake, batch: pl.DataFrame) -> pl.DataFrame:
    """Keys silver/trades already holds in the batch's partitions and time range."""
    lo, hi = batch["exchange_ts"].min(), batch["exchange_ts"].max()
    fs = files.current_files(lake, SILVER_TRADES)
    fs = files.partition_filter(fs, "venue", batch["venue"].unique().to_list())
    fs = files.partition_filter(fs, "date", batch["date"].unique().to_list())
    fs = files.overlapping(fs, "exchange_ts", lo, hi + dt.timedelta(microseconds=1))
    if fs.actions.height == 0:
        return pl.DataFrame(schema={k: pl.String for k in TRADE_KEY})
    instruments = batch["instrument"].unique().implode()
    return (
        files.scan(lake, fs, [*TRADE_KEY, "exchange_ts"])
        .filter(pl.col("exchange_ts").is_between(lo, hi) & pl.col("instrument").is_in(instruments))
        .select(TRADE_KEY)
        .collect()
    )


def promote(lake: Lake, good: pl.DataFrame, *, background: bool = False) -> Promoted:
    """Write the new trades of a validated bronze batch to silver/trades (insert-if-absent).

    ``background``: return as soon as the new rows are known and write them on a thread (polars encodes
    parquet without the GIL, so the caller's candle work overlaps it); ``Promoted.wait()`` joins it."""
    if good.height == 0:
        return Promoted(good, 0)
    unique = dedupe(good)
    known = existing_keys(lake, unique)
    fresh = unique.join(known, on=list(TRADE_KEY), how="anti") if known.height else unique
    if not background:
        writes.append(lake, SILVER_TRADES, fresh)
        return Promoted(fresh, good.height - fresh.height)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="silver-trades-write")
    pending = pool.submit(writes.append, lake, SILVER_TRADES, fresh)
    pool.shutdown(wait=False)  # the thread ends with the write
    return Promoted(fresh, good.height - fresh.height, pending)
