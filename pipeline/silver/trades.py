"""bronze/trades -> silver/trades: deduplicate on (venue, instrument, trade_id) and insert only trades the
table does not hold yet (a Delta MERGE ... WHEN NOT MATCHED INSERT, done with a keyed anti-join over the
few files whose statistics overlap the batch, then one append)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from pipeline.lake import writer
from pipeline.lake.location import Lake
from pipeline.lake.tables import SILVER_TRADES, TRADE_KEY
from pipeline.silver import files
from pipeline.silver.writes import conform

CANDLE_COLUMNS = ["venue", "market", "instrument", "trade_id", "price", "size", "side", "exchange_ts", "seq"]


def dedupe(batch: pl.DataFrame) -> pl.DataFrame:
    """One row per key. The same trade from ws and rest is kept once: the first received, then by source."""
    key = list(TRADE_KEY)
    # Hashing the key and counting distinct hashes is ~20x cheaper than a unique() over three strings; when
    # every hash is distinct every key is too, which is the usual case for one run's batch.
    hashes = batch.select(pl.struct(key).hash().alias("h"))["h"]
    if hashes.n_unique() == batch.height:
        return batch
    dup = hashes.is_duplicated()
    single, multi = batch.filter(~dup), batch.filter(dup)
    multi = multi.sort(["receive_ts", "source"]).unique(key, keep="first", maintain_order=True)
    return pl.concat([single, multi])


@dataclass(frozen=True)
class Promoted:
    inserted: pl.DataFrame  # rows written to silver/trades in this run
    duplicates: int  # rows of the batch dropped as already known (in the batch or in the table)


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


def promote(lake: Lake, good: pl.DataFrame) -> Promoted:
    """Write the new trades of a validated bronze batch to silver/trades (insert-if-absent)."""
    if good.height == 0:
        return Promoted(good, 0)
    unique = dedupe(good)
    known = existing_keys(lake, unique)
    fresh = unique.join(known, on=list(TRADE_KEY), how="anti") if known.height else unique
    writer.append(lake, SILVER_TRADES, conform(fresh, SILVER_TRADES).to_arrow())
    return Promoted(fresh, good.height - fresh.height)
