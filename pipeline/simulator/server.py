"""The simulator process: one aiohttp app on one loopback port, the tick loop, and the control endpoint.

Routes: OKX (``/ws/v5/public``, ``/ws/v5/business``, ``/api/v5/...``), Deribit (``/ws/api/v2``,
``/api/v2/public/...``; each venue registers its own routes), and control:

- ``GET /sim/state``: faults, counters, published trade counts per venue/instrument, connection counts.
- ``POST /sim/faults``: JSON object, partial update of ``FaultSettings`` (400 on unknown keys/bad values).
- ``POST /sim/reset-counters``.
- ``GET /sim/trades?venue=okx&instId=BTC-USDT&limit=1000``: ground truth, oldest first (for tests of
  collectors running in another process).
- ``GET /sim/funding``, ``/sim/liquidations``, ``/sim/open-interest``: derivatives ground truth
  (``derivatives_control``).
- ``GET /sim/book?venue=okx&instId=BTC-USDT&depth=25&seq=S``: the true book (top ``depth``, default 400) at
  seq ``S`` (default: now): ``{"venue","instId","seq","ts_ms","first_seq","bids":[[px,sz],..],"asks":..}``;
  404 when ``S`` is older than the kept history or not reached yet.
- ``GET /sim/book-faults[?venue=..&instId=..]``: book faults injected, ``{"kinds": {kind: n}, "streams":
  [{"venue","channel","instId","kind","count"}]}``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from aiohttp import web

from pipeline.errors import ConfigError
from pipeline.simulator import deribit, derivatives_control, okx
from pipeline.simulator.books import BookSet
from pipeline.simulator.config import SimConfig
from pipeline.simulator.context import SimContext
from pipeline.simulator.faults import Counters, Faults, FaultSettings
from pipeline.simulator.market import Market

log = logging.getLogger("cryptolake.simulator")
T = TypeVar("T")
_BACKGROUND: set[asyncio.Task[Any]] = set()  # fire-and-forget tasks, referenced until they finish


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS), content_type="application/json"
    )


def build_app(config: SimConfig) -> tuple[web.Application, SimContext]:
    """The aiohttp app with every venue registered (no socket yet)."""
    counters = Counters()
    market = Market(config, counters=counters)
    ctx = SimContext(
        config=config,
        market=market,
        faults=Faults(config.faults, counters, config.seed),
        counters=counters,
        books=BookSet(market, config.book_updates_per_s, config.seed, counters),
    )
    app = web.Application()
    ctx.publishers["okx"] = okx.register(app, ctx)
    ctx.publishers["deribit"] = deribit.register(app, ctx)
    _add_control_routes(app, ctx)
    derivatives_control.add_routes(app, ctx)  # /sim/funding, /sim/liquidations, /sim/open-interest
    return app, ctx


def _add_control_routes(app: web.Application, ctx: SimContext) -> None:
    async def state(request: web.Request) -> web.Response:
        return _json(ctx.state())

    async def faults(request: web.Request) -> web.Response:
        try:
            body = await request.json(loads=orjson.loads)
        except (orjson.JSONDecodeError, ValueError):
            return _json({"error": "body must be a JSON object"}, 400)
        if not isinstance(body, dict):
            return _json({"error": "body must be a JSON object"}, 400)
        try:
            ctx.faults.update(body)
        except ConfigError as e:
            return _json({"error": str(e), "key": e.key}, 400)
        return _json(ctx.faults.snapshot())

    async def reset(request: web.Request) -> web.Response:
        ctx.counters.clear()
        for c in ctx.published.values():
            c.clear()
        return _json({"ok": True})

    async def trades(request: web.Request) -> web.Response:
        venue, inst_id = request.query.get("venue", "okx"), request.query.get("instId", "")
        if ctx.market.instrument(venue, inst_id) is None:
            return _json({"error": f"unknown instrument {venue}:{inst_id}"}, 404)
        try:
            limit = int(request.query.get("limit", "1000"))
            start = int(request.query["start_ms"]) if request.query.get("start_ms") else None
        except ValueError:
            return _json({"error": "limit and start_ms must be integers"}, 400)
        rows = ctx.market.trades(venue, inst_id, start_ms=start, limit=limit, newest_first=False)
        return _json(
            [
                {
                    "trade_id": t.trade_id,
                    "seq": t.seq,
                    "price": t.price,
                    "size": t.size,
                    "side": t.side,
                    "ts_ms": t.ts_ms,
                    "count": t.count,
                }
                for t in rows
            ]
        )

    app.router.add_get("/sim/state", state)
    app.router.add_post("/sim/faults", faults)
    app.router.add_post("/sim/reset-counters", reset)
    app.router.add_get("/sim/trades", trades)
    _add_book_routes(app, ctx)


def _add_book_routes(app: web.Application, ctx: SimContext) -> None:
    async def book(request: web.Request) -> web.Response:
        venue, inst_id = request.query.get("venue", "okx"), request.query.get("instId", "")
        if ctx.market.instrument(venue, inst_id) is None:
            return _json({"error": f"unknown instrument {venue}:{inst_id}"}, 404)
        try:
            depth = int(request.query.get("depth", "400"))
            seq = int(request.query["seq"]) if request.query.get("seq") else None
        except ValueError:
            return _json({"error": "depth and seq must be integers"}, 400)
        try:
            view = ctx.books.view(venue, inst_id, max(1, depth), seq)
        except KeyError as e:
            return _json({"error": str(e.args[0])}, 404)
        first = ctx.books.book(venue, inst_id).first_seq()
        body = {"venue": venue, "instId": inst_id, "seq": view.seq, "ts_ms": view.ts_ms, "first_seq": first}
        return _json(body | {"bids": view.bids, "asks": view.asks})

    async def book_faults(request: web.Request) -> web.Response:
        venue, inst_id = request.query.get("venue") or None, request.query.get("instId") or None
        rows = [r for r in ctx.books.fault_table() if venue in (None, r["venue"]) and inst_id in (None, r["instId"])]
        return _json({"kinds": ctx.books.fault_counts(venue, inst_id), "streams": rows})

    app.router.add_get("/sim/book", book)
    app.router.add_get("/sim/book-faults", book_faults)


async def _tick_loop(ctx: SimContext) -> None:
    """Every ``tick_ms``: apply fault schedules, advance the market, hand the events to every venue."""
    loop = asyncio.get_running_loop()
    period = ctx.config.tick_ms / 1000.0
    deadline = loop.time()
    market, faults = ctx.market, ctx.faults
    while True:
        if faults.tick():
            dropping = loop.create_task(ctx.drop_all())  # not awaited: close handshakes must not stall the market
            _BACKGROUND.add(dropping)  # held until done: the loop keeps only a weak reference to a task
            dropping.add_done_callback(_BACKGROUND.discard)
        market.burst_rate = faults.burst_rate()
        market.crossed_quote_rate = faults.settings.crossed_quote_rate
        try:
            events = market.advance(int(time.time() * 1000))
            ctx.books.advance(market.now_ms, events)
            for publish in list(ctx.publishers.values()):
                await publish(events)
        except Exception:  # a venue bug must not stop the market; it is logged and counted
            ctx.counters.inc("tick_errors")
            log.exception("simulator tick failed")
        deadline += period
        delay = deadline - loop.time()
        if delay < -1.0:  # far behind (e.g. a huge burst): skip ahead instead of spinning
            deadline = loop.time()
            delay = 0.0
        await asyncio.sleep(max(0.0, delay))


@dataclass
class RunningSimulator:
    """A started simulator (in the current event loop)."""

    ctx: SimContext
    runner: web.AppRunner
    host: str
    port: int
    _ticker: asyncio.Task

    @property
    def base_http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def okx_ws_url(self, path: str = "public") -> str:
        return f"ws://{self.host}:{self.port}/ws/v5/{path}"

    @property
    def deribit_ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws/api/v2"

    @property
    def market(self) -> Market:
        return self.ctx.market

    async def stop(self) -> None:
        self._ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._ticker
        await self.runner.cleanup()


async def start_simulator(config: SimConfig) -> RunningSimulator:
    """Build the market, bind ``config.host:config.port`` (0 = free port) and start ticking."""
    app, ctx = build_app(config)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, reuse_address=True)
    await site.start()
    # aiohttp keeps the listening socket on a private attribute (hence the ignore); port 0 resolves only there
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    ticker = asyncio.get_running_loop().create_task(_tick_loop(ctx), name="simulator-tick")
    return RunningSimulator(ctx=ctx, runner=runner, host=config.host, port=port, _ticker=ticker)


def describe(sim: RunningSimulator) -> str:
    cfg = sim.ctx.config
    lines = [
        f"cryptolake simulator (seed {cfg.seed}) on {sim.host}:{sim.port}",
        f"  OKX WS public    {sim.okx_ws_url('public')}",
        f"  OKX WS business  {sim.okx_ws_url('business')}",
        f"  OKX REST         {sim.base_http_url}/api/v5  (ccxt: exchange.urls['api'] = {{'rest': '{sim.base_http_url}'}})",
    ]
    if "deribit" in sim.ctx.publishers:
        lines.append(f"  Deribit WS       {sim.deribit_ws_url}")
        lines.append(f"  Deribit REST     {sim.base_http_url}/api/v2")
    lines.append(f"  control          {sim.base_http_url}/sim/state  (POST /sim/faults, /sim/reset-counters)")
    return "\n".join(lines)


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags for ``cryptolake sim`` (the CLI calls this, then ``run_simulator(config_from_args(ns))``)."""
    d = SimConfig()
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--port", type=int, default=d.port, help="0 = any free port")
    parser.add_argument("--okx-instruments", type=int, default=d.okx_instruments)
    parser.add_argument("--deribit-options", type=int, default=d.deribit_options)
    parser.add_argument(
        "--trade-rate",
        type=float,
        default=d.trade_rate_per_instrument_per_s,
        help="trades per second per instrument (options: a tenth)",
    )
    parser.add_argument("--tick-ms", type=int, default=d.tick_ms)
    parser.add_argument("--history-days", type=int, default=d.history_days)
    parser.add_argument("--trade-history-minutes", type=int, default=d.trade_history_minutes)
    parser.add_argument("--idle-timeout", type=float, default=d.idle_timeout_s)
    parser.add_argument("--ws-connections-per-s", type=int, default=d.ws_connections_per_s, help="0 = unlimited")
    parser.add_argument("--no-rest-limits", action="store_true", help="do not enforce the venues' REST limits")
    parser.add_argument(
        "--book-updates-per-s",
        type=float,
        default=d.book_updates_per_s,
        help="order-book events per instrument and second (options: a tenth)",
    )
    parser.add_argument(
        "--book-checksum",
        choices=("crc32", "zero"),
        default=d.book_checksum,
        help="OKX books checksum: crc32 (the pre-2026 rule) or zero (OKX since 2026-06)",
    )
    parser.add_argument(
        "--no-book-ws-snapshot",
        action="store_true",
        help="OKX books subscriptions get no snapshot: clients take GET /api/v5/market/books",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="e.g. --fault malformed_rate=0.01 --fault drop_every_s=60 --fault book_skip_rate=0.01 (see faults.py)",
    )


def config_from_args(ns: argparse.Namespace) -> SimConfig:
    """``SimConfig`` from the flags of ``add_cli_arguments``; bad values raise ``ConfigError``."""
    faults: dict[str, float] = {}
    for item in ns.fault:
        name, sep, value = item.partition("=")
        try:
            faults[name.strip()] = float(value)
        except ValueError:
            raise ConfigError(
                f"simulator.faults.{name.strip()}", f"{value!r} is not a number", "use --fault NAME=NUMBER"
            ) from None
        if not sep:
            raise ConfigError("simulator.faults", f"{item!r} is not NAME=VALUE", "use --fault NAME=NUMBER")
    return SimConfig(
        seed=ns.seed,
        port=ns.port,
        okx_instruments=ns.okx_instruments,
        deribit_options=ns.deribit_options,
        trade_rate_per_instrument_per_s=ns.trade_rate,
        tick_ms=ns.tick_ms,
        history_days=ns.history_days,
        trade_history_minutes=ns.trade_history_minutes,
        idle_timeout_s=ns.idle_timeout,
        ws_connections_per_s=ns.ws_connections_per_s,
        rest_rate_limits=not ns.no_rest_limits,
        book_updates_per_s=ns.book_updates_per_s,
        book_checksum=ns.book_checksum,
        book_ws_snapshot=not ns.no_book_ws_snapshot,
        faults=FaultSettings.from_mapping(faults),
    )


def run_simulator(config: SimConfig) -> None:
    """Blocking entry point for ``cryptolake sim``: print the URLs, serve until Ctrl-C."""

    async def main() -> None:
        sim = await start_simulator(config)
        print(describe(sim), flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await sim.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


class SimulatorThread:
    """Run the simulator in a background thread with its own event loop (for tests)::

        with SimulatorThread(SimConfig(port=0)) as sim:
            url = sim.base_http_url
            trades = sim.call(lambda: sim.market.trades("okx", "BTC-USDT", limit=None))

    Touch ``market`` only through ``call`` (it runs the function in the simulator's loop), because the tick
    loop mutates it concurrently.
    """

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.running: RunningSimulator | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None

    def start(self, timeout: float = 30.0) -> int:
        self._thread = threading.Thread(target=self._run, name="simulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("simulator did not start")
        if self._error is not None:
            raise self._error
        assert self.running is not None
        return self.running.port

    def _run(self) -> None:
        async def main() -> None:
            try:
                self._loop = asyncio.get_running_loop()
                self._stop = asyncio.Event()
                self.running = await start_simulator(self.config)
            except BaseException as e:  # noqa: BLE001 - surfaced to start(), which re-raises it in the caller
                self._error = e
                self._ready.set()
                return
            self._ready.set()
            await self._stop.wait()
            await self.running.stop()

        asyncio.run(main())

    def call(self, fn: Callable[[], T], timeout: float = 30.0) -> T:
        """Run ``fn()`` in the simulator's loop thread and return its result."""
        assert self._loop is not None
        fut = asyncio.run_coroutine_threadsafe(_call(fn), self._loop)
        return fut.result(timeout)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(15)

    @property
    def port(self) -> int:
        assert self.running is not None
        return self.running.port

    @property
    def ctx(self) -> SimContext:
        assert self.running is not None
        return self.running.ctx

    @property
    def market(self) -> Market:
        return self.ctx.market

    @property
    def base_http_url(self) -> str:
        assert self.running is not None
        return self.running.base_http_url

    def okx_ws_url(self, path: str = "public") -> str:
        assert self.running is not None
        return self.running.okx_ws_url(path)

    @property
    def deribit_ws_url(self) -> str:
        assert self.running is not None
        return self.running.deribit_ws_url

    def __enter__(self) -> SimulatorThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _call(fn: Callable[[], T]) -> T:
    return fn()
