"""OKX v5 payload builders: the exact keys and JSON types of the 2026 captures.

All numbers are strings, timestamps are ms strings, ``seqId`` is a JSON integer. Each builder returns
plain dicts/lists; the caller serialises once with orjson and fans the bytes out.
"""

from __future__ import annotations

from typing import Any

from pipeline.simulator.instruments import decimals
from pipeline.simulator.records import SimInstrument, SimQuote, SimTrade

INST_TYPE = {"spot": "SPOT", "swap": "SWAP", "option": "OPTION"}

# OKX bar name -> (bar length, alignment offset) in ms, for the candle channels and market/candles
MIN = 60_000
HOUR = 3_600_000
DAY = 86_400_000
HK = -8 * HOUR  # OKX 6H/12H/1D bars open at 00:00 Hong Kong time unless the "utc" variant is used
CANDLE_BARS: dict[str, tuple[int, int]] = {
    "1m": (MIN, 0),
    "3m": (3 * MIN, 0),
    "5m": (5 * MIN, 0),
    "15m": (15 * MIN, 0),
    "30m": (30 * MIN, 0),
    "1H": (HOUR, 0),
    "2H": (2 * HOUR, 0),
    "4H": (4 * HOUR, 0),
    "6H": (6 * HOUR, HK),
    "12H": (12 * HOUR, HK),
    "1D": (DAY, HK),
    "6Hutc": (6 * HOUR, 0),
    "12Hutc": (12 * HOUR, 0),
    "1Dutc": (DAY, 0),
}


def fmt(x: float, dec: int) -> str:
    """``63921.10000001, 1 -> "63921.1"``; ``64000.0, 1 -> "64000"`` (OKX drops trailing zeros)."""
    if dec <= 0:
        return str(round(x))
    s = f"{x:.{dec}f}".rstrip("0")
    return s[:-1] if s.endswith(".") else s


class OkxInfo:
    """Per-instrument formatting facts, computed once."""

    __slots__ = ("arg", "inst", "inst_type", "px_dec", "sz_dec")

    def __init__(self, inst: SimInstrument) -> None:
        self.inst = inst
        self.inst_type = INST_TYPE[inst.market]
        self.px_dec = decimals(inst.tick_size)
        self.sz_dec = decimals(inst.lot_size)
        self.arg = {"channel": "", "instId": inst.inst_id}


def trade_data(t: SimTrade, info: OkxInfo) -> dict[str, Any]:
    """One item of a ``trades`` push::

    {"instId":"BTC-USDT-SWAP","tradeId":"2832749645","px":"63913.4","sz":"34.95","side":"sell",
     "ts":"1786540436090","count":"10","source":"0","seqId":333793118093}
    """
    return {
        "instId": t.inst_id,
        "tradeId": str(t.trade_id),
        "px": fmt(t.price, info.px_dec),
        "sz": fmt(t.size, info.sz_dec),
        "side": t.side,
        "ts": str(t.ts_ms),
        "count": str(t.count),
        "source": "0",
        "seqId": t.seq,
    }


def trade_rest(t: SimTrade, info: OkxInfo) -> dict[str, Any]:
    """One row of ``GET /api/v5/market/trades`` / ``history-trades``::

    {"instId":"BTC-USDT","side":"sell","sz":"0.00001","px":"29963.2","source":"0",
     "tradeId":"242720720","ts":"1654161646974"}
    """
    return {
        "instId": t.inst_id,
        "side": t.side,
        "sz": fmt(t.size, info.sz_dec),
        "px": fmt(t.price, info.px_dec),
        "source": "0",
        "tradeId": str(t.trade_id),
        "ts": str(t.ts_ms),
    }


def ticker_data(q: SimQuote, info: OkxInfo, sod_utc0: float, sod_utc8: float) -> dict[str, Any]:
    """``tickers`` item and ``market/ticker`` row::

    {"instType":"SWAP","instId":"BTC-USDT-SWAP","last":"63921","lastSz":"0.4","askPx":"63921.1",
     "askSz":"1871.75","bidPx":"63921","bidSz":"779.3","open24h":"64297.6","high24h":"64466",
     "low24h":"63162.7","sodUtc0":"63566","sodUtc8":"63584.6","volCcy24h":"73998.8786",
     "vol24h":"7399887.86","ts":"1786540471710"}
    """
    pd, sd = info.px_dec, info.sz_dec
    return {
        "instType": info.inst_type,
        "instId": q.inst_id,
        "last": fmt(q.last, pd),
        "lastSz": fmt(q.last_size, sd),
        "askPx": fmt(q.asks[0][0], pd),
        "askSz": fmt(q.asks[0][1], sd),
        "bidPx": fmt(q.bids[0][0], pd),
        "bidSz": fmt(q.bids[0][1], sd),
        "open24h": fmt(q.open_24h, pd),
        "high24h": fmt(q.high_24h, pd),
        "low24h": fmt(q.low_24h, pd),
        "sodUtc0": fmt(sod_utc0, pd),
        "sodUtc8": fmt(sod_utc8, pd),
        "volCcy24h": fmt(q.vol_ccy_24h, 8),
        "vol24h": fmt(q.vol_24h, sd),
        "ts": str(q.ts_ms),
    }


def candle_row(row: tuple, info: OkxInfo) -> list[str]:
    """``[ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm]`` -- 9 strings, e.g.
    ``["1786540440000","63913","63951.8","63913","63951.8","1803.61","18.0361","1153203.99426","0"]``."""
    ts, o, h, low, c, vol, vccy, vq, confirmed = row
    pd = info.px_dec
    return [
        str(ts),
        fmt(o, pd),
        fmt(h, pd),
        fmt(low, pd),
        fmt(c, pd),
        fmt(vol, max(info.sz_dec, 2)),
        fmt(vccy, 8),
        fmt(vq, 8),
        "1" if confirmed else "0",
    ]


def instrument_body(inst: SimInstrument) -> dict[str, str]:
    """``GET /api/v5/public/instruments`` row, fields as the real bodies (plus 2024+ ``instFamily``)."""
    spot = inst.market == "spot"
    fam = "" if spot else inst.underlying or ""
    return {
        "alias": "",
        "baseCcy": inst.base if spot else "",
        "category": "1",
        "ctMult": "" if spot else "1",
        "ctType": "" if spot else "linear",
        "ctVal": "" if spot else fmt(inst.contract_value or 1.0, 8),
        "ctValCcy": "" if spot else inst.base,
        "expTime": "",
        "instFamily": fam,
        "instId": inst.inst_id,
        "instType": INST_TYPE[inst.market],
        "lever": "10" if spot else "100",
        "listTime": str(inst.listing_ms),
        "lotSz": fmt(inst.lot_size, decimals(inst.lot_size)),
        "maxIcebergSz": "9999999999",
        "maxLmtSz": "9999999999" if spot else "100000000",
        "maxMktSz": "1000000" if spot else "12000",
        "maxStopSz": "1000000" if spot else "12000",
        "maxTriggerSz": "9999999999" if spot else "100000000",
        "maxTwapSz": "9999999999" if spot else "100000000",
        "minSz": fmt(inst.min_size, decimals(min(inst.min_size, inst.lot_size))),
        "optType": "",
        "quoteCcy": inst.quote if spot else "",
        "settleCcy": inst.settle or "",
        "state": "live",
        "stk": "",
        "tickSz": fmt(inst.tick_size, decimals(inst.tick_size)),
        "uly": fam,
    }
