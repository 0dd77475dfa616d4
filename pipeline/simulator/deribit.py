"""The simulator's Deribit v2 WebSocket (``/ws/api/v2``, JSON-RPC 2.0) and the ``register`` entry point.

What a client sees is what www.deribit.com sends to an unauthenticated session:

- ``public/subscribe {"channels": [...]}`` answers the subscribed channel names; ``trades.{inst}.{100ms|agg2}``,
  ``ticker.{inst}.{100ms|agg2}``, ``book.{inst}.{100ms|agg2}`` (snapshot, then changes chained by
  ``prev_change_id``) and ``quote.{inst}``. A ``.raw`` channel refuses the WHOLE request with 13778
  ``raw_subscriptions_not_available_for_unauthorized`` (as observed live: one refused channel kills the
  request), an unknown channel or instrument with -32602 ``Invalid params``.
- ``public/set_heartbeat {"interval": N}``: every N s a ``test_request``; a connection that sent no request
  between two of them is closed (``heartbeat_disconnects`` counter).
- every other public method (``public/test``, ``public/get_time``, ``public/ticker``...) is answered by the
  same code as REST (``deribit_api.DeribitApi``).

Frames are serialised once per channel per tick and appended to per-connection buffers; one writer task per
connection drains its buffer, so ``publish`` never blocks on a slow client (a client more than
``max_buffered_frames`` behind is disconnected, ``slow_consumer_drops`` counter).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import WSMsgType, web

from pipeline.simulator import deribit_derivatives as DD
from pipeline.simulator.deribit_api import (
    VENUE,
    DeribitApi,
    RpcError,
    add_rest_routes,
    envelope,
    error_envelope,
    invalid_params,
    now_us,
)
from pipeline.simulator.deribit_books import DeribitBooks
from pipeline.simulator.deribit_frames import ticker_payload, trade_payload
from pipeline.simulator.faults import MalformedFrame
from pipeline.simulator.records import SimInstrument, SimQuote, SimTrade

if TYPE_CHECKING:  # pragma: no cover
    from pipeline.simulator.context import Publisher, SimContext

WS_PATH = "/ws/api/v2"
PUBLIC_INTERVALS = ("100ms", "agg2")
CHANNEL_KINDS = ("trades", "ticker", "book", "quote")
REAL_MIN_HEARTBEAT_S = 10.0  # Deribit refuses set_heartbeat below 10 s
MAX_HEARTBEAT_S = 3600.0

# exactly what Deribit pushes to ask for a sign of life
HEARTBEAT_FRAME = orjson.dumps({"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "test_request"}})


def raw_refused() -> RpcError:
    """``{"jsonrpc":"2.0","id":1,"error":{"message":"raw_subscriptions_not_available_for_unauthorized",
    "code":13778},"usIn":..,"usOut":..,"usDiff":..,"testnet":false}`` (no ``data``, as captured live)."""
    return RpcError(13778, "raw_subscriptions_not_available_for_unauthorized")


def subscription_frame(channel: str, data: Any) -> bytes:
    """A push, e.g. ``{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.ETH-30JUL21-2800-C.raw",
    "data":{...}}}``; serialised once and shared by every subscriber."""
    return orjson.dumps({"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}})


def parse_channel(channel: Any, instruments: dict[str, SimInstrument]) -> tuple[str, str, str]:
    """``"book.ETH-PERPETUAL.100ms"`` -> ``("book", "ETH-PERPETUAL", "100ms")``; ``quote.X`` has interval ``""``.

    Raises the venue's error: 13778 for ``.raw``, -32602 for anything unknown."""
    if not isinstance(channel, str) or "." not in channel:
        raise invalid_params("channels")
    kind, rest = channel.split(".", 1)
    if kind == DD.INDEX_CHANNEL:  # deribit_price_index.eth_usd: the index of a listed currency
        if rest not in DD.index_names(instruments):
            raise invalid_params("channels")
        return kind, rest, ""
    if kind == "quote":
        inst, interval = rest, ""
    else:
        if "." not in rest:
            raise invalid_params("channels")
        inst, interval = rest.rsplit(".", 1)
        if interval == "raw" and kind in ("trades", "ticker", "book"):
            raise raw_refused()
        if interval not in PUBLIC_INTERVALS:
            raise invalid_params("channels")
    if kind not in CHANNEL_KINDS or inst not in instruments:
        raise invalid_params("channels")
    return kind, inst, interval


@dataclass(eq=False)
class _Conn:
    """One client connection: its subscriptions, outgoing buffer and heartbeat state."""

    ws: web.WebSocketResponse
    hub: DeribitHub
    channels: set[str] = field(default_factory=set)
    queue: deque[bytes] = field(default_factory=deque)  # UTF-8 JSON, sent as text frames
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    heartbeat_s: float = 0.0
    heartbeat_task: asyncio.Task[None] | None = None
    awaiting_reply: bool = False  # a test_request went out and no request came in since
    held: bytes | None = None  # a trades frame held back by the out-of-order fault
    held_tick: int = 0
    closing: bool = False

    def push(self, frame: bytes) -> bool:
        """Buffer one frame; False if nothing was sent (silence window, connection closing)."""
        if self.closing or self.ws.closed:
            return False
        if self.hub.ctx.faults.silent():
            self.hub.ctx.counters.inc("frames_suppressed")
            return False
        if len(self.queue) >= self.hub.max_buffered:
            self.hub.ctx.counters.inc(f"slow_consumer_drops.{VENUE}")
            self.close_soon()
            return False
        self.queue.append(frame)
        self.wake.set()
        return True

    def close_soon(self, code: int = 1000, message: bytes = b"") -> None:
        if not self.closing:
            self.closing = True
            asyncio.get_running_loop().create_task(self.ws.close(code=code, message=message))

    async def writer(self) -> None:
        """Drains the buffer in order; ends when the socket does."""
        try:
            while not self.ws.closed:
                await self.wake.wait()
                self.wake.clear()
                while self.queue and not self.ws.closed:
                    # bytes as a TEXT frame: serialised once, never re-encoded per connection
                    frame = self.queue.popleft()
                    await self.ws.send_frame(frame, WSMsgType.TEXT)
                    if frame.__class__ is MalformedFrame:
                        self.hub.ctx.counters.inc("malformed_delivered")
        except (ConnectionError, RuntimeError):  # peer gone mid-send
            pass


class DeribitHub:
    """Subscriptions, book chains and connections of the Deribit side; ``publish`` is the server's hook."""

    def __init__(self, ctx: SimContext) -> None:
        self.ctx = ctx
        self.last_quotes: dict[str, SimQuote] = {}  # inst -> the quote last published (REST answers from it)
        self.book_payloads = DeribitBooks(ctx.books, ctx.faults)  # book.* and quote.* over the true books
        self.api = DeribitApi(ctx.market, book_of=self.book_payloads.order_book, quote_of=self.quote_of)
        self.instruments = self.api.instruments
        self.subs: dict[str, set[_Conn]] = {}
        self.conns: set[_Conn] = set()
        self._tick = 0
        self.index_feed = DD.DeribitIndexFeed(self)
        # below 10 s only for tests: SimConfig.deribit_min_heartbeat_s if present, else the venue's 10 s
        self.min_heartbeat_s = float(getattr(ctx.config, "deribit_min_heartbeat_s", REAL_MIN_HEARTBEAT_S))
        self.max_buffered = int(getattr(ctx.config, "max_buffered_frames", 200_000))
        # initial pushes of a subscribe (book snapshot, current ticker) wait here until its ack is sent
        self._pending_initial: dict[_Conn, list[bytes]] = {}

    # -- state ----------------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "connections": len(self.conns),
            "channels": sum(1 for c in self.subs.values() if c),
            "book_streams": sum(1 for ch, c in self.subs.items() if c and ch.startswith("book.")),
        }

    def quote_of(self, inst_id: str) -> SimQuote:
        q = self.last_quotes.get(inst_id)
        if q is None:
            q = self.last_quotes[inst_id] = self.ctx.market.quote(VENUE, inst_id)
        return q

    def _has_subscribers(self, channel: str) -> bool:
        return bool(self.subs.get(channel))

    # -- fan-out ---------------------------------------------------------------------------------------------
    def _deliver(self, channel: str, data: Any, *, trades: bool = False) -> int:
        """Send one payload to every subscriber of ``channel`` (serialised once); returns how many got it."""
        conns = self.subs.get(channel)
        if not conns:
            return 0
        frame = subscription_frame(channel, data)
        faults = self.ctx.faults
        s = faults.settings
        delivered = 0
        for conn in list(conns):
            if (
                s.malformed_rate
                and faults.roll(s.malformed_rate)
                and conn.push(MalformedFrame(self._malformed(channel, data, frame)))
            ):
                self.ctx.counters.inc("malformed_sent")
            if s.error_rate and faults.roll(s.error_rate) and conn.push(self._error_event()):
                self.ctx.counters.inc("errors_sent")
            if trades and s.out_of_order_rate and conn.held is None and faults.roll(s.out_of_order_rate):
                conn.held, conn.held_tick = frame, self._tick  # sent after this connection's next trades frame
                self.ctx.counters.inc("out_of_order_sent")
                delivered += 1
                continue
            if conn.push(frame):
                delivered += 1
            if trades:
                if conn.held is not None and conn.held is not frame:
                    conn.push(conn.held)
                    conn.held = None
                if s.duplicate_rate and faults.roll(s.duplicate_rate) and conn.push(frame):
                    self.ctx.counters.inc("duplicates_sent")
        return delivered

    def _malformed(self, channel: str, data: Any, frame: bytes) -> bytes:
        """One of: truncated JSON, a wrong value type (a price as an object), an unknown channel."""
        pick = self.ctx.faults.rng.randrange(3)
        if pick == 0:
            return frame[: max(1, len(frame) // 2)]
        if pick == 1:
            bad = [dict(d) for d in data] if isinstance(data, list) else dict(data)
            target = bad[0] if isinstance(bad, list) and bad else bad
            if isinstance(target, dict):
                key = "price" if "price" in target else next(iter(target), "price")
                target[key] = {"value": target.get(key)}
            return subscription_frame(channel, bad)
        return subscription_frame("unknown." + channel, data)

    @staticmethod
    def _error_event() -> bytes:
        return orjson.dumps(
            {"jsonrpc": "2.0", "error": {"message": "internal_server_error", "code": 11094}, "testnet": False}
        )

    async def publish(self, events: list[SimTrade | SimQuote]) -> None:
        """Per tick: one trades list per instrument and channel, the latest ticker/quote/book per instrument."""
        trades: dict[str, list[SimTrade]] = {}
        quotes: dict[str, SimQuote] = {}
        for ev in events:
            if ev.venue != VENUE:
                continue
            if isinstance(ev, SimQuote):
                quotes[ev.inst_id] = ev
            else:
                trades.setdefault(ev.inst_id, []).append(ev)
        self.last_quotes.update(quotes)
        self._tick += 1
        if not self.ctx.faults.silent():
            # like the OKX side: "published" = released on the venue's WS, whether or not anyone listens
            for inst_id, rows in trades.items():
                self.ctx.record_published(VENUE, inst_id, len(rows))
        if not self.subs:
            return
        self.index_feed.publish()
        self._release_held()
        for inst_id, rows in trades.items():
            inst = self.instruments.get(inst_id)
            if inst is None:
                continue
            data: list[dict[str, Any]] | None = None
            for interval in PUBLIC_INTERVALS:
                channel = f"trades.{inst_id}.{interval}"
                if self._has_subscribers(channel):
                    data = data or [trade_payload(inst, t) for t in sorted(rows, key=lambda t: t.seq)]
                    self._deliver(channel, data, trades=True)
        for inst_id, q in quotes.items():
            inst = self.instruments.get(inst_id)
            if inst is None:
                continue
            ticker: dict[str, Any] | None = None
            for interval in PUBLIC_INTERVALS:
                channel = f"ticker.{inst_id}.{interval}"
                if self._has_subscribers(channel):
                    ticker = ticker or ticker_payload(inst, q)
                    self._deliver(channel, ticker)
        self._publish_books()

    def _release_held(self) -> None:
        """A frame held back by the out-of-order fault goes out after at most ~10 ticks even when its
        connection gets no further trades frame (else it would be a loss, not a reordering)."""
        for conn in self.conns:
            if conn.held is not None and self._tick - conn.held_tick > 10:
                conn.push(conn.held)
                conn.held = None

    def _publish_books(self) -> None:
        """This tick's ``book.*`` changes and ``quote.*`` tops of every channel with subscribers (none in a
        silence window: the chain then continues from the last message actually sent)."""
        if self.ctx.faults.silent():
            return
        for ch, conns in list(self.subs.items()):
            if not conns:
                continue
            if ch.startswith("book."):
                for data in self.book_payloads.changes(ch, ch[5:].rsplit(".", 1)[0]):
                    self._deliver(ch, data)
            elif ch.startswith("quote."):
                quote = self.book_payloads.quote(ch, ch[6:])
                if quote is not None:
                    self._deliver(ch, quote)

    # -- subscriptions ---------------------------------------------------------------------------------------
    def subscribe(self, conn: _Conn, channels: Any) -> list[str]:
        """Validate all first (one bad channel refuses the whole request), then add; returns the names."""
        if not isinstance(channels, list) or not channels:
            raise invalid_params("channels")
        parsed = [(ch, parse_channel(ch, self.instruments)) for ch in channels]
        result: list[str] = []
        fresh: list[tuple[str, str, str]] = []
        for ch, (kind, inst_id, _interval) in parsed:
            if ch in result:
                continue
            result.append(ch)
            if ch not in conn.channels:
                conn.channels.add(ch)
                self.subs.setdefault(ch, set()).add(conn)
                fresh.append((ch, kind, inst_id))
        return result if not fresh else self._with_initial(conn, result, fresh)

    def _with_initial(self, conn: _Conn, result: list[str], fresh: list[tuple[str, str, str]]) -> list[str]:
        conn_initial: list[bytes] = []
        for ch, kind, inst_id in fresh:
            if kind == DD.INDEX_CHANNEL:  # the current index at once, like the venue
                conn_initial.append(subscription_frame(ch, self.index_feed.payload(inst_id)))
                continue
            first = len(self.subs.get(ch, ())) == 1  # nobody else follows this channel: its chain starts now
            if kind == "book":
                conn_initial.append(subscription_frame(ch, self.book_payloads.snapshot(ch, inst_id, first)))
            elif kind == "quote":  # like the venue: a fresh quote/ticker subscription gets the current state at once
                quote = self.book_payloads.quote(ch, inst_id, force=True)
                conn_initial.append(subscription_frame(ch, quote))
            elif kind == "ticker":
                conn_initial.append(
                    subscription_frame(ch, ticker_payload(self.instruments[inst_id], self.quote_of(inst_id)))
                )
        self._pending_initial[conn] = conn_initial
        return result

    def unsubscribe(self, conn: _Conn, channels: Any) -> list[str]:
        if not isinstance(channels, list):
            raise invalid_params("channels")
        removed = [ch for ch in dict.fromkeys(channels) if isinstance(ch, str) and ch in conn.channels]
        for ch in removed:
            self._drop_channel(conn, ch)
        return removed

    def _drop_channel(self, conn: _Conn, ch: str) -> None:
        conn.channels.discard(ch)
        subs = self.subs.get(ch)
        if subs is not None:
            subs.discard(conn)
            if not subs:
                del self.subs[ch]

    # -- heartbeat -------------------------------------------------------------------------------------------
    def set_heartbeat(self, conn: _Conn, params: dict[str, Any]) -> str:
        interval = params.get("interval")
        if isinstance(interval, bool) or not isinstance(interval, (int, float)):
            raise invalid_params("interval")
        if not self.min_heartbeat_s <= interval <= MAX_HEARTBEAT_S:
            raise invalid_params("interval", f"must be between {self.min_heartbeat_s:g} and {MAX_HEARTBEAT_S:g}")
        self._stop_heartbeat(conn)
        conn.heartbeat_s = float(interval)
        conn.awaiting_reply = False
        conn.heartbeat_task = asyncio.get_running_loop().create_task(self._heartbeat(conn))
        return "ok"

    @staticmethod
    def _stop_heartbeat(conn: _Conn) -> None:
        if conn.heartbeat_task is not None:
            conn.heartbeat_task.cancel()
            conn.heartbeat_task = None

    async def _heartbeat(self, conn: _Conn) -> None:
        while not conn.ws.closed and not conn.closing:
            await asyncio.sleep(conn.heartbeat_s)
            if conn.awaiting_reply:
                # the previous test_request went unanswered: the venue closes the connection
                self.ctx.counters.inc("heartbeat_disconnects")
                self.ctx.counters.inc(f"heartbeat_disconnects.{VENUE}")
                conn.close_soon(1000, b"heartbeat timeout")
                return
            # only a test_request that really went out (not eaten by a silence window) needs an answer
            conn.awaiting_reply = conn.push(HEARTBEAT_FRAME)

    # -- requests --------------------------------------------------------------------------------------------
    def handle_request(self, conn: _Conn, raw: str) -> list[bytes]:
        """One client text frame -> frames to send (the reply first, then any initial pushes)."""
        us_in = now_us()
        conn.awaiting_reply = False  # any request counts as a sign of life
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return [orjson.dumps(error_envelope(RpcError(-32700, "Parse error"), us_in))]
        if not isinstance(msg, dict):
            return [orjson.dumps(error_envelope(RpcError(-32600, "Invalid Request"), us_in))]
        req_id = msg.get("id")
        method = msg.get("method")
        params = msg.get("params") or {}
        extra: list[bytes] = []
        try:
            if not isinstance(method, str) or not isinstance(params, dict):
                raise RpcError(-32600, "Invalid Request")
            if method == "public/subscribe":
                result: Any = self.subscribe(conn, params.get("channels"))
                extra = self._pending_initial.pop(conn, [])
                self.ctx.counters.inc(f"subscribe_requests.{VENUE}")
            elif method == "public/unsubscribe":
                result = self.unsubscribe(conn, params.get("channels"))
            elif method == "public/unsubscribe_all":
                for ch in list(conn.channels):
                    self._drop_channel(conn, ch)
                result = "ok"
            elif method == "public/set_heartbeat":
                result = self.set_heartbeat(conn, params)
            elif method == "public/disable_heartbeat":
                self._stop_heartbeat(conn)
                result = "ok"
            elif method.startswith("private/"):
                raise RpcError(13009, "unauthorized")
            else:
                result = self.api.dispatch(method, params)
        except RpcError as err:
            self._pending_initial.pop(conn, None)
            return [orjson.dumps(error_envelope(err, us_in, req_id))]
        return [orjson.dumps(envelope(result, us_in, req_id)), *extra]

    async def handle_ws(self, request: web.Request) -> web.WebSocketResponse:
        # 830 options x 2 channels in one subscribe is ~80 kB; allow far more than that per message
        ws = web.WebSocketResponse(max_msg_size=16 * 1024 * 1024)
        await ws.prepare(request)
        conn = _Conn(ws=ws, hub=self)
        self.conns.add(conn)
        self.ctx.track_ws(VENUE, ws)
        writer = asyncio.get_running_loop().create_task(conn.writer())
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    for frame in self.handle_request(conn, msg.data):
                        conn.push(frame)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self._stop_heartbeat(conn)
            for ch in list(conn.channels):
                self._drop_channel(conn, ch)
            self.conns.discard(conn)
            self._pending_initial.pop(conn, None)
            self.ctx.untrack_ws(VENUE, ws)
            conn.wake.set()
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        return ws


def register(app: web.Application, ctx: SimContext) -> Publisher:
    """Add the Deribit routes (WS ``/ws/api/v2``, REST ``/api/v2/public/<method>``) and return ``publish``."""
    hub = DeribitHub(ctx)
    ctx.hubs[VENUE] = hub
    app.router.add_get(WS_PATH, hub.handle_ws)
    add_rest_routes(app, ctx, hub.api)
    ctx.publishers[VENUE] = hub.publish
    return hub.publish


__all__ = ["HEARTBEAT_FRAME", "WS_PATH", "DeribitHub", "parse_channel", "register", "subscription_frame"]
