"""Deribit v2 payload builders of the simulator: the exact key sets and JSON value types of www.deribit.com.

Checked in ``tests/simulator/test_deribit_shapes.py`` against the recordings (``$CRYPTOLAKE_REALDATA/deribit``,
by default ../shared/realdata). Prices, amounts and Greeks are JSON floats (``869.0``, as in the cryptofeed
2021 capture), timestamps and sequence numbers ints, ``trade_id`` a string. The same builders serve REST and
WebSocket answers (``deribit_api``) and the WebSocket pushes (``deribit``).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from pipeline.simulator.records import SimInstrument, SimQuote, SimTrade

PERPETUAL_EXPIRY_MS = 32503708800000  # what Deribit puts in expiration_timestamp of a perpetual (year 3000)


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


def json_float(x: Any) -> float:
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
            "tick_size": json_float(inst.tick_size),
            "taker_commission": 0.0003,
            "strike": json_float(inst.strike),
            "settlement_period": settlement_period(inst),
            "settlement_currency": cur,
            "rfq": False,
            "quote_currency": cur,
            "price_index": f"{cur.lower()}_usd",
            "option_type": inst.option_type,
            "min_trade_amount": json_float(inst.min_size),
            "maker_commission": 0.0003,
            "kind": "option",
            "is_active": True,
            "instrument_name": inst.inst_id,
            "instrument_id": instrument_id,
            "expiration_timestamp": int(inst.expiry_ms or 0),  # an option always has one
            "creation_timestamp": int(inst.listing_ms),
            "counter_currency": "USD",
            "contract_size": json_float(inst.contract_value or 1.0),
            "block_trade_commission": 0.0003,
            "base_currency": cur,
        }
    return {
        "tick_size": json_float(inst.tick_size),
        "taker_commission": 0.0005,
        "settlement_period": "perpetual",
        "settlement_currency": cur,
        "rfq": False,
        "quote_currency": "USD",
        "price_index": f"{cur.lower()}_usd",
        "min_trade_amount": json_float(inst.min_size),
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
        "contract_size": json_float(inst.contract_value or 1.0),
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
        "price": json_float(t.price),
        "direction": t.side,
        "index_price": json_float(t.index_price),
        "trade_id": trade_id_str(inst, t.trade_id),
        "instrument_name": t.inst_id,
        "trade_seq": int(t.seq),
        "amount": json_float(t.size),
        "mark_price": json_float(t.mark_price),
        "tick_direction": int(t.tick_direction),
        # matching-engine ids of the 2026 engine; deterministic per trade so duplicates are byte-identical
        "starbase_match_id": str(213378943477100544 + int(t.trade_id)),
        "contracts": contracts_of(inst, float(t.size)),
        "starbase_timestamp": int(t.ts_ms) * 1_000_000 + (int(t.trade_id) * 7919) % 1_000_000,
    }
    if is_option(inst):
        d["iv"] = json_float(t.iv)
    return d


def _stats(q: SimQuote) -> dict[str, float]:
    last, open_ = json_float(q.last), json_float(q.open_24h)
    change = round((last - open_) / open_ * 100, 4) if open_ else 0.0
    return {
        "volume": json_float(q.vol_24h),
        "price_change": float(change),
        "low": json_float(q.low_24h),
        "high": json_float(q.high_24h),
    }


def _best(levels: Any) -> tuple[float, float]:
    return (json_float(levels[0][0]), json_float(levels[0][1])) if levels else (0.0, 0.0)


def _price_band(inst: SimInstrument, mark: float) -> tuple[float, float]:
    """``min_price``/``max_price``: the venue's order price band around the mark, on the tick grid."""
    tick = float(inst.tick_size) or 0.0001
    if is_option(inst):
        lo, hi = tick, max(tick, mark * 5 + tick * 10)
    else:
        lo, hi = mark * 0.985, mark * 1.015
    return float(round(math.floor(lo / tick) * tick, 10)), float(round(math.ceil(hi / tick) * tick, 10))


def _funding(q: SimQuote) -> tuple[float, float, float]:
    """(current_funding, funding_8h, interest_value) of the market's funding engine (``derivatives``)."""
    current = q.current_funding or 0.0
    return float(round(current, 8)), float(round(q.funding_8h or 0.0, 8)), float(abs(current) * 2708.0)


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
    mark = json_float(q.mark_price)
    min_price, max_price = _price_band(inst, mark)
    stats = _stats(q)
    if is_option(inst):
        g = q.greeks or {}
        return {
            "underlying_price": round(json_float(q.underlying_price), 4),
            "underlying_index": underlying_index(inst),
            "timestamp": int(q.ts_ms),
            "stats": stats,
            "state": "open",
            # options settle once, at expiry: until then the previous settlement is 0.0 like the capture
            "settlement_price": 0.0,
            "open_interest": json_float(q.open_interest),
            "min_price": min_price,
            "max_price": max_price,
            "mark_price": mark,
            "mark_iv": json_float(q.mark_iv),
            "last_price": json_float(q.last),
            "interest_rate": 0.0,
            "instrument_name": q.inst_id,
            "index_price": json_float(q.index_price),
            "greeks": {k: json_float(g.get(k)) for k in ("vega", "theta", "rho", "gamma", "delta")},
            "estimated_delivery_price": json_float(q.index_price),
            "bid_iv": json_float(q.bid_iv),
            "best_bid_price": bid_px,
            "best_bid_amount": bid_sz,
            "best_ask_price": ask_px,
            "best_ask_amount": ask_sz,
            "ask_iv": json_float(q.ask_iv),
        }
    current, f8h, interest_value = _funding(q)
    # perpetual amounts are USD: the market's vol_24h is USD, vol_ccy_24h the coin volume Deribit calls "volume"
    vol_usd = json_float(q.vol_24h)
    return {
        "timestamp": int(q.ts_ms),
        "state": "open",
        "stats": {
            "high": stats["high"],
            "low": stats["low"],
            "price_change": stats["price_change"],
            "volume": json_float(q.vol_ccy_24h),
            "volume_usd": vol_usd,
            "volume_notional": vol_usd,
        },
        "index_price": json_float(q.index_price),
        "instrument_name": q.inst_id,
        "last_price": json_float(q.last),
        "settlement_price": json_float(q.open_24h),
        "min_price": min_price,
        "max_price": max_price,
        "open_interest": json_float(q.open_interest),
        "mark_price": mark,
        "interest_value": interest_value,
        "current_funding": current,
        "estimated_delivery_price": json_float(q.index_price),
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


def order_book_payload(inst: SimInstrument, q: SimQuote, book: dict[str, Any]) -> dict[str, Any]:
    """``public/get_order_book`` result: the ticker fields plus ``change_id`` and ``[price, amount]`` levels
    (``book``: ``timestamp``, ``change_id``, ``bids``, ``asks`` and the ``best_*`` fields of the true book).
    Deribit's documented example (abridged)::

        {"timestamp":1550757626706,"stats":{...},"state":"open","settlement_price":3925.85,
         "open_interest":45.27,"min_price":3932.22,"max_price":3971.74,"mark_price":3931.97,
         "last_price":3955.75,"instrument_name":"BTC-PERPETUAL","index_price":3910.46,"funding_8h":0.00455263,
         "current_funding":0.00500063,"change_id":474988,"bids":[[3955.75,30.0]],"asks":[[3940.75,102020.0]],
         "best_bid_price":3955.75,"best_bid_amount":30.0,"best_ask_price":3940.75,"best_ask_amount":102020.0}
    """
    d = ticker_payload(inst, q)
    d.update(book)
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
    perp_volume = json_float(q.vol_ccy_24h) if not is_option(inst) else stats["volume"]
    d: dict[str, Any] = {
        "volume": perp_volume,
        "quote_currency": cur if is_option(inst) else "USD",
        "price_change": stats["price_change"],
        "open_interest": json_float(q.open_interest),
        "mid_price": float((bid_px + ask_px) / 2) if bid_px and ask_px else None,
        "mark_price": json_float(q.mark_price),
        "low": stats["low"],
        "last": json_float(q.last),
        "instrument_name": q.inst_id,
        "high": stats["high"],
        "estimated_delivery_price": json_float(q.index_price),
        "creation_timestamp": int(q.ts_ms),
        "bid_price": bid_px or None,
        "base_currency": cur,
        "ask_price": ask_px or None,
        "volume_usd": json_float(q.vol_24h) if not is_option(inst) else 0.0,
    }
    if is_option(inst):
        d.update(
            {
                "underlying_price": round(json_float(q.underlying_price), 4),
                "underlying_index": underlying_index(inst),
                "interest_rate": 0.0,
                "mark_iv": json_float(q.mark_iv),
            }
        )
    else:
        current, f8h, _ = _funding(q)
        d.update({"volume_notional": json_float(q.vol_24h), "funding_8h": f8h, "current_funding": current})
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
