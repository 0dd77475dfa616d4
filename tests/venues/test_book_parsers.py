"""Full-depth book messages (OKX books*, Deribit book.*): rows as sent, bad levels refused whole, and the
bronze/book_deltas rows they explode into."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline.errors import FrameError
from pipeline.lake.schemas import BOOK_FIELDS
from pipeline.lake.tables import BRONZE_BOOK_DELTAS
from pipeline.venues import deribit, okx
from pipeline.venues.base import ParsedBatch


def okx_frame(action: str = "update", bids: Any = (), asks: Any = (), channel: str = "books", **item: Any) -> str:
    data = {"asks": asks, "bids": bids, "ts": "1786541241006", **item}  # sent as given (a tuple is a list)
    return json.dumps({"arg": {"channel": channel, "instId": "BTC-USDT-SWAP"}, "action": action, "data": [data]})


def deribit_frame(kind: str = "change", bids: Any = (), asks: Any = (), **data: Any) -> str:
    body = {"type": kind, "timestamp": 1786563085228, "instrument_name": "BTC-PERPETUAL", "change_id": 7,
            "bids": list(bids), "asks": list(asks), **data}  # fmt: skip
    return json.dumps(
        {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": "book.BTC-PERPETUAL.100ms", "data": body}}
    )


def book(row: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(BOOK_FIELDS, row, strict=True))


def test_okx_tick_by_tick_update_keeps_seq_prev_and_a_zero_checksum() -> None:
    out = ParsedBatch()
    frame = okx_frame("update", [["63921.4", "0", "0", "0"]], [["63921.5", "790.41", "0", "42"]],
                      channel="books-l2-tbt", seqId=333794734981, prevSeqId=333794734980, checksum=0)  # fmt: skip
    assert okx.parse(frame, 5, out) is None
    b = book(out.books[0])
    assert (b["channel"], b["seq"], b["prev_seq"], b["checksum"], b["is_snapshot"], b["session"]) == (
        "books-l2-tbt", 333794734981, 333794734980, 0, False, None,
    )  # fmt: skip
    assert b["bids"] == [["63921.4", "0", "0", "0"]] and out.quotes == []  # updates give no quote row
    table = BRONZE_BOOK_DELTAS.from_rows(out.books)  # type: ignore[misc]  # a callable field, not a method
    assert table.select(["side", "price", "size", "orders", "action"]).to_pylist() == [
        {"side": "bid", "price": 63921.4, "size": 0.0, "orders": 0, "action": None},
        {"side": "ask", "price": 63921.5, "size": 790.41, "orders": 42, "action": None},
    ]


def test_okx_keepalive_is_one_row_with_no_side() -> None:
    out = ParsedBatch()
    okx.parse(okx_frame("update", seqId=5, prevSeqId=5), 5, out)
    table = BRONZE_BOOK_DELTAS.from_rows(out.books)  # type: ignore[misc]  # a callable field, not a method
    assert table.num_rows == 1
    assert table.select(["side", "price", "seq", "prev_seq"]).to_pylist() == [
        {"side": None, "price": None, "seq": 5, "prev_seq": 5}
    ]


def test_okx_snapshot_is_a_book_message_and_a_quote_row() -> None:
    out = ParsedBatch()
    okx.parse(okx_frame("snapshot", [["10", "1", "0", "1"]], [["11", "2", "0", "3"]], seqId=9, prevSeqId=-1), 5, out)
    assert book(out.books[0])["prev_seq"] == -1 and book(out.books[0])["is_snapshot"] is True
    assert len(out.quotes) == 1


@pytest.mark.parametrize(
    ("bids", "asks", "reason"),
    [
        ([["abc", "1", "0", "1"]], [], "bid level is not [price, size, ...] numbers"),
        ([], [["11", "-1", "0", "1"]], "ask level needs a positive price and a size >= 0"),
        ([["0", "1", "0", "1"]], [], "bid level needs a positive price"),
        ([["nan", "1", "0", "1"]], [], "bid level needs a positive price"),
        ([["1_0", "1", "0", "1"]], [], "bid level is not [price, size, ...] numbers"),  # float() reads them,
        ([], [["11", " 2", "0", "1"]], "ask level is not [price, size, ...] numbers"),  # Arrow does not
        ([["１", "1", "0", "1"]], [], "bid level is not [price, size, ...] numbers"),
        ([["10", "1\t", "0", "1"]], [], "bid level is not [price, size, ...] numbers"),
        ([["10", "1", "0", "x"]], [], "bid level's order count is not a count"),
        ([["10", "1", "0", "²"]], [], "bid level's order count is not a count"),
        ([{"px": "10"}], [], "bid level is not [price, size, ...] numbers"),
        ([["10"]], [], "bid level is not [price, size, ...] numbers"),
        ("10", [], "bids is not a list"),
    ],
)
@pytest.mark.parametrize("action", ["snapshot", "update"])
def test_okx_bad_level_refuses_the_whole_frame(action: str, bids: Any, asks: Any, reason: str) -> None:
    out = ParsedBatch()
    good = [["9", "1", "0", "1"]]  # a good level before the bad one: nothing partial may remain
    frame = okx_frame(action, good + bids if isinstance(bids, list) else bids, good + asks if asks else asks)
    with pytest.raises(FrameError) as refused:
        okx.parse(frame, 5, out)
    assert reason in refused.value.reason and refused.value.reason.startswith("okx books: ")
    assert out.books == [] and out.quotes == []


def test_okx_unknown_book_action_is_a_reject() -> None:
    with pytest.raises(FrameError, match="unknown action 'partial'"):
        okx.parse(okx_frame("partial"), 5, ParsedBatch())


def test_deribit_change_levels_and_actions() -> None:
    out = ParsedBatch()
    frame = deribit_frame("change", [["delete", 62533, 0]], [["new", 63350.5, 8250], ["change", 63353, 10]],
                          prev_change_id=6)  # fmt: skip
    assert deribit.parse(frame, 5, out) is None
    b = book(out.books[0])
    assert (b["channel"], b["seq"], b["prev_seq"], b["checksum"], b["is_snapshot"]) == (
        "book.BTC-PERPETUAL.100ms", 7, 6, None, False,
    )  # fmt: skip
    table = BRONZE_BOOK_DELTAS.from_rows(out.books)  # type: ignore[misc]  # a callable field, not a method
    assert table.select(["side", "price", "size", "orders", "action"]).to_pylist() == [
        {"side": "bid", "price": 62533.0, "size": 0.0, "orders": None, "action": "delete"},
        {"side": "ask", "price": 63350.5, "size": 8250.0, "orders": None, "action": "new"},
        {"side": "ask", "price": 63353.0, "size": 10.0, "orders": None, "action": "change"},
    ]
    assert out.quotes == []


@pytest.mark.parametrize(
    "level",
    [["add", 1, 1], ["new", 0, 1], ["new", 1, -1], ["new", "x", 1], [1, 1], ["new", 1, 1, 1], "new", ["new", "1_0", 1]],
)
@pytest.mark.parametrize("kind", ["snapshot", "change"])
def test_deribit_bad_level_refuses_the_whole_frame(kind: str, level: Any) -> None:
    out = ParsedBatch()
    with pytest.raises(FrameError) as refused:
        deribit.parse(deribit_frame(kind, [["new", 5, 1], level]), 5, out)
    assert refused.value.reason.startswith("deribit book: bid level is not [new|change|delete, price > 0")
    assert out.books == [] and out.quotes == []


def test_deribit_book_without_change_id_is_a_reject() -> None:
    frame = json.loads(deribit_frame("change"))
    del frame["params"]["data"]["change_id"]
    with pytest.raises(FrameError, match="missing field 'change_id'"):
        deribit.parse(json.dumps(frame), 5, ParsedBatch())


def test_book_channels_in_our_vocabulary_and_the_default_configuration() -> None:
    from pipeline.config import load_config
    from pipeline.ingest.plan import plan_connections
    from pipeline.venues.base import Subscription

    assert okx.venue_channel(Subscription("book", "BTC-USDT")) == "books"
    assert deribit.venue_channel(Subscription("book", "ETH-PERPETUAL")) == "book.ETH-PERPETUAL.100ms"
    assert deribit.venue_channel(Subscription("option_book", "ETH-27DEC26-3000-C")) == "book.ETH-27DEC26-3000-C.100ms"
    # "book" takes the perpetual's book only; "option_book" the options': an option universe stays optional
    (plan,) = plan_connections(deribit, "ws://127.0.0.1:1", ["ETH-PERPETUAL", "ETH-27DEC26-3000-C"], ["book"], 100)
    assert plan.subs == (Subscription("book", "ETH-PERPETUAL"),)
    (plan,) = plan_connections(
        deribit, "ws://127.0.0.1:1", ["ETH-PERPETUAL", "ETH-27DEC26-3000-C"], ["book", "option_book"], 100
    )
    assert {s.instrument for s in plan.subs} == {"ETH-PERPETUAL", "ETH-27DEC26-3000-C"}
    defaults = load_config()  # config/cryptolake.toml: `make demo` streams books
    assert "book" in defaults.venues["okx"].channels and "book" in defaults.venues["deribit"].channels
