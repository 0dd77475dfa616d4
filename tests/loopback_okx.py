"""A real Collector with one OKX trades connection (BTC-USDT) to a WebSocket server on 127.0.0.1 that a test
writes itself (aiohttp), for venue misbehaviour the simulator does not stage (tests/chaos/test_hostile_input.py,
tests/ingest/test_format_drift.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from pipeline.ingest.collector import Collector
from pipeline.ingest.plan import ConnectionPlan
from pipeline.lake.location import resolve_lake
from pipeline.stream_settings import StreamSettings
from pipeline.venues import okx
from pipeline.venues.base import Subscription


def collect(
    tmp_path: Path,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    settings: StreamSettings,
    done: Callable[[Collector], bool],
    timeout: float = 20.0,
    subs: tuple[Subscription, ...] = (Subscription("trades", "BTC-USDT"),),
) -> Collector:
    """Serve ``handler`` at /ws/v5/public, stream into a lake under ``tmp_path`` until ``done(collector)`` (or
    ``timeout`` seconds), stop the collector (its final flush included) and the server; the collector."""

    async def main() -> Collector:
        app = web.Application()
        app.router.add_get("/ws/v5/public", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        plan = ConnectionPlan(okx, f"ws://127.0.0.1:{port}/ws/v5/public", subs, "okx#0")
        collector = Collector(
            resolve_lake(str(tmp_path / "lake")), [plan], settings=settings, spool_dir=tmp_path / "spool"
        )
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        deadline = time.monotonic() + timeout
        while not done(collector) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        await task
        await runner.cleanup()
        return collector

    return asyncio.run(main())
