"""Deribit v2 public JSON-RPC methods of the simulator, for both transports, and the REST route.

``DeribitApi.dispatch(method, params)`` answers a public method with its ``result`` or raises ``RpcError``;
REST (``GET /api/v2/public/<method>``, ``add_rest_routes``) and WebSocket (``{"method": "public/..."}``, in
``deribit``) both go through it, as on the real venue where every public method works over both transports.
The JSON-RPC envelopes are here too; the payloads are built in ``deribit_frames``.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from pipeline.simulator import deribit_derivatives
from pipeline.simulator.context import maybe_fail_rest
from pipeline.simulator.deribit_frames import (
    book_summary_payload,
    currency_of,
    currency_payload,
    instrument_payload,
    is_option,
    json_float,
    order_book_payload,
    ticker_payload,
    trade_payload,
)

if TYPE_CHECKING:  # pragma: no cover
    from pipeline.simulator.context import SimContext
    from pipeline.simulator.market import Market
    from pipeline.simulator.records import SimInstrument, SimQuote

VENUE = "deribit"
API_VERSION = "1.2.26"
CURRENCIES = ("BTC", "ETH")
KINDS = ("future", "option", "spot", "future_combo", "option_combo")
MAX_TRADES_COUNT = 1000  # Deribit: count default 10, maximum 1000

# REST limits (requests, per seconds) in RestLimiter terms. Deribit meters public calls in "credits"
# (500 per call, 50,000 burst, 10,000/s refill = 100 burst, 20/s sustained), one pool for all methods;
# public/get_instruments has its own, much tighter limit (about 1 request/s).
RATE_LIMITS: dict[str, tuple[float, float]] = {
    "deribit:credits": (100.0, 5.0),
    "deribit:public/get_instruments": (5.0, 5.0),
}

# Deribit resolution -> bar length in ms (public/get_tradingview_chart_data)
RESOLUTIONS_MS: dict[str, int] = {
    **{str(m): m * 60_000 for m in (1, 3, 5, 10, 15, 30, 60, 120, 180, 360, 720)},
    "1D": 86_400_000,
}


class RpcError(Exception):
    """A JSON-RPC error the venue answers with; ``http_status`` is what REST returns with it."""

    def __init__(self, code: int, message: str, data: dict[str, Any] | None = None, http_status: int = 400):
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message
        self.data = data
        self.http_status = http_status

    def error_body(self) -> dict[str, Any]:
        """``{"message": ..., "code": ..., "data"?: ...}`` in Deribit's key order."""
        err: dict[str, Any] = {"message": self.message}
        if self.data is not None:
            err["data"] = self.data
        err["code"] = self.code
        return err


def invalid_params(param: str, reason: str = "wrong format") -> RpcError:
    """Deribit's -32602, e.g. ``{"message":"Invalid params","data":{"reason":"wrong format","param":"count"},
    "code":-32602}``."""
    return RpcError(-32602, "Invalid params", {"reason": reason, "param": param})


def now_us() -> int:
    return time.time_ns() // 1_000


def envelope(result: Any, us_in: int, req_id: Any = None) -> dict[str, Any]:
    """The JSON-RPC success envelope, e.g. ``{"jsonrpc":"2.0","id":0,"result":[...],"usIn":1626993723846980,
    "usOut":1626993723847561,"usDiff":581,"testnet":false}`` (REST answers carry no ``id``)."""
    us_out = now_us()
    body: dict[str, Any] = {"jsonrpc": "2.0"}
    if req_id is not None:
        body["id"] = req_id
    body.update({"result": result, "usIn": us_in, "usOut": us_out, "usDiff": us_out - us_in, "testnet": False})
    return body


def error_envelope(err: RpcError, us_in: int, req_id: Any = None) -> dict[str, Any]:
    """E.g. ``{"jsonrpc":"2.0","id":1,"error":{"message":"raw_subscriptions_not_available_for_unauthorized",
    "code":13778},"usIn":..,"usOut":..,"usDiff":..,"testnet":false}``."""
    us_out = now_us()
    body: dict[str, Any] = {"jsonrpc": "2.0"}
    if req_id is not None:
        body["id"] = req_id
    body.update({"error": err.error_body(), "usIn": us_in, "usOut": us_out, "usDiff": us_out - us_in, "testnet": False})
    return body


# -- parameter parsing ----------------------------------------------------------------------------------------
def _int_param(params: dict[str, Any], name: str, default: int | None = None) -> int | None:
    v = params.get(name)
    if v is None or v == "":
        return default
    try:
        return int(v)
    except (TypeError, ValueError):
        raise invalid_params(name) from None


def _bool_param(params: dict[str, Any], name: str, default: bool = False) -> bool:
    v = params.get(name)
    if v is None:
        return default
    if isinstance(v, bool):
        return v
    if str(v).lower() in ("true", "1"):
        return True
    if str(v).lower() in ("false", "0"):
        return False
    raise invalid_params(name)


def _str_param(params: dict[str, Any], name: str, required: bool = True) -> str | None:
    v = params.get(name)
    if v is None or v == "":
        if required:
            raise invalid_params(name, "missing")
        return None
    return str(v)


# -- the methods ----------------------------------------------------------------------------------------------
class DeribitApi:
    """Public Deribit methods over the simulated market. ``get_order_book`` takes its levels and ``change_id``
    from ``book_of`` (the true book the WS ``book`` channels follow), so REST and WS agree."""

    def __init__(
        self,
        market: Market,
        book_of: Callable[[str, int], dict[str, Any]] | None = None,
        quote_of: Callable[[str], SimQuote] | None = None,
    ) -> None:
        self.market = market
        # the hub hands out the quote it last published, so REST and WS show the same book and ticker
        self.quote_of: Callable[[str], SimQuote] = quote_of or (lambda name: market.quote(VENUE, name))
        self.instruments: dict[str, SimInstrument] = {i.inst_id: i for i in market.instruments(VENUE)}
        # stable instrument_id per name (Deribit's are 6-digit ints)
        self.instrument_ids = {name: 200_000 + (zlib.crc32(name.encode()) % 100_000) for name in self.instruments}
        self.book_of = book_of
        self.methods: dict[str, Callable[[dict[str, Any]], Any]] = {
            "public/test": lambda p: {"version": API_VERSION},
            "public/hello": lambda p: {"version": API_VERSION},
            "public/get_time": lambda p: int(time.time() * 1000),
            "public/get_currencies": lambda p: [currency_payload(c) for c in CURRENCIES],
            "public/get_instruments": self.get_instruments,
            "public/ticker": self.ticker,
            "public/get_order_book": self.get_order_book,
            "public/get_book_summary_by_currency": self.get_book_summary_by_currency,
            "public/get_book_summary_by_instrument": self.get_book_summary_by_instrument,
            "public/get_tradingview_chart_data": self.get_tradingview_chart_data,
            "public/get_last_trades_by_instrument": self.get_last_trades_by_instrument,
            "public/get_last_trades_by_instrument_and_time": self.get_last_trades_by_instrument_and_time,
            "public/get_index_price": self.get_index_price,
            "public/get_funding_rate_history": self.get_funding_rate_history,
            "public/get_funding_rate_value": self.get_funding_rate_value,
        }

    def dispatch(self, method: str, params: dict[str, Any]) -> Any:
        fn = self.methods.get(method)
        if fn is None:
            raise RpcError(-32601, "Method not found", http_status=400)
        return fn(params)

    def instrument(self, params: dict[str, Any]) -> SimInstrument:
        name = _str_param(params, "instrument_name")
        inst = self.instruments.get(name or "")
        if inst is None:
            raise invalid_params("instrument_name", "instrument not found")
        return inst

    def _currency(self, params: dict[str, Any], required: bool) -> str | None:
        cur = _str_param(params, "currency", required=required)
        if cur is None or cur == "any":
            return None
        if cur not in CURRENCIES and cur not in ("USDC", "USDT", "EURR"):
            raise invalid_params("currency")
        return cur

    def _kind(self, params: dict[str, Any]) -> str | None:
        kind = _str_param(params, "kind", required=False)
        if kind is not None and kind not in KINDS and kind != "any":
            raise invalid_params("kind")
        return None if kind == "any" else kind

    @staticmethod
    def _kind_of(inst: SimInstrument) -> str:
        return "option" if is_option(inst) else "future"

    def get_instruments(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        cur, kind = self._currency(params, required=False), self._kind(params)
        if _bool_param(params, "expired"):
            return []  # the simulator lists no expired instruments
        return [
            instrument_payload(i, self.instrument_ids[i.inst_id])
            for i in self.instruments.values()
            if (cur is None or currency_of(i) == cur) and (kind is None or self._kind_of(i) == kind)
        ]

    def ticker(self, params: dict[str, Any]) -> dict[str, Any]:
        inst = self.instrument(params)
        return ticker_payload(inst, self.quote_of(inst.inst_id))

    def get_order_book(self, params: dict[str, Any]) -> dict[str, Any]:
        inst = self.instrument(params)
        depth = _int_param(params, "depth", 20) or 20
        if not 1 <= depth <= 10_000:
            raise invalid_params("depth")
        if self.book_of is None:
            raise RpcError(11094, "internal_server_error", http_status=500)  # no book behind this API
        return order_book_payload(inst, self.quote_of(inst.inst_id), self.book_of(inst.inst_id, depth))

    def get_book_summary_by_currency(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        cur, kind = self._currency(params, required=True), self._kind(params)
        return [
            book_summary_payload(i, self.quote_of(i.inst_id))
            for i in self.instruments.values()
            if (cur is None or currency_of(i) == cur) and (kind is None or self._kind_of(i) == kind)
        ]

    def get_book_summary_by_instrument(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        inst = self.instrument(params)
        return [book_summary_payload(inst, self.quote_of(inst.inst_id))]

    def get_index_price(self, params: dict[str, Any]) -> dict[str, Any]:
        name = _str_param(params, "index_name") or ""
        perp = self.instruments.get(f"{name.split('_')[0].upper()}-PERPETUAL")
        if perp is None:
            raise invalid_params("index_name")
        q = self.quote_of(perp.inst_id)
        return {"index_price": json_float(q.index_price), "estimated_delivery_price": json_float(q.index_price)}

    def _funding_window(self, params: dict[str, Any]) -> tuple[str, int, int]:
        inst = self.instrument(params)
        if inst.market != "swap":
            raise invalid_params("instrument_name", "not a perpetual")
        start, end = _int_param(params, "start_timestamp"), _int_param(params, "end_timestamp")
        if start is None:
            raise invalid_params("start_timestamp", "missing")
        if end is None:
            raise invalid_params("end_timestamp", "missing")
        return inst.inst_id, start, end

    def get_funding_rate_history(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        return deribit_derivatives.funding_history(self.market.derivatives, *self._funding_window(params))

    def get_funding_rate_value(self, params: dict[str, Any]) -> float:
        return deribit_derivatives.funding_value(self.market.derivatives, *self._funding_window(params))

    def get_tradingview_chart_data(self, params: dict[str, Any]) -> dict[str, Any]:
        """``{"volume":[..],"ticks":[..],"status":"ok","open":[..],"low":[..],"high":[..],"cost":[..],
        "close":[..]}``; ``status`` is ``"no_data"`` for an empty window. The bars from the one containing
        ``start_timestamp`` to ``end_timestamp``, oldest first, the last one possibly still open."""
        inst = self.instrument(params)
        res = _str_param(params, "resolution")
        bar_ms = RESOLUTIONS_MS.get(res or "")
        if bar_ms is None:
            raise invalid_params("resolution")
        start = _int_param(params, "start_timestamp")
        end = _int_param(params, "end_timestamp")
        if start is None:
            raise invalid_params("start_timestamp", "missing")
        if end is None:
            raise invalid_params("end_timestamp", "missing")
        # the bar containing start_timestamp is included (ccxt asks for now - (limit-1) bars and expects
        # limit of them); at most 5000 bars per call (ccxt paginates at 5000)
        start = max(start - start % bar_ms, end - end % bar_ms - 4999 * bar_ms)
        rows = self.market.candles(VENUE, inst.inst_id, bar_ms, start, end) if end >= start else []
        rows = sorted((r for r in rows if start <= r[0] <= end), key=lambda r: r[0])
        out: dict[str, Any] = {
            "volume": [],
            "ticks": [],
            "status": "ok" if rows else "no_data",
            "open": [],
            "low": [],
            "high": [],
            "cost": [],
            "close": [],
        }
        # market rows: vol = USD amount, vol_ccy = coin; Deribit's "volume" is the coin, "cost" the USD
        for ts, o, h, lo, c, vol_usd, vol_coin, *_ in rows:
            out["ticks"].append(int(ts))
            out["open"].append(json_float(o))
            out["high"].append(json_float(h))
            out["low"].append(json_float(lo))
            out["close"].append(json_float(c))
            out["volume"].append(json_float(vol_coin))
            out["cost"].append(json_float(vol_usd))
        return out

    def _trades(
        self, inst: SimInstrument, params: dict[str, Any], start: int | None, end: int | None
    ) -> dict[str, Any]:
        """Deribit trade selection: filter by seq/time range, ``sorting`` asc takes the OLDEST ``count``
        of the range, desc/default the NEWEST (``get_last_trades``: the latest trades); ``has_more`` says the
        range holds more than ``count`` -- page on with ``start_seq``/``end_seq`` or the timestamps."""
        count = _int_param(params, "count", 10) or 10
        if not 1 <= count <= MAX_TRADES_COUNT:
            raise invalid_params("count")
        sorting = _str_param(params, "sorting", required=False) or "default"
        if sorting not in ("asc", "desc", "default"):
            raise invalid_params("sorting")
        start_seq = _int_param(params, "start_seq")
        end_seq = _int_param(params, "end_seq")
        newest_first = sorting != "asc"
        seq_filter = start_seq is not None or end_seq is not None
        # without a seq filter ask the market for exactly count+1 (the +1 tells has_more)
        limit = 1_000_000 if seq_filter else count + 1
        rows = self.market.trades(
            VENUE, inst.inst_id, start_ms=start, end_ms=end, limit=limit, newest_first=newest_first
        )
        if seq_filter:
            rows = [
                t for t in rows if (start_seq is None or t.seq >= start_seq) and (end_seq is None or t.seq <= end_seq)
            ]
        rows.sort(key=lambda t: t.seq, reverse=newest_first)
        return {"trades": [trade_payload(inst, t) for t in rows[:count]], "has_more": len(rows) > count}

    def get_last_trades_by_instrument(self, params: dict[str, Any]) -> dict[str, Any]:
        inst = self.instrument(params)
        _bool_param(params, "include_old")  # validated; the simulator's history is all "recent"
        return self._trades(inst, params, _int_param(params, "start_timestamp"), _int_param(params, "end_timestamp"))

    def get_last_trades_by_instrument_and_time(self, params: dict[str, Any]) -> dict[str, Any]:
        inst = self.instrument(params)
        _bool_param(params, "include_old")
        start = _int_param(params, "start_timestamp", 0)
        end = _int_param(params, "end_timestamp", int(time.time() * 1000))
        return self._trades(inst, params, start, end)


# -- HTTP ---------------------------------------------------------------------------------------------------
def json_response(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def add_rest_routes(app: web.Application, ctx: SimContext, api: DeribitApi) -> None:
    """``GET /api/v2/public/<method>?<params>`` with the venue's rate limits and REST faults."""
    ctx.rest_limiter.set_limits(RATE_LIMITS)

    async def handle(request: web.Request) -> web.Response:
        us_in = now_us()
        method = "public/" + request.match_info["method"]
        endpoint = method if method == "public/get_instruments" else "credits"
        failed = maybe_fail_rest(ctx, VENUE, endpoint, request)
        if failed is not None:
            return failed
        ctx.counters.inc(f"rest.{VENUE}.{method}")
        try:
            result = api.dispatch(method, dict(request.query))
        except RpcError as err:
            return json_response(error_envelope(err, us_in), status=err.http_status)
        return json_response(envelope(result, us_in))

    app.router.add_get("/api/v2/public/{method}", handle)
