"""A venue that changes its trade frames' wire format (a new field, say) costs the stream CPU, never rows: the
frames take a slower decoder, every trade still lands in bronze, and the collector counts them and warns."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest
from aiohttp import WSMsgType, web

from pipeline.ingest import collector as collector_module
from pipeline.ingest.collector import Collector
from pipeline.lake import writer
from pipeline.lake.location import resolve_lake
from pipeline.lake.tables import BRONZE_TRADES
from pipeline.stream_settings import StreamSettings
from tests.loopback_okx import collect

FRAMES = 600  # above SLOW_WARN_MIN_FRAMES: one flush holds them all


def _frame(i: int, drifted: bool) -> bytes:
    trade = {"instId": "BTC-USDT", "tradeId": str(1000 + i), "px": "100.5", "sz": "0.1", "side": "buy",
             "ts": str(1786540435948 + i), "count": "1", "source": "0", "seqId": 5 + i}  # fmt: skip
    if drifted:
        trade["fillTime"] = trade["ts"]  # a field the venue added one day
    return orjson.dumps({"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": [trade]})


def _stream(tmp_path: Path, frames: list[bytes]) -> Collector:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT and msg.data.startswith("{"):  # the subscribe request
                for frame in frames:
                    await ws.send_str(frame.decode())
        return ws

    settings = StreamSettings(flush_interval_secs=60.0)  # one flush: the final one
    return collect(tmp_path, handler, settings, lambda c: c.stats.frames >= len(frames))


@pytest.mark.parametrize("drifted", [False, True])
def test_a_changed_wire_format_is_counted_and_reported_and_loses_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, drifted: bool
) -> None:
    assert FRAMES >= collector_module.SLOW_WARN_MIN_FRAMES
    frames = [_frame(i, drifted) for i in range(FRAMES)]
    with caplog.at_level(logging.WARNING, logger=collector_module.__name__):
        collector = _stream(tmp_path, frames)
    ids = writer.read(resolve_lake(str(tmp_path / "lake")), BRONZE_TRADES)["trade_id"].to_list()
    assert sorted(ids, key=int) == [str(1000 + i) for i in range(FRAMES)]  # every trade, either way
    warned = [r.getMessage() for r in caplog.records if "did not fit the fast decoder" in r.getMessage()]
    if drifted:
        assert collector.stats.slow_trade_frames == FRAMES
        assert len(warned) == 1 and f"{FRAMES} of {FRAMES} trade frames" in warned[0], warned
        assert f"slow_trade_frames={FRAMES}" in collector.stats_line()
    else:
        assert collector.stats.slow_trade_frames == 0 and not warned
