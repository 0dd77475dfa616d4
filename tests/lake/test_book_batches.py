"""bronze/book_deltas rows come grouped by book, each book's messages and levels in their order, and the
table's Parquet files use the delta encoding on its sequence and clock columns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipeline.lake import writer
from pipeline.lake.book_batches import book_deltas_table
from pipeline.lake.location import resolve_lake
from pipeline.lake.tables import BRONZE_BOOK_DELTAS


def _okx(inst: str, seq: int, bids: list[list[Any]], asks: list[list[Any]]) -> tuple:
    return (
        "okx", "spot", inst, "books", 1786540440000 + seq, 1786540440000000 + seq, "ws", f"s/{inst}",
        seq, seq - 1, 0, False, bids, asks,
    )  # fmt: skip


def _deribit(inst: str, seq: int, bids: list[tuple], asks: list[tuple]) -> tuple:
    return (
        "deribit", "option", inst, f"book.{inst}.100ms", 1786540440000 + seq, 1786540440000000 + seq, "ws",
        f"s/{inst}", seq, seq - 1, None, False, bids, asks,
    )  # fmt: skip


def test_rows_grouped_by_book_in_message_order() -> None:
    messages = [
        _okx("BTC-USDT", 11, [["100.5", "1", "0", "1"], ["100.4", "0", "0", "0"]], [["100.6", "2", "0", "3"]]),
        _deribit("ETH-1", 7, [(0.05, 3.0, None, None, "new")], []),
        _okx("ADA-USDT", 5, [], [["0.39", "10", "0", "2"]]),
        _okx("BTC-USDT", 12, [], []),  # a keep-alive: one row with no side
        _okx("BTC-USDT", 13, [["100.3", "4", "0", "1"]], []),
        _deribit("ETH-1", 8, [], [(0.06, 0.0, None, None, "delete")]),
        _okx("ADA-USDT", 6, [["0.38", "5", "0", "1"]], []),
    ]
    table = book_deltas_table(messages)
    got = list(
        zip(
            table.column("instrument").to_pylist(),
            table.column("seq").to_pylist(),
            table.column("side").to_pylist(),
            table.column("price").to_pylist(),
            table.column("size").to_pylist(),
            strict=True,
        )
    )
    # books in the order they first appear; inside a book the messages and levels as they came
    assert got == [
        ("BTC-USDT", 11, "bid", 100.5, 1.0),
        ("BTC-USDT", 11, "bid", 100.4, 0.0),
        ("BTC-USDT", 11, "ask", 100.6, 2.0),
        ("BTC-USDT", 12, None, None, None),
        ("BTC-USDT", 13, "bid", 100.3, 4.0),
        ("ETH-1", 7, "bid", 0.05, 3.0),
        ("ETH-1", 8, "ask", 0.06, 0.0),
        ("ADA-USDT", 5, "ask", 0.39, 10.0),
        ("ADA-USDT", 6, "bid", 0.38, 5.0),
    ]
    assert table.column("orders").to_pylist() == [1, 0, 3, None, 1, None, None, 2, 1]
    assert table.column("action").to_pylist()[4:7] == [None, "new", "delete"]


def test_book_deltas_files_delta_encode_seq_and_clocks(tmp_path: Path) -> None:
    lake = resolve_lake(str(tmp_path / "lake"))
    rows = [_okx("BTC-USDT", seq, [[f"{100 + seq % 7}.5", str(seq % 5), "0", "1"]], []) for seq in range(1, 500)]
    writer.append(lake, BRONZE_BOOK_DELTAS, book_deltas_table(rows))
    files = list((tmp_path / "lake").rglob("*.parquet"))
    assert files
    meta = pq.ParquetFile(files[0]).metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)}
    for name in ("exchange_ts", "receive_ts", "seq", "prev_seq", "checksum"):
        assert "DELTA_BINARY_PACKED" in encodings[name], (name, encodings[name])
    assert writer.count_rows(lake, BRONZE_BOOK_DELTAS) == 499


def test_okx_levels_of_other_shapes_read_as_they_did() -> None:
    # OKX levels are 4 strings, read by Arrow as lists; a number (a ccxt re-serialised capture) or a shorter
    # level later in a message take the column-by-column path, with the same columns.
    good = _okx("BTC-USDT", 1, [["100.5", "1", "0", "2"]], [["100.6", "0", "0", "0"]])
    number = _okx("BTC-USDT", 2, [[100.4, "2", "0", "1"]], [])
    short = _okx("BTC-USDT", 3, [["100.3", "3", "0", "1"], ["100.2", "4"]], [])
    cases = [
        ([good], [100.5, 100.6], [1.0, 0.0], [2, 0]),
        ([good, number], [100.5, 100.6, 100.4], [1.0, 0.0, 2.0], [2, 0, 1]),
        ([good, short], [100.5, 100.6, 100.3, 100.2], [1.0, 0.0, 3.0, 4.0], [2, 0, 1, None]),
    ]
    for rows, price, size, orders in cases:
        table = book_deltas_table(rows)
        assert table.column("price").to_pylist() == price
        assert table.column("size").to_pylist() == size
        assert table.column("orders").to_pylist() == orders
        assert table.column("action").null_count == table.num_rows
    bad = _okx("BTC-USDT", 4, [["1O0.1", "1", "0", "1"]], [])  # a letter O: refused, as before
    try:
        book_deltas_table([good, bad])
    except (ValueError, TypeError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        assert "1O0.1" in str(exc)
    else:
        raise AssertionError("an unreadable price must raise, so the flush rejects its message")
