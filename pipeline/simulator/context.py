"""What the server hands to each venue module (``okx.register(app, ctx)``, ``deribit.register(app, ctx)``).

Contract for a venue module::

    def register(app: aiohttp.web.Application, ctx: SimContext) -> Publisher:
        app.router.add_get("/ws/api/v2", ws_handler)      # its own routes on the one shared port
        ...
        return publish                                    # async def publish(events: list[SimTrade | SimQuote])

Every tick the server calls ``ctx.market.advance(now_ms)`` once and awaits each venue's ``publish(events)``
with ALL events (a venue filters on ``event.venue``). A venue must not block in ``publish``: append frames to
per-connection buffers and let a writer task drain them (see ``okx.py``). Shared helpers here:

- ``ctx.track_ws(venue, ws)`` / ``ctx.untrack_ws(venue, ws)``: open WS connections, so the drop fault and
  ``/sim/state`` work for every venue without venue code.
- ``ctx.record_published(venue, inst_id, n)``: counts ``trades_published`` (total and per instrument).
- ``maybe_fail_rest(ctx, venue, endpoint, request)``: REST rate limits and the 429/5xx faults, answered with
  the venue's real error body. Call it first in every REST handler; return its response if not ``None``.
- ``new_conn_id()``: an 8-hex OKX-style connection id.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from pipeline.simulator.faults import Counters, Faults
from pipeline.simulator.ratelimit import RestLimiter

if TYPE_CHECKING:  # pragma: no cover
    from pipeline.simulator.books import BookSet
    from pipeline.simulator.config import SimConfig
    from pipeline.simulator.market import Market
    from pipeline.simulator.records import SimQuote, SimTrade

Publisher = Callable[[list["SimTrade | SimQuote"]], Awaitable[None]]


@dataclass
class SimContext:
    """Shared state of one simulator run."""

    config: SimConfig
    market: Market
    faults: Faults
    counters: Counters
    books: BookSet  # every instrument's order book, stepped behind the market (``books.BookSet``)
    rest_limiter: RestLimiter = field(default_factory=RestLimiter)
    publishers: dict[str, Publisher] = field(default_factory=dict)  # venue -> publish(events)
    published: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    connections: dict[str, set[web.WebSocketResponse]] = field(default_factory=lambda: defaultdict(set))
    hubs: dict[str, Any] = field(default_factory=dict)  # venue -> its hub object (optional, for state())

    @property
    def okx(self) -> Any:
        return self.hubs.get("okx")

    @property
    def deribit(self) -> Any:
        return self.hubs.get("deribit")

    def record_published(self, venue: str, inst_id: str, n: int = 1) -> None:
        """Count trades actually published on WS (after silence filtering)."""
        self.counters["trades_published"] += n
        self.counters[f"trades_published.{venue}"] += n
        self.published[venue][inst_id] += n

    def track_ws(self, venue: str, ws: web.WebSocketResponse) -> None:
        self.connections[venue].add(ws)
        self.counters.inc(f"connections_opened.{venue}")

    def untrack_ws(self, venue: str, ws: web.WebSocketResponse) -> None:
        self.connections[venue].discard(ws)

    async def drop_all(self) -> int:
        """Close every open WS connection of every venue (the drop fault); returns how many were closed."""
        closing = []
        for venue, conns in list(self.connections.items()):
            for ws in list(conns):
                if not ws.closed:
                    self.counters.inc("drops")
                    self.counters.inc(f"drops.{venue}")
                    # 1011 like a venue-side restart; clients must reconnect
                    closing.append(ws.close(code=1011, message=b"simulated drop"))
                conns.discard(ws)
        await asyncio.gather(*closing, return_exceptions=True)
        return len(closing)

    def state(self) -> dict[str, Any]:
        """The body of ``GET /sim/state``."""
        return {
            "faults": self.faults.snapshot(),
            "counters": dict(self.counters),
            "published": {venue: dict(c) for venue, c in self.published.items()},
            "connections": {venue: len(c) for venue, c in self.connections.items()},
            "market_now_ms": self.market.now_ms,
            "venues": {name: hub.state() for name, hub in self.hubs.items() if hasattr(hub, "state")},
        }


def new_conn_id() -> str:
    """An OKX-style 8-hex connection id, e.g. ``"49d9b4fc"``."""
    return secrets.token_hex(4)


def _okx_429() -> web.Response:
    # exactly what OKX answers when a REST limit is hit
    return web.Response(
        status=429, body=orjson.dumps({"msg": "Too Many Requests", "code": "50011"}), content_type="application/json"
    )


def _okx_5xx() -> web.Response:
    body = {"code": "50001", "msg": "Service temporarily unavailable. Please try again later.", "data": []}
    return web.Response(status=503, body=orjson.dumps(body), content_type="application/json")


def _deribit_429() -> web.Response:
    body = {"jsonrpc": "2.0", "error": {"message": "too_many_requests", "code": 10028}, "testnet": False}
    return web.Response(status=429, body=orjson.dumps(body), content_type="application/json")


def _deribit_5xx() -> web.Response:
    body = {"jsonrpc": "2.0", "error": {"message": "internal_server_error", "code": 11094}, "testnet": False}
    return web.Response(status=503, body=orjson.dumps(body), content_type="application/json")


# venue -> (429 response builder, 5xx response builder)
ERROR_RESPONSES: dict[str, tuple[Callable[[], web.Response], Callable[[], web.Response]]] = {
    "okx": (_okx_429, _okx_5xx),
    "deribit": (_deribit_429, _deribit_5xx),
}


def maybe_fail_rest(ctx: SimContext, venue: str, endpoint: str, request: web.Request) -> web.Response | None:
    """Rate limit + injected REST faults for one request; ``None`` means "go on and answer it".

    ``endpoint`` is the key in ``ctx.rest_limiter.limits`` without the venue prefix, e.g.
    ``"market/history-trades"``; register limits with ``ctx.rest_limiter.set_limits({"okx:market/...": (20, 2)})``.
    """
    too_many, unavailable = ERROR_RESPONSES[venue]
    ctx.counters.inc(f"rest_requests.{venue}")
    faults = ctx.faults
    if faults.roll(faults.settings.rest_429_rate):
        ctx.counters.inc("rest_429")
        return too_many()
    if faults.roll(faults.settings.rest_5xx_rate):
        ctx.counters.inc("rest_5xx")
        return unavailable()
    if ctx.config.rest_rate_limits:
        ip = request.remote or "?"
        if not ctx.rest_limiter.allow(venue, endpoint, ip):
            ctx.counters.inc("rest_429_rate_limited")
            return too_many()
    return None
