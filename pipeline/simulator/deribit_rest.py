"""Deribit v2 payloads and public JSON-RPC methods of the simulator (shared by REST and WebSocket).

Every builder returns the exact key set, and JSON value types, of what www.deribit.com sends (checked in
``tests/simulator/test_deribit_shapes.py`` against ``$CRYPTOLAKE_REALDATA/deribit``). Prices, amounts and
Greeks are JSON floats (``869.0``, as in the cryptofeed 2021 capture), timestamps and sequence numbers ints,
``trade_id`` a string. ``dispatch(method, params)`` answers a public method with its ``result`` or raises
``RpcError``; REST (``GET /api/v2/public/<method>``) and WS (``{"method": "public/..."}``) both go through it,
as on the real venue where every public method works over both transports.
"""

from __future__ import annotations

import datetime as dt
import math
import time
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from pipeline.simulator.context import maybe_fail_rest

if TYPE_CHECKING:  # pragma: no cover
    from pipeline.simulator.context import SimContext
    from pipeline.simulator.market import Market, SimInstrument, SimQuote, SimTrade

VENUE = "deribit"
API_VERSION = "1.2.26"
PERPETUAL_EXPIRY_MS = 32503708800000  # what Deribit puts in expiration_timestamp of a perpetual (year 3000)
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


# -- instrument helpers --------------------------------------------------------------------------------------
def is_option(inst: SimInstrument) -> bool:
    return inst.market == "option"


def currency_of(inst: SimInstrument) -> str:
    return str(inst.base).upper()


def underlying_index(inst: SimInstrument) -> str:
    """Options quote their own expiry's future, e.g. ``"ETH-30JUL21"`` for ETH-30JUL21-2800-C, or a synthetic
    one (``"SYN.ETH-3AUG21"``) where no future of that expiry is listed."""
    if not is_option(inst):
        return "index_price"
    if inst.underlying:
        return str(inst.underlying)
    parts = inst.inst_id.split("-")
    return f"{parts[0]}-{parts[1]}"


def contracts_of(inst: SimInstrument, amount: float) -> float:
    """Deribit ``contracts`` = ``amount`` / contract size (USD 10 per BTC-PERPETUAL contract, 1 for options)."""
    size = float(inst.contract_value or 1.0)
    return float(round(amount / size, 8)) if size > 0 else float(amount)


def trade_id_str(inst: SimInstrument, trade_id: int) -> str:
    """Deribit trade ids are strings: plain digits for BTC (``"440192723"``), currency-prefixed otherwise
    (``"ETH-311974188"``)."""
    cur = currency_of(inst)
    return str(trade_id) if cur == "BTC" else f"{cur}-{trade_id}"


def settlement_period(inst: SimInstrument) -> str:
    """``perpetual`` | ``month`` (last Friday of a month) | ``week`` (other Fridays) | ``day``."""
    if inst.market != "option" or not inst.expiry_ms:
        return "perpetual"
    d = dt.datetime.fromtimestamp(inst.expiry_ms / 1000, tz=dt.UTC)
    if d.weekday() != 4:
        return "day"
    return "month" if (d + dt.timedelta(days=7)).month != d.month else "week"


def _f(x: Any) -> float:
    """A Deribit JSON number for prices/amounts: always a float (``4714.0``), never NaN."""
    v = float(x) if x is not None else 0.0
    return v if math.isfinite(v) else 0.0


def instrument_payload(inst: SimInstrument, instrument_id: int) -> dict[str, Any]:
    """One ``public/get_instruments`` row. Real example (2022, the newest shape in the captures)::

    {"tick_size":0.001,"taker_commission":0.0003,"strike":28.0,"settlement_period":"week",
     "settlement_currency":"SOL","rfq":false,"quote_currency":"SOL","price_index":"sol_usd",
     "option_type":"put","min_trade_amount":1,"maker_commission":0.0,"kind":"option","is_active":true,
     "instrument_name":"SOL-10JUN22-28-P","instrument_id":218538,"expiration_timestamp":1654848000000,
     "creation_timestamp":1653638460000,"counter_currency":"USD","contract_size":1.0,
     "block_trade_commission":0.0003,"base_currency":"SOL"}
    """
    cur = currency_of(inst)
    if is_option(inst):
        # inverse options: premium quoted and settled in the coin, strike in USD
        return {
            "tick_size": _f(inst.tick_size),
            "taker_commission": 0.0003,
            "strike": _f(inst.strike),
            "settlement_period": settlement_period(inst),
            "settlement_currency": cur,
            "rfq": False,
            "quote_currency": cur,
            "price_index": f"{cur.lower()}_usd",
            "option_type": inst.option_type,
            "min_trade_amount": _f(inst.min_size),
            "maker_commission": 0.0003,
            "kind": "option",
            "is_active": True,
            "instrument_name": inst.inst_id,
            "instrument_id": instrument_id,
            "expiration_timestamp": int(inst.expiry_ms),
            "creation_timestamp": int(inst.listing_ms),
            "counter_currency": "USD",
            "contract_size": _f(inst.contract_value or 1.0),
            "block_trade_commission": 0.0003,
            "base_currency": cur,
        }
    return {
        "tick_size": _f(inst.tick_size),
        "taker_commission": 0.0005,
        "settlement_period": "perpetual",
        "settlement_currency": cur,
        "rfq": False,
        "quote_currency": "USD",
        "price_index": f"{cur.lower()}_usd",
        "min_trade_amount": _f(inst.min_size),
        "max_liquidation_commission": 0.009,
        "max_leverage": 50,
        "maker_commission": 0.0,
        "kind": "future",
        "is_active": True,
        "instrument_name": inst.inst_id,
        "instrument_id": instrument_id,
        "future_type": "reversed",
        "expiration_timestamp": PERPETUAL_EXPIRY_MS,
        "creation_timestamp": int(inst.listing_ms),
        "counter_currency": "USD",
        "contract_size": _f(inst.contract_value or 1.0),
        "block_trade_commission": 0.0001,
        "base_currency": cur,
    }


# -- market data payloads ------------------------------------------------------------------------------------
def trade_payload(inst: SimInstrument, t: SimTrade) -> dict[str, Any]:
    """One item of ``trades.{inst}.100ms`` data (a list) and of REST trade lists. Real (2026, BTC-PERPETUAL)::

        {"timestamp":1786563104514,"price":63344.5,"direction":"buy","index_price":63325.19,
         "trade_id":"440192723","instrument_name":"BTC-PERPETUAL","trade_seq":296152987,"amount":20,
         "mark_price":63341.87,"tick_direction":1,"starbase_match_id":"213378943477100544","contracts":2,
         "starbase_timestamp":1786563104514208300}

    Options add ``iv`` (percent, e.g. ``63.49``).
    """
    d: dict[str, Any] = {
        "timestamp": int(t.ts_ms),
        "price": _f(t.price),
        "direction": t.side,
        "index_price": _f(t.index_price),
        "trade_id": trade_id_str(inst, t.trade_id),
        "instrument_name": t.inst_id,
        "trade_seq": int(t.seq),
        "amount": _f(t.size),
        "mark_price": _f(t.mark_price),
        "tick_direction": int(t.tick_direction),
        # matching-engine ids of the 2026 engine; deterministic per trade so duplicates are byte-identical
        "starbase_match_id": str(213378943477100544 + int(t.trade_id)),
        "contracts": contracts_of(inst, float(t.size)),
        "starbase_timestamp": int(t.ts_ms) * 1_000_000 + (int(t.trade_id) * 7919) % 1_000_000,
    }
    if is_option(inst):
        d["iv"] = _f(t.iv)
    return d


def _stats(q: SimQuote) -> dict[str, float]:
    last, open_ = _f(q.last), _f(q.open_24h)
    change = round((last - open_) / open_ * 100, 4) if open_ else 0.0
    return {"volume": _f(q.vol_24h), "price_change": float(change), "low": _f(q.low_24h), "high": _f(q.high_24h)}


def _best(levels: Any) -> tuple[float, float]:
    return (_f(levels[0][0]), _f(levels[0][1])) if levels else (0.0, 0.0)


def _price_band(inst: SimInstrument, mark: float) -> tuple[float, float]:
    """``min_price``/``max_price``: the venue's order price band around the mark, on the tick grid."""
    tick = float(inst.tick_size) or 0.0001
    if is_option(inst):
        lo, hi = tick, max(tick, mark * 5 + tick * 10)
    else:
        lo, hi = mark * 0.985, mark * 1.015
    return float(round(math.floor(lo / tick) * tick, 10)), float(round(math.ceil(hi / tick) * tick, 10))


def _funding(q: SimQuote) -> tuple[float, float, float]:
    """(current_funding, funding_8h, interest_value) from the mark/index premium, clamped like Deribit's."""
    idx = _f(q.index_price)
    premium = (_f(q.mark_price) - idx) / idx if idx else 0.0
    current = max(-0.0005, min(0.0005, premium))
    return float(round(current, 8)), float(round(current * 4.8, 8)), float(abs(current) * 2708.0)


def ticker_payload(inst: SimInstrument, q: SimQuote) -> dict[str, Any]:
    """``ticker.{inst}.100ms`` data and the ``public/ticker`` result.

    Option (real, cryptofeed 2021)::

        {"underlying_price":2003.61,"underlying_index":"ETH-30JUL21","timestamp":1626993723632,
         "stats":{"volume":869.0,"price_change":0.0,"low":0.0015,"high":0.0025},"state":"open",
         "settlement_price":0.0,"open_interest":12685.0,"min_price":0.0001,"max_price":0.025,
         "mark_price":0.001972,"mark_iv":120.74,"last_price":0.002,"interest_rate":0.0,
         "instrument_name":"ETH-30JUL21-2800-C","index_price":2006.72,"greeks":{"vega":0.20072,
         "theta":-1.64029,"rho":0.01188,"gamma":0.0002,"delta":0.03127},"estimated_delivery_price":2006.72,
         "bid_iv":115.62,"best_bid_price":0.0015,"best_bid_amount":4714.0,"best_ask_price":0.0025,
         "best_ask_amount":873.0,"ask_iv":125.63}

    Perpetual (real, 2026)::

        {"timestamp":1786563120494,"state":"open","stats":{"high":64422,"low":63261,"price_change":-0.0095,
         "volume":2778.68467406,"volume_usd":177187410,"volume_notional":177187410},"index_price":63329.18,
         "instrument_name":"BTC-PERPETUAL","last_price":63344,"settlement_price":63799.96,"min_price":62396,
         "max_price":64297,"open_interest":716004750,"mark_price":63346.33,"interest_value":0.0563626,
         "current_funding":2.081e-05,"estimated_delivery_price":63329.18,"funding_8h":0.00010036,
         "best_ask_price":63344.5,"best_bid_price":63344,"best_ask_amount":9980,"best_bid_amount":58060}
    """
    bid_px, bid_sz = _best(q.bids)
    ask_px, ask_sz = _best(q.asks)
    mark = _f(q.mark_price)
    min_price, max_price = _price_band(inst, mark)
    stats = _stats(q)
    if is_option(inst):
        g = q.greeks or {}
        return {
            "underlying_price": round(_f(q.underlying_price), 4),
            "underlying_index": underlying_index(inst),
            "timestamp": int(q.ts_ms),
            "stats": stats,
            "state": "open",
            # options settle once, at expiry: until then the previous settlement is 0.0 like the capture
            "settlement_price": 0.0,
            "open_interest": _f(q.open_interest),
            "min_price": min_price,
            "max_price": max_price,
            "mark_price": mark,
            "mark_iv": _f(q.mark_iv),
            "last_price": _f(q.last),
            "interest_rate": 0.0,
            "instrument_name": q.inst_id,
            "index_price": _f(q.index_price),
            "greeks": {k: _f(g.get(k)) for k in ("vega", "theta", "rho", "gamma", "delta")},
            "estimated_delivery_price": _f(q.index_price),
            "bid_iv": _f(q.bid_iv),
            "best_bid_price": bid_px,
            "best_bid_amount": bid_sz,
            "best_ask_price": ask_px,
            "best_ask_amount": ask_sz,
            "ask_iv": _f(q.ask_iv),
        }
    current, f8h, interest_value = _funding(q)
    # perpetual amounts are USD: the market's vol_24h is USD, vol_ccy_24h the coin volume Deribit calls "volume"
    vol_usd = _f(q.vol_24h)
    return {
        "timestamp": int(q.ts_ms),
        "state": "open",
        "stats": {
            "high": stats["high"],
            "low": stats["low"],
            "price_change": stats["price_change"],
            "volume": _f(q.vol_ccy_24h),
            "volume_usd": vol_usd,
            "volume_notional": vol_usd,
        },
        "index_price": _f(q.index_price),
        "instrument_name": q.inst_id,
        "last_price": _f(q.last),
        "settlement_price": _f(q.open_24h),
        "min_price": min_price,
        "max_price": max_price,
        "open_interest": _f(q.open_interest),
        "mark_price": mark,
        "interest_value": interest_value,
        "current_funding": current,
        "estimated_delivery_price": _f(q.index_price),
        "funding_8h": f8h,
        "best_ask_price": ask_px,
        "best_bid_price": bid_px,
        "best_ask_amount": ask_sz,
        "best_bid_amount": bid_sz,
    }


def quote_payload(q: SimQuote) -> dict[str, Any]:
    """``quote.{inst}`` data. Deribit's documented example (no capture in the recordings)::

    {"timestamp":1550658624149,"instrument_name":"BTC-PERPETUAL","best_bid_price":3914.97,
     "best_bid_amount":40.0,"best_ask_price":3996.61,"best_ask_amount":50.0}
    """
    bid_px, bid_sz = _best(q.bids)
    ask_px, ask_sz = _best(q.asks)
    return {
        "timestamp": int(q.ts_ms),
        "instrument_name": q.inst_id,
        "best_bid_price": bid_px,
        "best_bid_amount": bid_sz,
        "best_ask_price": ask_px,
        "best_ask_amount": ask_sz,
    }


def order_book_payload(inst: SimInstrument, q: SimQuote, change_id: int, depth: int) -> dict[str, Any]:
    """``public/get_order_book`` result: the ticker fields plus ``change_id`` and ``[price, amount]`` levels.
    Deribit's documented example (abridged)::

        {"timestamp":1550757626706,"stats":{...},"state":"open","settlement_price":3925.85,
         "open_interest":45.27,"min_price":3932.22,"max_price":3971.74,"mark_price":3931.97,
         "last_price":3955.75,"instrument_name":"BTC-PERPETUAL","index_price":3910.46,"funding_8h":0.00455263,
         "current_funding":0.00500063,"change_id":474988,"bids":[[3955.75,30.0]],"asks":[[3940.75,102020.0]],
         "best_bid_price":3955.75,"best_bid_amount":30.0,"best_ask_price":3940.75,"best_ask_amount":102020.0}
    """
    d = ticker_payload(inst, q)
    d["change_id"] = int(change_id)
    d["bids"] = [[_f(px), _f(sz)] for px, sz in list(q.bids)[:depth]]
    d["asks"] = [[_f(px), _f(sz)] for px, sz in list(q.asks)[:depth]]
    return d


def book_summary_payload(inst: SimInstrument, q: SimQuote) -> dict[str, Any]:
    """One ``public/get_book_summary_by_currency`` row. Option, as in Deribit's API docs (values from the
    cryptofeed ticker above; no capture of this method exists in the recordings)::

        {"volume":0.0,"underlying_price":2003.61,"underlying_index":"ETH-30JUL21","quote_currency":"ETH",
         "price_change":null,"open_interest":12685.0,"mid_price":0.002,"mark_price":0.001972,"low":null,
         "last":0.002,"interest_rate":0.0,"instrument_name":"ETH-30JUL21-2800-C","high":null,
         "estimated_delivery_price":2006.72,"creation_timestamp":1626993723632,"bid_price":0.0015,
         "base_currency":"ETH","ask_price":0.0025,"mark_iv":120.74,"volume_usd":0.0}
    """
    bid_px, _ = _best(q.bids)
    ask_px, _ = _best(q.asks)
    stats = _stats(q)
    cur = currency_of(inst)
    perp_volume = _f(q.vol_ccy_24h) if not is_option(inst) else stats["volume"]
    d: dict[str, Any] = {
        "volume": perp_volume,
        "quote_currency": cur if is_option(inst) else "USD",
        "price_change": stats["price_change"],
        "open_interest": _f(q.open_interest),
        "mid_price": float((bid_px + ask_px) / 2) if bid_px and ask_px else None,
        "mark_price": _f(q.mark_price),
        "low": stats["low"],
        "last": _f(q.last),
        "instrument_name": q.inst_id,
        "high": stats["high"],
        "estimated_delivery_price": _f(q.index_price),
        "creation_timestamp": int(q.ts_ms),
        "bid_price": bid_px or None,
        "base_currency": cur,
        "ask_price": ask_px or None,
        "volume_usd": _f(q.vol_24h) if not is_option(inst) else 0.0,
    }
    if is_option(inst):
        d.update(
            {
                "underlying_price": round(_f(q.underlying_price), 4),
                "underlying_index": underlying_index(inst),
                "interest_rate": 0.0,
                "mark_iv": _f(q.mark_iv),
            }
        )
    else:
        current, f8h, _ = _funding(q)
        d.update({"volume_notional": _f(q.vol_24h), "funding_8h": f8h, "current_funding": current})
    return d


def currency_payload(cur: str) -> dict[str, Any]:
    """One ``public/get_currencies`` row (the shape ccxt documents; ccxt reads currency, currency_long and
    withdrawal_fee)."""
    long_name = {"BTC": "Bitcoin", "ETH": "Ethereum"}.get(cur, cur)
    fee = {"BTC": 0.0001, "ETH": 0.0006}.get(cur, 0.001)
    return {
        "withdrawal_priorities": [],
        "withdrawal_fee": fee,
        "min_withdrawal_fee": fee,
        "min_confirmations": 1,
        "fee_precision": 4,
        "currency_long": long_name,
        "currency": cur,
        "coin_type": long_name.upper(),
        "apr": 0.0,
    }


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
    """Public Deribit methods over the simulated market. Book ``change_id``s come from ``change_id_of``
    (the WS hub's chain) so REST snapshots and WS ``book`` changes agree."""

    def __init__(
        self,
        market: Market,
        change_id_of: Callable[[str], int] | None = None,
        quote_of: Callable[[str], SimQuote] | None = None,
    ) -> None:
        self.market = market
        # the hub hands out the quote it last published, so REST and WS show the same book and ticker
        self.quote_of: Callable[[str], SimQuote] = quote_of or (lambda name: market.quote(VENUE, name))
        self.instruments: dict[str, SimInstrument] = {i.inst_id: i for i in market.instruments(VENUE)}
        # stable instrument_id per name (Deribit's are 6-digit ints)
        self.instrument_ids = {name: 200_000 + (zlib.crc32(name.encode()) % 100_000) for name in self.instruments}
        self.change_id_of = change_id_of or (lambda name: 1)
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
        q = self.quote_of(inst.inst_id)
        return order_book_payload(inst, q, self.change_id_of(inst.inst_id), depth)

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
        return {"index_price": _f(q.index_price), "estimated_delivery_price": _f(q.index_price)}

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
            out["open"].append(_f(o))
            out["high"].append(_f(h))
            out["low"].append(_f(lo))
            out["close"].append(_f(c))
            out["volume"].append(_f(vol_coin))
            out["cost"].append(_f(vol_usd))
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
