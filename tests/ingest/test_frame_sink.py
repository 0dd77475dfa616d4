"""The connection talks to its collector only through ``FrameSink`` (pipeline.ingest.sink), and the stream's
counters are written on the event loop only: a flush's worker thread returns what it counted.

Both run over a real WebSocket on 127.0.0.1 (an aiohttp server the test writes), as the venue would serve it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import orjson
from aiohttp import WSMsgType, web

from pipeline.ingest import sink as sink_module
from pipeline.ingest.collector import Collector
from pipeline.ingest.connection import Connection
from pipeline.ingest.frames import parse_frame
from pipeline.ingest.plan import ConnectionPlan
from pipeline.ingest.stats import StreamStats
from pipeline.lake import writer
from pipeline.lake.location import resolve_lake
from pipeline.lake.tables import BRONZE_TRADES
from pipeline.stream_settings import StreamSettings
from pipeline.venues import okx
from pipeline.venues.base import Control, ParsedBatch, Subscription, Venue
from tests.ingest.streamkit import FAST

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _trade(i: int) -> bytes:
    trade = {"instId": "BTC-USDT", "tradeId": str(1000 + i), "px": "100.5", "sz": "0.1", "side": "buy",
             "ts": str(1786540435948 + i), "count": "1", "source": "0", "seqId": 5 + i}  # fmt: skip
    return orjson.dumps({"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": [trade]})


TICKER_DATA = {"instType": "SPOT", "instId": "BTC-USDT", "last": "63921", "lastSz": "0.4", "askPx": "63921.1",
               "askSz": "1.5", "bidPx": "63921", "bidSz": "0.7", "ts": "1786540471710"}  # fmt: skip
TICKER = orjson.dumps({"arg": {"channel": "tickers", "instId": "BTC-USDT"}, "data": [TICKER_DATA]})
ERROR = orjson.dumps({"event": "error", "code": "60012", "msg": "Invalid request"})
# An error event in the trades frame's shape: it passes the reader's prefix test and stays raw, so the flush's
# worker thread is the one that finds it.
RAW_ERROR = orjson.dumps(
    {"arg": {"channel": "trades", "instId": "BTC-USDT"}, "event": "error", "code": "60018", "msg": "gone"}
)


@contextlib.asynccontextmanager
async def okx_server(handler: Handler) -> AsyncIterator[str]:
    """Serve ``handler`` at /ws/v5/public on 127.0.0.1; the URL to connect to."""
    app = web.Application()
    app.router.add_get("/ws/v5/public", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"ws://127.0.0.1:{port}/ws/v5/public"
    finally:
        await runner.cleanup()


def sessions(*frames_per_session: Sequence[bytes]) -> tuple[Handler, list[list[str]]]:
    """A handler that answers the n-th connection's subscribe request with the n-th list of frames, then closes
    it (the last one stays open); what the client sent, per connection."""
    sent: list[list[str]] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        n = len(sent)
        sent.append([])
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            sent[n].append(msg.data)
            if msg.data.startswith("{"):  # the subscribe request
                for frame in frames_per_session[min(n, len(frames_per_session) - 1)]:
                    await ws.send_str(frame.decode())
                if n < len(frames_per_session) - 1:
                    await ws.close()
        return ws

    return handler, sent


class ListRecorder:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str | bytes]] = []
        self.closed = False

    def write(self, url: str, direction: Literal["recv", "sent"], text: str | bytes, ts_us: int) -> None:
        self.lines.append((direction, text))

    def close(self) -> None:
        self.closed = True


class MinimalSink:
    """A FrameSink and nothing more: the members of the protocol, each noting how it was called."""

    def __init__(self, flush_every: int) -> None:
        self.stats = StreamStats()
        self.flush_every = flush_every
        self.trade_frames: list[tuple[str, bytes]] = []
        self.frames: list[bytes] = []
        self.batch = ParsedBatch()
        self.rejects: list[tuple[Any, ...]] = []
        self.backpressure_calls = 0
        self.gates: list[str] = []
        self.gaps: list[tuple[str, str, tuple[str, ...], int, int]] = []
        self.recorders: list[tuple[str, int, ListRecorder]] = []

    def add_trade_frame(self, venue: str, frame: bytes, receive_ts_us: int) -> bool:
        self.trade_frames.append((venue, frame))
        return len(self.trade_frames) % self.flush_every == 0

    def add_frame(self, venue: Venue, frame: bytes, receive_ts_us: int) -> Control | None:
        self.frames.append(frame)
        return parse_frame(venue, frame, receive_ts_us, self.batch, self.rejects)

    def wants_flush(self) -> bool:
        return len(self.batch.quotes) >= 1

    async def backpressure(self) -> None:
        self.backpressure_calls += 1

    async def connect_gate(self, venue: str) -> None:
        self.gates.append(venue)

    def reconnected(
        self, venue: str, connection: str, trade_instruments: Sequence[str], down_ms: int, up_ms: int
    ) -> None:
        self.gaps.append((venue, connection, tuple(trade_instruments), down_ms, up_ms))

    def open_recorder(self, connection: str, connects: int) -> ListRecorder:
        recorder = ListRecorder()
        self.recorders.append((connection, connects, recorder))
        return recorder


def _public(cls: type) -> set[str]:
    return {n for n in vars(cls) if not n.startswith("_")}


def test_the_minimal_sink_has_only_the_protocols_members() -> None:
    protocol = _public(sink_module.FrameSink) | set(sink_module.FrameSink.__annotations__)
    assert _public(MinimalSink) <= protocol
    assert {"add_trade_frame", "add_frame", "backpressure", "connect_gate", "reconnected", "open_recorder"} <= protocol


def test_a_connection_streams_into_any_frame_sink_and_reconnects(tmp_path: Path) -> None:
    """Session 1: three trades, a ticker, a venue error, then the server closes; session 2: one more trade."""
    first = [_trade(0), _trade(1), TICKER, ERROR, _trade(2)]
    handler, sent = sessions(first, [_trade(3)])
    sink = MinimalSink(flush_every=2)

    async def main() -> Connection:
        async with okx_server(handler) as url:
            conn = Connection(sink, okx, url, [Subscription("trades", "BTC-USDT")], "okx#0", FAST)
            task = asyncio.create_task(conn.run())
            deadline = time.monotonic() + 15
            while len(sink.trade_frames) < 4 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return conn

    conn = asyncio.run(main())
    assert sink.trade_frames == [("okx", _trade(i)) for i in range(4)]  # raw, as received, in order
    assert sink.frames == [TICKER, ERROR]
    assert len(sink.batch.quotes) == 1 and not sink.rejects
    # Counted by the connection, on the loop: every frame, the venue error once, one reconnect.
    assert sink.stats.frames == 6 and sink.stats.venue_errors == 1 and sink.stats.reconnects == 1
    assert any("60012" in e for e in conn.errors)
    # Backpressure: after every 2nd trade frame, and after each non-trade frame once the sink wants a flush.
    assert sink.backpressure_calls == 2 + 2
    assert sink.gates == ["okx", "okx"]
    [(venue, name, instruments, down_ms, up_ms)] = sink.gaps
    assert (venue, name, instruments) == ("okx", "okx#0", ("BTC-USDT",)) and down_ms <= up_ms
    assert [(name, n) for name, n, _ in sink.recorders] == [("okx#0", 1), ("okx#0", 2)]
    recorded = sink.recorders[0][2]
    assert recorded.closed and [t for d, t in recorded.lines if d == "recv"] == first
    assert next(t for d, t in recorded.lines if d == "sent") == sent[0][0]  # the subscribe request, as sent
    assert len(sent) == 2 and all(any('"subscribe"' in s for s in per_conn) for per_conn in sent)


class LoopOnlyStats(StreamStats):
    """StreamStats noting which threads write it."""

    writers: set[int]

    def __init__(self) -> None:
        object.__setattr__(self, "writers", set())
        super().__init__()

    def __setattr__(self, name: str, value: Any) -> None:
        self.writers.add(threading.get_ident())
        object.__setattr__(self, name, value)


def test_the_counters_are_written_on_the_loop_and_a_flush_counts_each_venue_error_once(tmp_path: Path) -> None:
    trades = [_trade(i) for i in range(40)]
    frames = [*trades[:20], RAW_ERROR, *trades[20:], RAW_ERROR, ERROR]
    handler, _ = sessions(frames)
    settings = StreamSettings(flush_interval_secs=0.2, connections_per_sec=50.0)
    lake = resolve_lake(str(tmp_path / "lake"))

    async def main() -> tuple[Collector, int]:
        async with okx_server(handler) as url:
            plan = ConnectionPlan(okx, url, (Subscription("trades", "BTC-USDT"),), "okx#0")
            collector = Collector(lake, [plan], settings=settings, spool_dir=tmp_path / "spool")
            collector.stats = LoopOnlyStats()
            stop = asyncio.Event()
            task = asyncio.create_task(collector.run(stop))
            deadline = time.monotonic() + 15
            while collector.stats.frames < len(frames) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # a flush or two past the last frame
            stop.set()
            await task
            return collector, threading.get_ident()

    collector, loop_thread = asyncio.run(main())
    stats = collector.stats
    assert isinstance(stats, LoopOnlyStats)
    assert stats.writers == {loop_thread}  # never the flush's worker thread
    # Two errors found by the flush among the raw trade frames, one by the reader: each counted once.
    assert stats.venue_errors == 3
    assert stats.frames == len(frames) and stats.trades == len(trades) and stats.flushes >= 1
    assert stats.slow_trade_frames == 2  # the two error events missed the fast trade decoder
    ids = writer.read(lake, BRONZE_TRADES)["trade_id"].to_list()
    assert sorted(ids, key=int) == [str(1000 + i) for i in range(40)]
