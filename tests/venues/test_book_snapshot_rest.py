"""REST book snapshots a broken or snapshot-less stream book is resynchronised from (issue #15): OKX
``GET /api/v5/market/books`` and Deribit ``public/get_order_book`` become one BOOK_FIELDS snapshot message with
source "rest", levels in the layout the WebSocket parser gives, seq = the answer's seqId / change_id; an error
answer or a bad book is a FrameError naming what is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.errors import FrameError
from pipeline.lake.schemas import BOOK_FIELDS
from pipeline.venues import deribit, okx

OKX_BODY: dict[str, Any] = {
    "code": "0",
    "msg": "",
    "data": [
        {
            "asks": [["63921.5", "790.41", "0", "42"], ["63921.8", "0.32", "0", "1"]],
            "bids": [["63921.4", "421.93", "0", "28"]],
            "ts": "1786541241006",
            "seqId": 333794734980,
        }
    ],
}
DERIBIT_BODY: dict[str, Any] = {
    "jsonrpc": "2.0",
    "result": {
        "timestamp": 1786563104514,
        "change_id": 169600103676,
        "instrument_name": "BTC-PERPETUAL",
        "bids": [[63344.0, 12340.0], [63343.5, 20.0]],
        "asks": [[63344.5, 2000.0]],
        "best_bid_price": 63344.0,
    },
}


def _row(row: tuple[Any, ...]) -> dict[str, Any]:
    assert len(row) == len(BOOK_FIELDS)
    return dict(zip(BOOK_FIELDS, row, strict=True))


def test_okx_market_books_is_a_rest_snapshot_with_its_seq_id() -> None:
    assert okx.book_snapshot_path("BTC-USDT") == "/api/v5/market/books?instId=BTC-USDT&sz=400"
    row = _row(okx.book_snapshot_row(OKX_BODY, "BTC-USDT-SWAP", "books", 17))
    assert (row["venue"], row["market"], row["instrument"], row["channel"]) == ("okx", "swap", "BTC-USDT-SWAP", "books")
    assert (row["exchange_ts_ms"], row["receive_ts_us"], row["source"], row["session"]) == (
        1786541241006,
        17,
        "rest",
        None,
    )
    assert (row["seq"], row["prev_seq"], row["checksum"], row["is_snapshot"]) == (333794734980, None, None, True)
    assert row["bids"] == [["63921.4", "421.93", "0", "28"]]  # as sent: the checksum is computed on the strings
    assert row["asks"] == OKX_BODY["data"][0]["asks"]


def test_deribit_get_order_book_is_a_rest_snapshot_with_its_change_id() -> None:
    assert deribit.book_snapshot_path("ETH-PERPETUAL") == (
        "/api/v2/public/get_order_book?instrument_name=ETH-PERPETUAL&depth=10000"
    )
    row = _row(deribit.book_snapshot_row(DERIBIT_BODY, "BTC-PERPETUAL", "book.BTC-PERPETUAL.100ms", 5))
    assert (row["market"], row["channel"], row["source"], row["is_snapshot"]) == (
        "swap",
        "book.BTC-PERPETUAL.100ms",
        "rest",
        True,
    )
    assert (row["seq"], row["prev_seq"], row["exchange_ts_ms"]) == (169600103676, None, 1786563104514)
    # The WebSocket snapshot's layout: (price, amount, None, None, action).
    assert row["bids"] == [(63344.0, 12340.0, None, None, "new"), (63343.5, 20.0, None, None, "new")]
    assert row["asks"] == [(63344.5, 2000.0, None, None, "new")]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"code": "51001", "msg": "Instrument ID does not exist", "data": []}, "code '51001'"),
        ({"code": "0", "data": [{"asks": [], "bids": [], "ts": "1"}]}, "no seqId"),
        ({"code": "0", "data": [{"asks": [["-1", "1", "0", "1"]], "bids": [], "ts": "1", "seqId": 5}]}, "positive"),
        ({"code": "0", "data": []}, "okx market/books"),
    ],
)
def test_okx_refuses_an_error_or_a_bad_book(body: dict[str, Any], reason: str) -> None:
    with pytest.raises(FrameError, match=reason):
        okx.book_snapshot_row(body, "BTC-USDT", "books", 1)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"error": {"code": 10020, "message": "invalid_params"}}, "invalid_params"),
        ({"result": {"timestamp": 1, "change_id": 3, "bids": [[1.0, -2.0]], "asks": []}}, "amount >= 0"),
        ({"result": {"timestamp": 1, "bids": [], "asks": []}}, "change_id"),
        ({"result": {"timestamp": 1, "change_id": 3, "bids": None, "asks": []}}, "not a list"),
    ],
)
def test_deribit_refuses_an_error_or_a_bad_book(body: dict[str, Any], reason: str) -> None:
    with pytest.raises(FrameError, match=reason):
        deribit.book_snapshot_row(body, "BTC-PERPETUAL", "book.BTC-PERPETUAL.100ms", 1)
