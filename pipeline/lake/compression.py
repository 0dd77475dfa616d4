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
"""

from typing import Final

DELTA: Final = "SNAPPY"  # deltalake's WriterProperties name
POLARS: Final = "snappy"  # polars' name for the same codec
SUFFIX: Final = "snappy"  # in file names, as delta-rs spells it
