"""OKX v5 REST: what ccxt's ``okx`` class needs for markets, tickers, books, candles and trades.

Every answer is ``{"code":"0","msg":"","data":[...]}``; parameter errors use OKX codes (HTTP 400), rate
limits and injected faults go through ``context.maybe_fail_rest`` (429 ``{"msg":"Too Many Requests",
"code":"50011"}``). Paging follows OKX: ``after`` = older than, ``before`` = newer than (exclusive), the
newest ``limit`` rows of the window, newest first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from aiohttp import web

from pipeline.simulator import okx_frames as F
from pipeline.simulator.context import maybe_fail_rest

if TYPE_CHECKING:  # pragma: no cover
    from pipeline.simulator.context import SimContext
    from pipeline.simulator.market import Market
    from pipeline.simulator.okx_books import OkxBooks

MAX_ROWS = {"market/candles": 300, "market/history-candles": 100, "market/trades": 500, "market/history-trades": 100}


def _ok(data: list[Any]) -> web.Response:
    return web.Response(body=orjson.dumps({"code": "0", "msg": "", "data": data}), content_type="application/json")


def _bad(code: str, msg: str) -> web.Response:
    return web.Response(
        status=400, body=orjson.dumps({"code": code, "msg": msg, "data": []}), content_type="application/json"
    )


def _int(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        raise _ParamError(name) from None


class _ParamError(Exception):
    def __init__(self, name: str) -> None:
        self.name = name


class OkxState(Protocol):
    """What REST reads of the OKX hub (``okx.OkxHub``), so REST and WebSocket show the same instruments and
    ticker opens."""

    market: Market
    ctx: SimContext
    info: dict[str, F.OkxInfo]
    book_frames: OkxBooks

    def sod_prices(self, inst_id: str, now_ms: int) -> tuple[float, float]: ...


def add_routes(
    app: web.Application, hub: OkxState, extra: dict[str, Callable[[web.Request], web.Response]] | None = None
) -> None:
    """Register the REST handlers on ``app`` (``extra``: more endpoints, e.g. ``okx_deriv_rest.routes``)."""
    market, ctx = hub.market, hub.ctx

    def guarded(endpoint: str, fn):
        async def handler(request: web.Request) -> web.StreamResponse:
            failed = maybe_fail_rest(ctx, "okx", endpoint, request)
            if failed is not None:
                return failed
            try:
                return fn(request)
            except _ParamError as e:
                return _bad("51000", f"Parameter {e.name} error")

        return handler

    def instrument_or_error(request: web.Request):
        inst_id = request.query.get("instId")
        if not inst_id:
            return None, _bad("50014", "Parameter instId can not be empty.")
        info = hub.info.get(inst_id)
        if info is None:
            return None, _bad("51001", "Instrument ID or Spread ID doesn't exist.")
        return info, None

    def instruments(request: web.Request) -> web.Response:
        inst_type = request.query.get("instType")
        if not inst_type:
            return _bad("50014", "Parameter instType can not be empty.")
        if inst_type not in ("SPOT", "SWAP", "FUTURES", "OPTION", "MARGIN"):
            return _bad("51000", "Parameter instType error")
        want_id = request.query.get("instId")
        rows = [
            F.instrument_body(i.inst)
            for i in hub.info.values()
            if i.inst_type == inst_type and (not want_id or i.inst.inst_id == want_id)
        ]
        return _ok(rows)

    def server_time(request: web.Request) -> web.Response:
        return _ok([{"ts": str(int(time.time() * 1000))}])

    def system_status(request: web.Request) -> web.Response:
        return _ok([])

    def ticker_row(info: F.OkxInfo) -> dict[str, Any]:
        q = market.quote("okx", info.inst.inst_id)
        u0, u8 = hub.sod_prices(q.inst_id, q.ts_ms)
        return F.ticker_data(q, info, u0, u8)

    def ticker(request: web.Request) -> web.Response:
        info, err = instrument_or_error(request)
        return err or _ok([ticker_row(info)])

    def tickers(request: web.Request) -> web.Response:
        inst_type = request.query.get("instType")
        if not inst_type:
            return _bad("50014", "Parameter instType can not be empty.")
        return _ok([ticker_row(i) for i in hub.info.values() if i.inst_type == inst_type])

    def books(request: web.Request) -> web.Response:
        info, err = instrument_or_error(request)
        if err:
            return err
        depth = max(1, min(400, _int(request, "sz") or 1))
        return _ok([hub.book_frames.rest_body(info.inst.inst_id, depth)])

    def candles_for(endpoint: str):
        def handler(request: web.Request) -> web.Response:
            info, err = instrument_or_error(request)
            if err:
                return err
            bar = request.query.get("bar", "1m")
            if bar not in F.CANDLE_BARS:
                return _bad("51000", "Parameter bar error")
            bar_ms, offset = F.CANDLE_BARS[bar]
            limit = max(1, min(MAX_ROWS[endpoint], _int(request, "limit") or 100))
            after, before = _int(request, "after"), _int(request, "before")
            now = market.now_ms
            end = min(now, after - 1) if after is not None else now
            start = end - limit * bar_ms + 1
            if before is not None:
                start = max(start, before + 1)
            if endpoint == "market/candles":  # the recent endpoint only knows the last 1440 bars
                start = max(start, (now - offset) // bar_ms * bar_ms + offset - 1439 * bar_ms)
            if start > end:
                return _ok([])
            rows = market.candles("okx", info.inst.inst_id, bar_ms, start, end, offset)[-limit:]
            return _ok([F.candle_row(r, info) for r in reversed(rows)])

        return handler

    def trades_recent(request: web.Request) -> web.Response:
        info, err = instrument_or_error(request)
        if err:
            return err
        limit = max(1, min(MAX_ROWS["market/trades"], _int(request, "limit") or 100))
        rows = market.trades("okx", info.inst.inst_id, limit=limit)
        return _ok([F.trade_rest(t, info) for t in rows])

    def trades_history(request: web.Request) -> web.Response:
        info, err = instrument_or_error(request)
        if err:
            return err
        limit = max(1, min(MAX_ROWS["market/history-trades"], _int(request, "limit") or 100))
        kind = request.query.get("type", "1")
        after, before = _int(request, "after"), _int(request, "before")
        iid = info.inst.inst_id
        if kind == "1":  # page by trade id
            rows = market.trades("okx", iid, before_id=after, after_id=before, limit=limit)
        elif kind == "2":  # page by timestamp
            rows = market.trades(
                "okx",
                iid,
                end_ms=None if after is None else after - 1,
                start_ms=None if before is None else before + 1,
                limit=limit,
            )
        else:
            return _bad("51000", "Parameter type error")
        return _ok([F.trade_rest(t, info) for t in rows])

    routes = {
        "public/instruments": instruments,
        "public/time": server_time,
        "system/status": system_status,
        "market/ticker": ticker,
        "market/tickers": tickers,
        "market/books": books,
        "market/candles": candles_for("market/candles"),
        "market/history-candles": candles_for("market/history-candles"),
        "market/trades": trades_recent,
        "market/history-trades": trades_history,
    }
    for endpoint, fn in {**routes, **(extra or {})}.items():
        app.router.add_get(f"/api/v5/{endpoint}", guarded(endpoint, fn))
