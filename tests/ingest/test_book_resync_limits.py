"""A book whose venue never answers the resynchronisation (a WebSocket server on 127.0.0.1 written here): one
gap for the outage however many updates follow (no resubscription storm), the resync retried after its timeout a
bounded number of times, then given up, all counted; the trades on the same connection go on. A resubscription
that brings updates but no snapshot turns the recovery to the REST snapshot (here unanswered: 404)."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

import orjson
import polars as pl
import pytest
from aiohttp import WSMsgType, web

from pipeline.ingest.collector import Collector
from pipeline.ingest.metrics import start_metrics_server
from pipeline.lake import writer
from pipeline.lake.location import resolve_lake
from pipeline.lake.tables import BRONZE_BOOK_DELTAS, BRONZE_GAPS, BRONZE_TRADES
from pipeline.stream_settings import StreamSettings
from pipeline.venues.base import Subscription
from tests.loopback_okx import collect

BOOK = {"channel": "books", "instId": "BTC-USDT"}
SETTINGS = StreamSettings(
    flush_interval_secs=0.5, book_resync_timeout_secs=0.3, book_resync_retries=3, backoff_initial_secs=0.1
)


def _book(action: str, seq: int, prev: int, bids: list[list[str]]) -> str:
    data = {"asks": [["101", "1", "0", "1"]], "bids": bids, "ts": str(1_786_000_000_000 + seq), "checksum": 0}
    return orjson.dumps({"arg": BOOK, "action": action, "data": [data | {"seqId": seq, "prevSeqId": prev}]}).decode()


def _trade(n: int) -> str:
    trade = {"instId": "BTC-USDT", "tradeId": str(n), "px": "100.5", "sz": "1", "side": "buy", "ts": "1786000000000"}
    return orjson.dumps({"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": [trade | {"count": "1"}]}).decode()


@pytest.mark.parametrize("updates_after_break", [False, True], ids=["silent-book", "updates-without-snapshot"])
def test_an_unanswered_resync_is_retried_then_given_up_without_a_storm(
    tmp_path: Path, updates_after_break: bool
) -> None:
    requests: list[tuple[str, list[dict[str, str]]]] = []
    pushed: list[bool] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)

        async def push() -> None:
            await ws.send_str(_book("snapshot", 10, -1, [["100", "2", "0", "1"]]))
            await ws.send_str(_book("update", 11, 10, [["99", "1", "0", "1"]]))
            await ws.send_str(_book("update", 13, 12, [["98", "1", "0", "1"]]))  # 12 lost: the book breaks
            for n in range(40):  # the trades go on; the book gets no new snapshot, its updates go on or stop
                if updates_after_break:
                    await ws.send_str(_book("update", 14 + n, 13 + n, [["97", str(n + 1), "0", "1"]]))
                await ws.send_str(_trade(1000 + n))
                await asyncio.sleep(0.05)
            pushed.append(True)

        pushing = None
        async for msg in ws:
            if msg.type != WSMsgType.TEXT or not msg.data.startswith("{"):
                continue
            req = json.loads(msg.data)
            requests.append((req["op"], req["args"]))
            for arg in req["args"]:  # acknowledged, and nothing else: a resubscription brings no snapshot
                await ws.send_str(orjson.dumps({"event": req["op"], "arg": arg, "connId": "x"}).decode())
            if pushing is None:
                pushing = asyncio.create_task(push())
        return ws

    messages = 3 + 40 * updates_after_break

    def done(c: Collector) -> bool:
        return c.stats.book_resync_failures > 0 and bool(pushed) and c.stats.book_messages >= messages

    subs = (Subscription("trades", "BTC-USDT"), Subscription("book", "BTC-USDT"))
    collector = collect(tmp_path, handler, SETTINGS, done, timeout=20.0, subs=subs)
    stats = collector.stats

    assert stats.book_breaks == 1 and stats.book_resyncs == 0
    # Three attempts, then given up; counted and logged. Each attempt that timed out was retried, but the turn
    # from resubscribing to REST, which the updates with no snapshot caused at once.
    assert stats.book_resync_retries == (1 if updates_after_break else 2) and stats.book_resync_failures == 1
    resubscriptions = 1 if updates_after_break else 3
    assert [op for op, _ in requests] == ["subscribe"] + ["unsubscribe", "subscribe"] * resubscriptions
    assert all(args == [BOOK] for _, args in requests[1:])  # only the broken book, never the trades
    # Updates with no snapshot after the resubscription: the two attempts left asked for the REST snapshot.
    assert stats.book_rest_errors == (2 if updates_after_break else 0)
    assert stats.reconnects == 0

    lake = resolve_lake(str(tmp_path / "lake"))
    gaps = writer.read(lake, BRONZE_GAPS)
    assert gaps.select("kind", "from_seq", "to_seq").rows() == [("book", 11, 13)]
    deltas = writer.read(lake, BRONZE_BOOK_DELTAS)
    # Every message stored, break or not: the snapshot, the two updates and whatever followed.
    assert deltas.select(pl.struct("session", "seq").n_unique()).item() == messages
    assert writer.read(lake, BRONZE_TRADES).height == 40

    # The same counts on the metrics endpoint (per venue and kind for the dashboard).
    server = start_metrics_server(collector, 0)
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics", timeout=5).read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert 'cryptolake_stream_venue_book_breaks_total{kind="chain",stream="default",venue="okx"} 1.0' in text
    assert 'cryptolake_stream_book_resync_failures_total{stream="default"} 1.0' in text
    assert "cryptolake_stream_venue_book_resyncs_total{" not in text  # none resynchronised
