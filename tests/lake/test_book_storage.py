"""bronze/book_deltas files carry the storage settings chosen for them (issue #15's budget), read back from the
Parquet metadata of the files the lake's own append wrote: the codec of compression.py, no dictionary on the
float columns, a dictionary on the order counts, DELTA_BINARY_PACKED on the clocks and sequence numbers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.lake import compression, writer
from pipeline.lake.book_batches import book_deltas_table
from pipeline.lake.location import resolve_lake
from pipeline.lake.maintenance import maintain_table
from pipeline.lake.tables import BRONZE_BOOK_DELTAS, BRONZE_TRADES


def _okx(seq: int) -> tuple:
    bids = [[f"{100 + seq % 7}.{seq % 10}", f"{seq % 5}.25", "0", str(seq % 3)]]
    asks = [[f"{110 + seq % 5}.5", "0", "0", "0"]]
    return (
        "okx", "spot", "BTC-USDT", "books", 1786540440000 + seq, 1786540440000000 + seq, "ws", "s/BTC-USDT",
        seq, seq - 1, 0, False, bids, asks,
    )  # fmt: skip


def test_book_deltas_files_use_their_codec_and_encodings(tmp_path: Path) -> None:
    lake = resolve_lake(str(tmp_path / "lake"))
    writer.append(lake, BRONZE_BOOK_DELTAS, book_deltas_table([_okx(seq) for seq in range(1, 400)]))
    files = list((tmp_path / "lake" / "bronze" / "book_deltas").rglob("*.parquet"))
    assert files
    _assert_book_settings(files)
    assert writer.count_rows(lake, BRONZE_BOOK_DELTAS) == 798


def test_compaction_keeps_the_codec_and_encodings(tmp_path: Path) -> None:
    # OPTIMIZE writes with delta-rs' defaults (Snappy, dictionaries) unless it is given the table's settings.
    lake = resolve_lake(str(tmp_path / "lake"))
    for start in range(1, 400, 80):
        writer.append(lake, BRONZE_BOOK_DELTAS, book_deltas_table([_okx(seq) for seq in range(start, start + 80)]))
    report = maintain_table(lake, BRONZE_BOOK_DELTAS, vacuum=True, retention_hours=1)
    assert report is not None and not report.errors and report.files_before == 5 and report.files_after == 1
    table = writer.open_table(lake, BRONZE_BOOK_DELTAS)
    assert table is not None
    files = [Path(uri.removeprefix("file://")) for uri in table.file_uris()]
    assert len(files) == 1
    _assert_book_settings(files)
    assert writer.count_rows(lake, BRONZE_BOOK_DELTAS) == 800


def _assert_book_settings(files: list[Path]) -> None:
    codec, _ = compression.delta_codec(BRONZE_BOOK_DELTAS.key)
    assert codec == "ZSTD"
    for f in files:
        meta = pq.ParquetFile(f).metadata
        for g in range(meta.num_row_groups):
            cols = {
                meta.row_group(g).column(i).path_in_schema: meta.row_group(g).column(i) for i in range(meta.num_columns)
            }
            assert {c.compression for c in cols.values()} == {codec}
            for name in ("price", "size"):  # floats that seldom repeat: no dictionary page
                assert not cols[name].has_dictionary_page, name
                assert not any("DICTIONARY" in e for e in cols[name].encodings), (name, cols[name].encodings)
            assert cols["orders"].has_dictionary_page
            for name in ("exchange_ts", "receive_ts", "seq", "prev_seq", "checksum"):
                assert "DELTA_BINARY_PACKED" in cols[name].encodings, (name, cols[name].encodings)


def test_other_tables_keep_the_lake_codec(tmp_path: Path) -> None:
    # The override is book_deltas' alone: a trades append is still written in the lake's one codec.
    assert compression.delta_codec(BRONZE_TRADES.key) == (compression.DELTA, None)
    lake = resolve_lake(str(tmp_path / "lake"))
    names = BRONZE_TRADES.schema.names
    row = dict.fromkeys(names) | {"venue": "okx", "market": "spot", "instrument": "BTC-USDT", "trade_id": "1",
                                  "price": 100.0, "size": 0.5, "side": "buy", "source": "ws",
                                  "exchange_ts": dt.datetime(2026, 8, 1, tzinfo=dt.UTC),
                                  "receive_ts": dt.datetime(2026, 8, 1, tzinfo=dt.UTC), "date": dt.date(2026, 8, 1)}  # fmt: skip
    writer.append(lake, BRONZE_TRADES, pa.Table.from_pylist([row], schema=BRONZE_TRADES.schema))
    files = list((tmp_path / "lake" / "bronze" / "trades").rglob("*.parquet"))
    assert files
    meta = pq.ParquetFile(files[0]).metadata.row_group(0)
    assert {meta.column(i).compression for i in range(meta.num_columns)} == {compression.DELTA}
