"""bronze/book_deltas bytes per level update: where they go (per column) and what other Parquet settings would give.

The same rows (the simulator's book frames through the stream's path, as ``bench_book_ingest.py`` commits them)
rewritten with each variant through delta-rs, beside the raw JSON bytes of the same messages (issue #15's target:
at most 1/8). Variants: session 6's (Snappy, DELTA_BINARY_PACKED integers, dictionaries elsewhere), ZSTD alone,
today's (ZSTD 3, no dictionary on price/size, orders by dictionary: the lake's own ``writer.writer_properties``
of ``BRONZE_BOOK_DELTAS``), today's at ZSTD 9, and BYTE_STREAM_SPLIT for the floats. The write cost is CPU time
per level row of the delta-rs write alone.
"""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Literal

import pyarrow.parquet as pq
from bench_book_ingest import ingest
from book_frames import book_frames
from deltalake import ColumnProperties, WriterProperties, write_deltalake
from versions import versions_line

from pipeline.ingest.memory import configure_gc
from pipeline.lake import compression, writer
from pipeline.lake.compression import DeltaCodec
from pipeline.lake.tables import BRONZE_BOOK_DELTAS
from pipeline.venues import deribit, okx

FLOATS = ("price", "size")


SESSION6_DELTA = ("exchange_ts", "receive_ts", "seq", "prev_seq", "checksum", "orders")


def properties(
    codec: DeltaCodec,
    level: int | None,
    plain: tuple[str, ...],
    delta: tuple[str, ...],
    float_encoding: Literal["BYTE_STREAM_SPLIT"] | None = None,
) -> WriterProperties:
    columns = {
        **dict.fromkeys(plain, ColumnProperties(dictionary_enabled=False)),
        **dict.fromkeys(delta, ColumnProperties(dictionary_enabled=False, encoding="DELTA_BINARY_PACKED")),
    }
    if float_encoding is not None:
        columns.update(dict.fromkeys(FLOATS, ColumnProperties(dictionary_enabled=False, encoding=float_encoding)))
    return WriterProperties(compression=codec, compression_level=level, column_properties=columns)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="simulated seconds of book traffic")
    args = ap.parse_args()
    configure_gc()
    frames = book_frames(args.seconds, okx_instruments=50, deribit_options=120, checksum="crc32", updates_per_s=100.0)
    zero = [re.sub(rb'"checksum":-?\d+', b'"checksum":0', f) for f in frames.okx]  # the 2026 form
    stream = [(okx, f) for f in zero] + [(deribit, f) for f in frames.deribit]
    levels = frames.okx_levels + frames.deribit_levels
    raw = sum(len(f) for _, f in stream)
    _, rows, _, _, root, _ = ingest(stream, 200_000)
    files = sorted((root / "lake" / "bronze" / "book_deltas").rglob("*.parquet"))
    print(versions_line())
    print(f"{levels:,} level updates, {rows:,} rows, {raw / levels:.2f} raw JSON bytes per level update")
    per_column: Counter[str] = Counter()
    for f in files:
        meta = pq.ParquetFile(f).metadata
        for g in range(meta.num_row_groups):
            for c in range(meta.num_columns):
                col = meta.row_group(g).column(c)
                per_column[col.path_in_schema] += col.total_compressed_size
    print("  the stream's files by column (bytes per row): " + ", ".join(
        f"{k} {v / rows:.2f}" for k, v in per_column.most_common() if v / rows >= 0.05))  # fmt: skip
    tables = [pq.read_table(f) for f in files]  # each commit's rows in their order (partition columns aside)
    spec = BRONZE_BOOK_DELTAS
    codec, level = compression.delta_codec(spec.key)
    variants = (
        ("session 6: snappy", properties("SNAPPY", None, (), SESSION6_DELTA)),
        ("session 6 + zstd 3", properties("ZSTD", 3, (), SESSION6_DELTA)),
        (f"today: {codec.lower()} {level}, plain floats", writer.writer_properties(spec)),  # what the lake writes
        ("today at zstd 9", properties("ZSTD", 9, spec.plain_columns, spec.delta_columns)),
        ("zstd 3 + byte_stream_split floats", properties("ZSTD", 3, (), SESSION6_DELTA, "BYTE_STREAM_SPLIT")),
    )
    figures: dict[str, float] = {}
    for name, wp in variants:
        target = Path(tempfile.mkdtemp(prefix="bench-book-storage-")) / "t"
        t0 = time.process_time()
        for t in tables:
            write_deltalake(str(target), t, mode="append", writer_properties=wp)
        spent = time.process_time() - t0
        size = sum(p.stat().st_size for p in target.rglob("*.parquet"))
        shutil.rmtree(target.parent)
        figures[name] = size / rows
        print(f"  {name:36s} {size / rows:6.2f} bytes per row -> 1/{raw / size:.1f} of the raw JSON "
              f"(target 1/8); write {spent * 1e6 / rows:.2f} us CPU per row")  # fmt: skip
    shutil.rmtree(root)
    today = figures[variants[2][0]]
    print(f"RESULT book_bytes_per_level {today:.2f} (1/{raw / levels / today:.1f} of the raw JSON) | session6_bytes_per_level "
          f"{figures[variants[0][0]]:.2f} | raw_json_bytes_per_level {raw / levels:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
