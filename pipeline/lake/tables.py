"""The catalogue of lake tables: name, schema, partitioning, and the converter from row tuples."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from pipeline.lake import batches, book_batches, schemas


@dataclass(frozen=True)
class TableSpec:
    layer: str
    name: str
    schema: pa.Schema
    partition_by: tuple[str, ...]
    from_rows: Callable[[Sequence[tuple[Any, ...]]], pa.Table] | None = None
    # Columns whose values almost never repeat (ids, clocks): a Parquet dictionary only costs time there
    # (bronze/trades: 0.70 -> 0.53 us a row written, and smaller files).
    plain_columns: tuple[str, ...] = ()
    # Integer columns that move by small steps (sequence numbers, clocks, counts): DELTA_BINARY_PACKED, no
    # dictionary (bronze/book_deltas: 13.5 -> 11.4 bytes a level row with the rows grouped by book).
    delta_columns: tuple[str, ...] = ()
    # Delta table properties set when a write creates the table (pairs: the spec is hashable).
    configuration: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        return f"{self.layer}/{self.name}"


# The stream appends to the bronze tables every few seconds through open delta-rs handles, which keep every
# commit since the last checkpoint and write a checkpoint by re-reading them (one thread per file: ~90
# threads at the default interval of 100). A checkpoint every 20 versions keeps both small (issue #8).
STREAMED = (("delta.checkpointInterval", "20"),)

BRONZE_TRADES = TableSpec(
    "bronze", "trades", schemas.TRADES_SCHEMA, ("venue", "date"), batches.trades_table,
    plain_columns=("trade_id", "seq", "exchange_ts", "receive_ts"), configuration=STREAMED,
)  # fmt: skip
BRONZE_QUOTES = TableSpec(
    "bronze", "quotes", schemas.QUOTES_SCHEMA, ("venue", "date"), batches.quotes_table, configuration=STREAMED
)
BRONZE_REJECTS = TableSpec(
    "bronze", "rejects", schemas.REJECTS_SCHEMA, ("venue", "date"), batches.rejects_table, configuration=STREAMED
)
BRONZE_GAPS = TableSpec("bronze", "gaps", schemas.GAPS_SCHEMA, ("venue",), batches.gaps_table, configuration=STREAMED)

# Candles are few per day per instrument and history arrives years at a time: partitioning them by date
# would write one tiny file per day per commit (a 400-day backfill made 4,800 files).
BRONZE_CANDLES = TableSpec(
    "bronze",
    "candles",
    schemas.BRONZE_CANDLES_SCHEMA,
    ("venue", "timeframe"),
    batches.candles_table,
    configuration=STREAMED,
)

# Every level of every full-depth book message (issue #15); ``session`` + ``seq`` follow a chain.
BRONZE_BOOK_DELTAS = TableSpec(
    "bronze", "book_deltas", schemas.BOOK_DELTAS_SCHEMA, ("venue", "date"), book_batches.book_deltas_table,
    # price/size: a dictionary of floats that seldom repeat only costs (ZSTD 3: 9.60 -> 8.45 bytes a row);
    # orders keep the default dictionary (few distinct counts: 0.66 -> 0.47 bytes a row against delta).
    plain_columns=("price", "size"), delta_columns=("exchange_ts", "receive_ts", "seq", "prev_seq", "checksum"),
    configuration=STREAMED,
)  # fmt: skip
# Derivatives state (funding, open interest, mark/index prices) and liquidation orders (issue #17).
BRONZE_DERIVATIVES = TableSpec(
    "bronze", "derivatives", schemas.DERIVATIVES_SCHEMA, ("venue", "date"), batches.derivatives_table,
    configuration=STREAMED,
)  # fmt: skip
BRONZE_LIQUIDATIONS = TableSpec(
    "bronze", "liquidations", schemas.LIQUIDATIONS_SCHEMA, ("venue", "date"), batches.liquidations_table,
    configuration=STREAMED,
)  # fmt: skip

# The tables the stream and the capture import write (the stream's flusher knows each of them).
BRONZE_TABLES: tuple[TableSpec, ...] = (
    BRONZE_TRADES,
    BRONZE_QUOTES,
    BRONZE_REJECTS,
    BRONZE_GAPS,
    BRONZE_CANDLES,
    BRONZE_BOOK_DELTAS,
    BRONZE_DERIVATIVES,
    BRONZE_LIQUIDATIONS,
)

# Settled funding history over REST (backfill --kind funding); a few rows a day, so one partition per venue.
BRONZE_FUNDING = TableSpec("bronze", "funding", schemas.FUNDING_SCHEMA, ("venue",), batches.funding_table)

# silver/candles: written by the silver layer (merge on its key), read by gold.
SILVER_CANDLES = TableSpec("silver", "candles", schemas.CANDLES_SCHEMA, ("venue", "timeframe"))
CANDLE_KEY: tuple[str, ...] = ("venue", "instrument", "timeframe", "open_time")

# bronze/backfill_jobs: backfill checkpoints (pipeline.backfill); silver/instruments: the universe.
BACKFILL_JOBS = TableSpec("bronze", "backfill_jobs", schemas.BACKFILL_JOBS_SCHEMA, ("venue",))
SILVER_INSTRUMENTS = TableSpec("silver", "instruments", schemas.INSTRUMENTS_SCHEMA, ("venue",))
INSTRUMENT_KEY: tuple[str, ...] = ("venue", "instrument", "valid_from")

# silver/trades: validated bronze trades, deduplicated on TRADE_KEY (insert-if-absent, never blind append).
SILVER_TRADES = TableSpec("silver", "trades", schemas.TRADES_SCHEMA, ("venue", "date"))
TRADE_KEY: tuple[str, ...] = ("venue", "instrument", "trade_id")
SILVER_QUOTE_BARS = TableSpec("silver", "quote_bars", schemas.QUOTE_BARS_SCHEMA, ("venue", "date"))
QUOTE_BAR_KEY: tuple[str, ...] = ("venue", "instrument", "open_time")
# silver/funding: settled funding rates, merged on FUNDING_KEY (REST history wins over the stream's prediction).
SILVER_FUNDING = TableSpec("silver", "funding", schemas.SILVER_FUNDING_SCHEMA, ("venue",))
FUNDING_KEY: tuple[str, ...] = ("venue", "instrument", "funding_time")
# silver/derivative_bars: 1-minute mark/index/basis/open interest/funding/liquidation bars, keyed like quote bars.
SILVER_DERIVATIVE_BARS = TableSpec("silver", "derivative_bars", schemas.DERIVATIVE_BARS_SCHEMA, ("venue", "date"))
DERIVATIVE_BAR_KEY: tuple[str, ...] = ("venue", "instrument", "open_time")
# Books rebuilt from bronze/book_deltas (pipeline.silver.books): top-N snapshots on a time grid, the verified
# segments they come from (breaks recorded), and each chain's book where the last run left it.
SILVER_BOOK_SNAPSHOTS = TableSpec("silver", "book_snapshots", schemas.BOOK_SNAPSHOTS_SCHEMA, ("venue", "date"))
BOOK_SNAPSHOT_KEY: tuple[str, ...] = ("venue", "instrument", "channel", "ts")
SILVER_BOOK_SEGMENTS = TableSpec("silver", "book_segments", schemas.BOOK_SEGMENTS_SCHEMA, ("venue",))
BOOK_SEGMENT_KEY: tuple[str, ...] = ("segment_id",)
SILVER_BOOK_STATE = TableSpec("silver", "book_state", schemas.BOOK_STATE_SCHEMA, ())
# Per-minute book features (pipeline.silver.books.features) and the open minutes carried between runs.
SILVER_BOOK_FEATURES = TableSpec("silver", "book_features", schemas.BOOK_FEATURES_SCHEMA, ("venue", "date"))
BOOK_FEATURE_KEY: tuple[str, ...] = ("venue", "instrument", "channel", "open_time")
SILVER_BOOK_FEATURE_STATE = TableSpec("silver", "book_feature_state", schemas.BOOK_FEATURE_STATE_SCHEMA, ())
SILVER_QUARANTINE = TableSpec("silver", "quarantine", schemas.QUARANTINE_SCHEMA, ("date",))
SILVER_WATERMARKS = TableSpec("silver", "watermarks", schemas.WATERMARKS_SCHEMA, ())
SILVER_TABLES: tuple[TableSpec, ...] = (
    SILVER_TRADES,
    SILVER_CANDLES,
    SILVER_QUOTE_BARS,
    SILVER_FUNDING,
    SILVER_DERIVATIVE_BARS,
    SILVER_BOOK_SNAPSHOTS,
    SILVER_BOOK_SEGMENTS,
    SILVER_BOOK_STATE,
    SILVER_BOOK_FEATURES,
    SILVER_BOOK_FEATURE_STATE,
    SILVER_QUARANTINE,
    SILVER_WATERMARKS,
)

# Every Delta table of the lake, in the order `cryptolake tables` lists them.
ALL_TABLES: tuple[TableSpec, ...] = (*BRONZE_TABLES, BRONZE_FUNDING, BACKFILL_JOBS, *SILVER_TABLES, SILVER_INSTRUMENTS)
