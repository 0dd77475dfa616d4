"""The one Parquet compression of the lake's appends: delta-rs' (``writer.append``: the stream, backfills,
small tables) and polars' (``fast_append``: silver), so a table's files do not depend on which wrote them.

Snappy, because it is also what every other delta-rs write uses unasked (merges, OPTIMIZE, overwrites), so
every file of the lake has one codec that every Parquet reader reads; LZ4 (LZ4_RAW) bought nothing
measurable. Measured (2-core machine, busy: A/B runs interleaved, user+sys CPU of the process):
  - run_silver over 4 M trades, bronze and silver both in the codec, 10 runs each: median 3.71 CPU-s
    Snappy vs 3.63 LZ4 (ranges 3.48-4.67 vs 3.51-4.09: within noise);
  - one silver/trades file of 4 M trades, 10 runs each: polars write 1.10 vs 1.12 CPU-s, polars read
    0.50 vs 0.48; delta-rs bronze write 2.02 vs 1.97;
  - sizes: Snappy files 3-4 % larger (silver/trades 122 vs 118 MB, bronze/trades 98 vs 95 MB).

One exception, named here so it stays the one place: bronze/book_deltas (the lake's largest table by rows,
issue #15's storage budget of 1/8 of the raw JSON). Its float64 prices and sizes barely compress under Snappy;
ZSTD 3 with no dictionary on them takes the rows from 11.35 to 8.26 bytes (1/5.4 -> 1/7.4 of the JSON) for
+0.07 us of delta-rs CPU a row (benchmarks/bench_book_storage.py; ZSTD 9: 7.76 bytes, 1/7.9, +0.34 us).
ZSTD is read by every Parquet reader the lake uses (delta-rs, polars, pyarrow, duckdb).
"""

from typing import Final, Literal

DeltaCodec = Literal["SNAPPY", "ZSTD"]  # the delta-rs codecs the lake uses

DELTA: Final[DeltaCodec] = "SNAPPY"  # deltalake's WriterProperties name
POLARS: Final = "snappy"  # polars' name for the same codec
SUFFIX: Final = "snappy"  # in file names, as delta-rs spells it

# Per-table exceptions to DELTA for delta-rs appends: table key -> (codec, level).
DELTA_BY_TABLE: Final[dict[str, tuple[DeltaCodec, int]]] = {"bronze/book_deltas": ("ZSTD", 3)}


def delta_codec(table_key: str) -> tuple[DeltaCodec, int | None]:
    """The delta-rs codec and level of a table's appends (level None: the codec's default)."""
    return DELTA_BY_TABLE.get(table_key, (DELTA, None))
