"""OKX v5 on the simulator's port: WebSocket ``/ws/v5/public`` + ``/ws/v5/business`` and REST ``/api/v5/...``.

Protocol as the real venue (see ``okx_frames`` for payload shapes):

- ``{"op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT"}]}`` -> one ack per arg
  ``{"event":"subscribe","arg":{...},"connId":"49d9b4fc"}``, or an error event
  ``{"event":"error","code":"60018","msg":"Wrong URL or channel:...","connId":...}``.
- Public: ``trades``, ``tickers`` and the book channels of ``okx_books`` (``books``, ``books-l2-tbt``,
  ``books50-l2-tbt``, ``books5``, ``bbo-tbt``; the two ``-tbt`` books need a login first: ``okx_login``). Business: ``candle1m`` .. ``candle1D`` (+ ``utc``
  variants) and ``trades-all``. A candle channel on /public is error 64001.
- Derivatives (``okx_derivatives``, public): ``funding-rate``, ``open-interest``, ``mark-price`` (a swap's
  ``instId``), ``index-tickers`` (an index ``instId``, e.g. ``BTC-USDT``), ``liquidation-orders`` (``instType``
  ``SWAP``); their REST endpoints in ``okx_deriv_rest``.
- Text ``ping`` -> text ``pong``. A connection that sends nothing for ``idle_timeout_s`` is closed (code 4004).
- Limits: ``subscribe_requests_per_hour`` per connection, logins included (error 60014), ``ws_connections_per_s`` new
  handshakes per IP (HTTP 429 on the handshake).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from pipeline.simulator import okx_books, okx_login, okx_rest
from pipeline.simulator import okx_frames as F
from pipeline.simulator.context import Publisher, SimContext, new_conn_id
from pipeline.simulator.faults import MalformedFrame
from pipeline.simulator.okx_deriv_rest import REST_LIMITS as DERIV_REST_LIMITS
from pipeline.simulator.okx_deriv_rest import routes as deriv_routes
from pipeline.simulator.okx_derivatives import CHANNELS as DERIV_CHANNELS
from pipeline.simulator.okx_derivatives import OkxDerivativesFeed
from pipeline.simulator.ratelimit import SlidingWindow
from pipeline.simulator.records import SimQuote, SimTrade
from pipeline.simulator.wsconn import WsConn

CANDLE_CHANNELS = {f"candle{bar}": bar for bar in F.CANDLE_BARS}
PUBLIC_CHANNELS = {"trades", "tickers"} | okx_books.CHANNELS
BUSINESS_CHANNELS = set(CANDLE_CHANNELS) | {"trades-all"}
MSG_64001 = (
    "This channel has been migrated to the '/business' URL. Please subscribe using the new URL. "
    "More details can be refered to: "
    "https://www.okx.com/help-center/changes-to-v5-api-websocket-subscription-parameter-and-url"
)
REST_LIMITS = {  # requests per 2 s per IP, as documented by OKX
    "public/instruments": (20, 2.0),
    "public/time": (10, 2.0),
    "market/ticker": (20, 2.0),
    "market/tickers": (20, 2.0),
    "market/books": (40, 2.0),
    "market/candles": (40, 2.0),
    "market/history-candles": (20, 2.0),
    "market/trades": (100, 2.0),
    "market/history-trades": (20, 2.0),
}


def _wrong_url(channel: Any, inst_id: Any) -> str:
    return (
        f"Wrong URL or channel:{channel},instId:{inst_id} doesn't exist. Please use the correct URL, "
        "channel and parameters referring to API document."
    )


class OkxHub:
    """Connections, subscriptions and fan-out for the OKX venue."""

    def __init__(self, ctx: SimContext) -> None:
        self.ctx = ctx
        self.market = ctx.market
        self.info = {i.inst_id: F.OkxInfo(i) for i in ctx.market.instruments("okx")}
        self.subs: dict[tuple[str, str], set[WsConn]] = defaultdict(set)
        self.conns: set[WsConn] = set()
        self.handshakes = SlidingWindow(ctx.config.ws_connections_per_s, 1.0)
        self._candle_state: dict[tuple[str, str], tuple[int, float]] = {}  # (channel, inst) -> (bar, pushed)
        self._sod: dict[tuple[str, int], float] = {}
        self.derivatives = OkxDerivativesFeed(self)  # funding-rate, open-interest, mark-price, index, liquidations
        self._housekeeper: asyncio.Task | None = None
        cfg = ctx.config
        self.book_frames = okx_books.OkxBooks(ctx.books, ctx.faults, cfg.book_checksum, cfg.book_ws_snapshot)

    # -- state ----------------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "connections": len(self.conns),
            "subscriptions": sum(len(v) for v in self.subs.values()),
            "frames_sent": sum(c.sent for c in self.conns),
        }

    # -- connection ---------------------------------------------------------------------------------------------
    async def ws_handler(self, request: web.Request) -> web.StreamResponse:
        path = "business" if request.path.endswith("/business") else "public"
        ctx = self.ctx
        if not self.handshakes.allow(request.remote or "?"):
            ctx.counters.inc("ws_rejected_429")
            return web.Response(status=429, text="Too Many Requests")
        ws = web.WebSocketResponse(compress=False, autoping=True, max_msg_size=1 << 20)
        await ws.prepare(request)
        conn = WsConn(ws, new_conn_id(), "okx", path, ctx.config.max_buffered_frames)
        conn.counters = ctx.counters
        conn.start()
        self.conns.add(conn)
        ctx.track_ws("okx", ws)
        try:
            async for msg in ws:
                conn.last_recv = time.monotonic()
                if msg.type == WSMsgType.TEXT:
                    self._on_text(conn, msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            for key in conn.subs:
                self.subs[key].discard(conn)
            self.conns.discard(conn)
            ctx.untrack_ws("okx", ws)
            await conn.stop_writer()
        return ws

    def _send(self, conn: WsConn, obj: Any) -> None:
        """Control frames (acks, errors, pong) also obey the silence fault."""
        if self.ctx.faults.silent():
            self.ctx.counters.inc("frames_suppressed")
            return
        conn.push(obj if isinstance(obj, bytes) else orjson.dumps(obj))

    def _error(self, conn: WsConn, code: str, msg: str) -> None:
        self._send(conn, {"event": "error", "code": code, "msg": msg, "connId": conn.conn_id})

    def _on_text(self, conn: WsConn, text: str) -> None:
        if text == "ping":
            self._send(conn, b"pong")
            return
        try:
            req = orjson.loads(text)
        except orjson.JSONDecodeError:
            self._error(conn, "60012", f"Invalid request: {text}")
            return
        op = req.get("op") if isinstance(req, dict) else None
        args = req.get("args") if isinstance(req, dict) else None
        if op not in ("subscribe", "unsubscribe", "login"):
            self._error(conn, "60012", f"Invalid request: {text}")
            return
        # OKX counts subscribe, unsubscribe and login requests alike against the per-connection hourly limit.
        limit = self.ctx.config.subscribe_requests_per_hour
        if limit:
            now = time.monotonic()
            conn.sub_times = [t for t in conn.sub_times if now - t < 3600.0]
            if len(conn.sub_times) >= limit:
                self.ctx.counters.inc("subscribe_rate_limited")
                self._error(conn, "60014", "Requests too frequent.")
                return
            conn.sub_times.append(now)
        if op == "login":
            refused = okx_login.check(args)
            if refused is not None:
                self.ctx.counters.inc("okx_login_refused")
                self._error(conn, *refused)
                return
            conn.logged_in = True
            self._send(conn, {"event": "login", "code": "0", "msg": "", "connId": conn.conn_id})
            return
        if not isinstance(args, list) or not args:
            self._error(conn, "60012", f"Invalid request: {text}")
            return
        for arg in args:
            self._on_arg(conn, op, arg, text)

    def _on_arg(self, conn: WsConn, op: str, arg: Any, text: str) -> None:
        if not isinstance(arg, dict):
            self._error(conn, "60012", f"Invalid request: {text}")
            return
        channel, inst_id = arg.get("channel"), arg.get("instId")
        if conn.path == "public" and channel in CANDLE_CHANNELS:
            self._error(conn, "64001", MSG_64001)
            return
        allowed = PUBLIC_CHANNELS if conn.path == "public" else BUSINESS_CHANNELS
        sub: tuple[tuple[str, str], dict[str, str]] | None = None
        if channel in DERIV_CHANNELS:  # their own ids: an index (BTC-USDT), an instType (SWAP)
            sub = self.derivatives.subscription(conn.path, arg)
        elif channel in okx_login.LOGIN_CHANNELS and op == "subscribe" and not conn.logged_in:
            self._error(conn, *okx_login.NOT_LOGGED_IN)
            return
        elif channel in allowed and inst_id in self.info:
            sub = ((channel, inst_id), {"channel": channel, "instId": inst_id})
        if sub is None:
            self._error(conn, "60018", _wrong_url(channel, inst_id if inst_id is not None else arg.get("instType")))
            return
        key, ack_arg = sub
        ack = {"event": op, "arg": ack_arg, "connId": conn.conn_id}
        if op == "unsubscribe":
            conn.subs.discard(key)
            self.subs[key].discard(conn)
            for h in conn.held:  # a held frame still goes out, before the ack (in order: not counted)
                conn.push(h)
            conn.held.clear()
            self._send(conn, ack)
            return
        conn.subs.add(key)
        self.subs[key].add(conn)
        self._send(conn, ack)
        self._initial_push(conn, *key)

    def _initial_push(self, conn: WsConn, channel: str, inst_id: str) -> None:
        """Like OKX: books/tickers send the current state at once, candles the current bar."""
        if channel in DERIV_CHANNELS:
            snapshot = self.derivatives.snapshot(channel, inst_id)
            if snapshot is not None:
                self._send(conn, orjson.dumps(snapshot))
            return
        info = self.info[inst_id]
        if channel in CANDLE_CHANNELS:
            frame = self._candle_frame(channel, inst_id, self.market.now_ms, force=True)
            if frame:
                self._send(conn, frame)
            return
        if channel in okx_books.CHANNELS:
            first = len(self.subs[(channel, inst_id)]) == 1  # nobody else follows this stream: it starts now
            frame = self.book_frames.subscribed(channel, inst_id, first)
            if frame is not None:
                self._send(conn, frame)
        elif channel == "tickers":
            self._send(conn, self._quote_frame(channel, self.market.quote("okx", inst_id), info))

    # -- publishing ------------------------------------------------------------------------------------------
    async def publish(self, events: list[SimTrade | SimQuote]) -> None:
        """Called once per tick with all venues' events; sends the OKX ones to subscribers."""
        ctx = self.ctx
        silent = ctx.faults.silent()
        trades: dict[str, list[SimTrade]] = {}
        quotes: list[SimQuote] = []
        for e in events:
            if e.venue != "okx":
                continue
            if isinstance(e, SimTrade):
                lst = trades.get(e.inst_id)
                if lst is None:
                    trades[e.inst_id] = [e]
                else:
                    lst.append(e)
            else:
                quotes.append(e)
        if silent:
            ctx.counters.inc("frames_suppressed", len(trades) + len(quotes))
            return
        bursting = ctx.faults.burst_rate() > 0
        per_cfg = ctx.config.okx_trades_per_frame
        for inst_id, lst in trades.items():
            ctx.record_published("okx", inst_id, len(lst))
            subs = self.subs.get(("trades", inst_id))
            subs_all = self.subs.get(("trades-all", inst_id))
            if not subs and not subs_all:
                continue
            info = self.info[inst_id]
            # like OKX: one trade per push, several when an instrument is very busy (never during a burst,
            # whose point is a high frame rate)
            per = per_cfg or (1 if bursting or len(lst) <= 20 else 10)
            for i in range(0, len(lst), per):
                data = [F.trade_data(t, info) for t in lst[i : i + per]]
                if subs:
                    self._fanout({"arg": {"channel": "trades", "instId": inst_id}, "data": data}, subs, True)
                if subs_all:
                    rows = [{k: v for k, v in d.items() if k not in ("count", "seqId")} for d in data]
                    self._fanout({"arg": {"channel": "trades-all", "instId": inst_id}, "data": rows}, subs_all, True)
        for q in quotes:
            info = self.info[q.inst_id]
            subs = self.subs.get(("tickers", q.inst_id))
            if subs:
                self._fanout(self._quote_frame("tickers", q, info), subs, False)
        self._push_books()
        self._push_candles(set(trades))
        self.derivatives.publish()

    def _push_books(self) -> None:
        """This tick's frames of every book stream with subscribers (an update, a keep-alive, or nothing)."""
        for (channel, inst_id), subs in self.subs.items():
            if subs and channel in okx_books.CHANNELS:
                for frame in self.book_frames.publish(channel, inst_id):
                    self._fanout(frame, subs, False)

    def _quote_frame(self, channel: str, q: SimQuote, info: F.OkxInfo) -> dict[str, Any]:
        u0, u8 = self.sod_prices(q.inst_id, q.ts_ms)
        data = F.ticker_data(q, info, u0, u8)
        return {"arg": {"channel": channel, "instId": q.inst_id}, "data": [data]}

    def sod_prices(self, inst_id: str, now_ms: int) -> tuple[float, float]:
        day0 = now_ms // F.DAY * F.DAY
        day8 = (now_ms + 8 * F.HOUR) // F.DAY * F.DAY - 8 * F.HOUR
        out = []
        for start in (day0, day8):
            key = (inst_id, start)
            if key not in self._sod:
                self._sod[key] = self.market.price_at("okx", inst_id, start)
            out.append(self._sod[key])
        return out[0], out[1]

    def _candle_frame(self, channel: str, inst_id: str, now_ms: int, force: bool = False) -> bytes | None:
        bar_ms, offset = F.CANDLE_BARS[CANDLE_CHANNELS[channel]]
        start = (now_ms - offset) // bar_ms * bar_ms + offset
        rows = self.market.candles("okx", inst_id, bar_ms, start, start, offset)
        if not rows:
            return None
        data = [F.candle_row(r, self.info[inst_id]) for r in rows]
        return orjson.dumps({"arg": {"channel": channel, "instId": inst_id}, "data": data})

    def _push_candles(self, traded: set[str]) -> None:
        """Current bar when the instrument traded (at most every 500 ms) and the final bar (confirm "1")
        when a bar closes."""
        now = self.market.now_ms
        for (channel, inst_id), subs in self.subs.items():
            if not subs or channel not in CANDLE_CHANNELS:
                continue
            bar_ms, offset = F.CANDLE_BARS[CANDLE_CHANNELS[channel]]
            bar = (now - offset) // bar_ms * bar_ms + offset
            key = (channel, inst_id)
            last_bar, pushed = self._candle_state.get(key, (bar, 0.0))
            rolled = bar != last_bar
            if rolled:
                info = self.info[inst_id]
                rows = self.market.candles("okx", inst_id, bar_ms, last_bar, last_bar, offset)
                if rows:
                    frame = {"arg": {"channel": channel, "instId": inst_id}, "data": [F.candle_row(rows[0], info)]}
                    self._fanout(frame, subs, False)
            if rolled or (inst_id in traded and now - pushed >= 500):
                frame_b = self._candle_frame(channel, inst_id, now)
                if frame_b:
                    self._fanout(frame_b, subs, False)
                pushed = now
            self._candle_state[key] = (bar, pushed)

    def _fanout(self, frame: dict[str, Any] | bytes, subs: set[WsConn], is_trade: bool) -> None:
        """Serialise once, inject faults, push to every subscriber."""
        data = frame if isinstance(frame, bytes) else orjson.dumps(frame)
        faults = self.ctx.faults
        s = faults.settings
        counters = self.ctx.counters
        n = len(subs)
        if s.malformed_rate and faults.roll(s.malformed_rate):
            bad = MalformedFrame(self._malformed(frame, data))
            for c in subs:
                c.push(bad)
            counters.inc("malformed_sent", n)
        if s.error_rate and faults.roll(s.error_rate):
            for c in subs:
                c.push(
                    orjson.dumps(
                        {
                            "event": "error",
                            "code": "50026",
                            "msg": "System error. Please try again later.",
                            "connId": c.conn_id,
                        }
                    )
                )
            counters.inc("errors_sent", n)
        hold = is_trade and s.out_of_order_rate and faults.roll(s.out_of_order_rate)
        dup = is_trade and s.duplicate_rate and faults.roll(s.duplicate_rate)
        for c in subs:
            if hold and not c.held:  # one frame held per connection at a time
                c.held.append(data)
                c.held_since = time.monotonic()
                continue
            c.push(data)
            if is_trade and c.held:  # the held frame goes out after this later one: now it is out of order
                for h in c.held:
                    c.push(h)
                counters.inc("out_of_order_sent", len(c.held))
                c.held.clear()
            if dup:
                c.push(data)
                counters.inc("duplicates_sent")

    def _malformed(self, frame: dict[str, Any] | bytes, data: bytes) -> bytes:
        kind = self.ctx.faults.rng.randrange(3)
        if kind == 0 or not isinstance(frame, dict):
            self.ctx.counters.inc("malformed_truncated")
            return data[: max(1, len(data) // 2)]
        if kind == 1:
            self.ctx.counters.inc("malformed_wrong_type")
            item = dict(frame["data"][0]) if frame["data"] and isinstance(frame["data"][0], dict) else {}
            if item.get("details"):  # liquidation-orders: the numbers are in the details, not the item
                item["details"] = [dict(item["details"][0], bkPx={"value": item["details"][0].get("bkPx")})]
            else:
                key = "px" if "px" in item else "ts"
                item[key] = {"value": item.get(key)}  # a number field as an object
            return orjson.dumps({"arg": frame["arg"], "data": [item]})
        self.ctx.counters.inc("malformed_unknown_channel")
        arg = dict(frame["arg"], channel=f"{frame['arg']['channel']}-v9")
        return orjson.dumps({"arg": arg, "data": frame["data"]})

    # -- housekeeping ------------------------------------------------------------------------------------------
    async def housekeeping(self) -> None:
        """Close idle connections; release out-of-order frames held for more than a second."""
        idle = self.ctx.config.idle_timeout_s
        period = min(1.0, max(0.05, idle / 4))
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for c in list(self.conns):
                if c.held and now - c.held_since > 1.0:
                    for h in c.held:
                        c.push(h)
                    c.held.clear()
                if now - c.last_recv > idle and not c.ws.closed and not c.closed:
                    self.ctx.counters.inc("idle_closed")
                    # in a task: close() waits for the client's close frame, which a dead client never sends
                    asyncio.get_running_loop().create_task(c.close(code=4004, message=b"No data received in 30s."))

    async def on_startup(self, app: web.Application) -> None:
        self._housekeeper = asyncio.get_running_loop().create_task(self.housekeeping())

    async def on_cleanup(self, app: web.Application) -> None:
        if self._housekeeper:
            self._housekeeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeper
        for c in list(self.conns):
            await c.close(code=1001, message=b"server shutdown")


def register(app: web.Application, ctx: SimContext) -> Publisher:
    """Add the OKX routes to ``app``; returns the tick publisher."""
    hub = OkxHub(ctx)
    ctx.hubs["okx"] = hub
    ctx.rest_limiter.set_limits({f"okx:{k}": v for k, v in REST_LIMITS.items()})
    app.router.add_get("/ws/v5/public", hub.ws_handler)
    app.router.add_get("/ws/v5/business", hub.ws_handler)
    ctx.rest_limiter.set_limits({f"okx:{k}": v for k, v in DERIV_REST_LIMITS.items()})
    okx_rest.add_routes(app, hub, deriv_routes(hub))
    app.on_startup.append(hub.on_startup)
    app.on_cleanup.append(hub.on_cleanup)
    return hub.publish
