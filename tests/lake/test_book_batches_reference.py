"""``book_deltas_table`` (C loops, Arrow reads) against a plain reference explode, row for row: on every book
message of the real recordings and on the simulator's OKX books and Deribit book.100ms frames, in batches of
one venue and of both."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.ingest.replay import replay_capture
from pipeline.lake import schemas
from pipeline.lake.book_batches import book_deltas_table
from pipeline.realdata import realdata_dir
from pipeline.simulator.books import BookSet
from pipeline.simulator.config import SimConfig
from pipeline.simulator.deribit import subscription_frame
from pipeline.simulator.deribit_books import DeribitBooks
from pipeline.simulator.faults import Counters, Faults, FaultSettings
from pipeline.simulator.market import Market
from pipeline.simulator.okx_books import OkxBooks
from pipeline.venues import deribit, okx
from pipeline.venues.base import ParsedBatch

RECORDINGS = {
    "okx/cryptofeed-2022-05-public.ws.log": "okx",
    "okx/okcoin-v5-2023-05-candles.ws.log": "okx",
    "deribit/cryptofeed-2021-07-options.ws.log": "deribit",
    "deribit/ccxt-2026-08.jsonl": "deribit",
}


def reference(messages: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """One dict per level row, the obvious way: messages grouped by book (books in the order they first appear),
    each book's in their order, bids then asks."""
    first: dict[tuple[Any, ...], int] = {}
    for i, m in enumerate(messages):
        first.setdefault((m[0], m[2], m[3]), i)
    order = sorted(range(len(messages)), key=lambda i: (first[messages[i][0], messages[i][2], messages[i][3]], i))
    rows = []
    for i in order:
        m = messages[i]
        head = dict(zip(schemas.BOOK_FIELDS[:12], m[:12], strict=True))
        base = {
            "venue": head["venue"], "market": head["market"], "instrument": head["instrument"],
            "channel": head["channel"], "exchange_ts": head["exchange_ts_ms"] * 1000,
            "receive_ts": head["receive_ts_us"], "source": head["source"], "session": head["session"],
            "seq": head["seq"], "prev_seq": head["prev_seq"], "checksum": head["checksum"],
            "is_snapshot": head["is_snapshot"],
        }  # fmt: skip
        levels = [("bid", lv) for lv in m[12] or ()] + [("ask", lv) for lv in m[13] or ()]
        if not levels:
            rows.append({**base, "side": None, "price": None, "size": None, "orders": None, "action": None})
        for side, lv in levels:
            rows.append(
                {
                    **base,
                    "side": side,
                    "price": float(lv[0]),
                    "size": float(lv[1]),
                    "orders": None if len(lv) <= 3 or lv[3] is None else int(lv[3]),
                    "action": lv[4] if len(lv) > 4 else None,
                }
            )
    return rows


def _compare(messages: list[tuple[Any, ...]]) -> None:
    got = book_deltas_table(messages).drop_columns(["date"])
    assert got.schema.field("exchange_ts").type.unit == "us"
    got_rows = got.to_pydict()
    got_rows["exchange_ts"] = got.column("exchange_ts").cast("int64").to_pylist()
    got_rows["receive_ts"] = got.column("receive_ts").cast("int64").to_pylist()
    names = got.schema.names
    flat = [dict(zip(names, values, strict=True)) for values in zip(*(got_rows[n] for n in names), strict=True)]
    assert flat == reference(messages)


@pytest.mark.skipif(not realdata_dir().is_dir(), reason=f"real recordings not found at {realdata_dir()}")
def test_real_recordings_explode_like_the_reference() -> None:
    seen = 0
    for name, venue in RECORDINGS.items():
        path = realdata_dir() / name
        if not path.is_file():
            continue
        messages = replay_capture(path, venue, lambda: 1786540440000000).batch.books
        _compare(messages)
        seen += len(messages)
    assert seen > 300  # the 2022 OKX books alone are 290 messages


def _simulated(seconds: float) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    start = 1_786_540_440_000
    market = Market(SimConfig(seed=3, start_ms=start, okx_instruments=3, deribit_options=4, history_days=1))
    books = BookSet(market, 60.0, 3)
    faults = Faults(FaultSettings(), Counters(), 3)
    okx_books, deribit_books = OkxBooks(books, faults, "crc32", True), DeribitBooks(books, faults)
    okx_ids = [i.inst_id for i in market.instruments("okx")]
    channels = [(f"book.{i.inst_id}.100ms", i.inst_id) for i in market.instruments("deribit")]
    okx_frames = [okx_books.subscribed("books", i, True) for i in okx_ids]
    deribit_frames = [subscription_frame(c, deribit_books.snapshot(c, i, True)) for c, i in channels]
    now = start
    for _ in range(int(seconds * 10)):
        now += 100
        books.advance(now, market.advance(now))
        for i in okx_ids:
            okx_frames += okx_books.publish("books", i)
        for c, i in channels:
            deribit_frames += [subscription_frame(c, d) for d in deribit_books.changes(c, i)]
    parsed = {}
    for venue, frames in ((okx, okx_frames), (deribit, deribit_frames)):
        out = ParsedBatch()
        for frame in frames:
            assert frame is not None
            venue.parse(frame, 1786540440000000, out, "ws")
        parsed[venue.NAME] = out.books
    return parsed["okx"], parsed["deribit"]


def test_simulator_frames_explode_like_the_reference() -> None:
    okx_messages, deribit_messages = _simulated(3.0)
    assert len(okx_messages) > 30 and len(deribit_messages) > 10
    _compare(okx_messages)
    _compare(deribit_messages)
    mixed = [m for pair in zip(okx_messages, deribit_messages, strict=False) for m in pair]
    _compare(mixed)  # both venues in one batch, interleaved
    _compare([])
