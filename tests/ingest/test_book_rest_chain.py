"""A venue that sends no WebSocket book snapshot (OKX's announced 2026 behaviour), served on 127.0.0.1 by this
test: the stream takes GET /api/v5/market/books; an answer older than the updates it buffered does not chain and
is taken again (no gap: nothing was lost); the good one chains the buffered updates, and a quiet book that sends
only keep-alives for longer than the timeout is not retried."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import orjson
import polars as pl
from aiohttp import WSMsgType, web

from pipeline.ingest.collector import Collector
from pipeline.ingest.plan import ConnectionPlan
from pipeline.lake import writer
from pipeline.lake.location import resolve_lake
from pipeline.lake.tables import BRONZE_BOOK_DELTAS, BRONZE_GAPS
from pipeline.stream_settings import StreamSettings
from pipeline.venues import okx
from pipeline.venues.base import Subscription

BOOK = {"channel": "books", "instId": "BTC-USDT"}
SETTINGS = StreamSettings(flush_interval_secs=0.5, book_resync_timeout_secs=0.3, book_resync_retries=4)


def _update(prev: int, seq: int, bids: list[list[str]]) -> str:
    data = {
        "asks": [],
        "bids": bids,
        "ts": str(1_786_000_000_000 + seq),
        "checksum": 0,
        "prevSeqId": prev,
        "seqId": seq,
    }
    return orjson.dumps({"arg": BOOK, "action": "update", "data": [data]}).decode()


def _rest(seq: int, bids: list[list[str]]) -> dict[str, object]:
    book = {"asks": [["105", "1", "0", "1"]], "bids": bids, "ts": str(1_786_000_000_000 + seq), "seqId": seq}
    return {"code": "0", "msg": "", "data": [book]}


def test_a_rest_snapshot_that_does_not_chain_is_taken_again_and_a_quiet_book_waits(tmp_path: Path) -> None:
    rest_calls: list[float] = []
    done: list[bool] = []

    async def books(request: web.Request) -> web.Response:
        rest_calls.append(time.monotonic())
        if len(rest_calls) == 1:  # a lagging answer: seqId 99 while the stream is past 100
            return web.json_response(_rest(99, [["100", "1", "0", "1"]]))
        return web.json_response(_rest(102, [["100", "1", "0", "1"], ["101", "2", "0", "1"], ["102", "3", "0", "1"]]))

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)

        async def push() -> None:
            await ws.send_str(_update(100, 101, [["101", "2", "0", "1"]]))  # no snapshot came first
            await ws.send_str(_update(101, 102, [["102", "3", "0", "1"]]))
            while len(rest_calls) < 2:
                await asyncio.sleep(0.02)
            for _ in range(8):  # quiet: keep-alives only, 0.8 s in all, well past the 0.3 s timeout
                await asyncio.sleep(0.1)
                await ws.send_str(_update(102, 102, []))
            await ws.send_str(_update(102, 103, [["102", "0", "0", "0"], ["99", "4", "0", "2"]]))
            await asyncio.sleep(0.3)
            done.append(True)

        async for msg in ws:
            if msg.type == WSMsgType.TEXT and msg.data.startswith("{"):
                req = json.loads(msg.data)
                await ws.send_str(orjson.dumps({"event": req["op"], "arg": req["args"][0], "connId": "x"}).decode())
                asyncio.get_running_loop().create_task(push())
        return ws

    async def main() -> Collector:
        app = web.Application()
        app.router.add_get("/ws/v5/public", ws_handler)
        app.router.add_get("/api/v5/market/books", books)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        plan = ConnectionPlan(okx, f"ws://127.0.0.1:{port}/ws/v5/public", (Subscription("book", "BTC-USDT"),), "okx#0")
        collector = Collector(resolve_lake(str(tmp_path / "lake")), [plan], settings=SETTINGS, spool_dir=tmp_path / "s")
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        deadline = time.monotonic() + 20
        while not done and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        await task
        await runner.cleanup()
        return collector

    collector = asyncio.run(main())
    stats, sync = collector.stats, collector.book_sync

    # Two REST snapshots: the lagging one did not chain (retried at once, no gap), the second did; the quiet
    # spell after it, three timeouts long, retried nothing.
    assert len(rest_calls) == 2 and stats.book_rest_snapshots == 2
    assert (stats.book_breaks, stats.book_resync_retries, stats.book_resync_failures) == (0, 1, 0)
    assert sync.books[("okx", "BTC-USDT", "books")].recovering is None
    assert sync.verifier.is_valid("okx", "BTC-USDT", "books")
    bids, asks = sync.verifier.top("okx", "BTC-USDT", "books")
    assert [b[:2] for b in bids] == [["101", "2"], ["100", "1"], ["99", "4"]] and [a[:2] for a in asks] == [
        ["105", "1"]
    ]

    lake = resolve_lake(str(tmp_path / "lake"))
    assert writer.read(lake, BRONZE_GAPS).height == 0
    deltas = writer.read(lake, BRONZE_BOOK_DELTAS)
    rest = deltas.filter(pl.col("source") == "rest")
    assert sorted(rest["seq"].unique().to_list()) == [99, 102] and rest["is_snapshot"].all()
    # Every WebSocket message stored: two updates, eight keep-alives, the last update.
    messages = deltas.filter(pl.col("source") == "ws").select(pl.struct("receive_ts", "seq").n_unique()).item()
    assert messages == 11
