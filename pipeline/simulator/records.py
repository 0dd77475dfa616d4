"""The simulator's value types: an instrument of the catalogue, a published trade, a quote (book top + ticker).

Plain frozen records with no behaviour, so the catalogue, the market model and the venue payload builders
can all import them without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SimInstrument:
    venue: str  # "okx" | "deribit"
    inst_id: str  # BTC-USDT, BTC-USDT-SWAP, ETH-PERPETUAL, ETH-27DEC26-3000-C
    market: str  # "spot" | "swap" | "option"
    base: str
    quote: str
    settle: str | None
    tick_size: float
    lot_size: float
    min_size: float
    contract_value: float | None  # OKX swap ctVal (in base), Deribit contract_size
    listing_ms: int
    expiry_ms: int | None
    strike: float | None
    option_type: str | None  # "call" | "put"
    underlying: str | None  # OKX uly "BTC-USDT"; Deribit "ETH-27DEC26" / "SYN.ETH-27DEC26" / "eth_usd"
    initial_price: float  # price at t0 (options: in ETH)


@dataclass(frozen=True, slots=True)
class SimTrade:
    venue: str
    inst_id: str
    trade_id: int  # OKX: id of the last fill; id[n] - id[n-1] == count[n]
    seq: int  # OKX seqId (increasing, gaps); Deribit trade_seq (contiguous +1 per instrument)
    price: float
    size: float  # OKX: base (spot) / contracts (swap); Deribit: USD (perp) / contracts (options)
    side: str  # "buy" | "sell" taker side
    ts_ms: int
    count: int
    index_price: float | None  # Deribit extras
    mark_price: float | None
    iv: float | None  # options, in percent like Deribit (62.5)
    tick_direction: int  # Deribit 0 plus, 1 zero-plus, 2 minus, 3 zero-minus


@dataclass(frozen=True, slots=True)
class SimQuote:
    """Top of book + ticker state. ``vol_24h`` is in size units (contracts/base/USD), ``vol_ccy_24h`` in OKX's
    ccy (swap: base, spot: quote; Deribit perp: ETH). IVs in percent."""

    venue: str
    inst_id: str
    ts_ms: int
    seq: int
    bids: tuple[tuple[float, float], ...]  # 5 levels, best first
    asks: tuple[tuple[float, float], ...]
    last: float
    last_size: float
    mark_price: float
    index_price: float
    underlying_price: float | None
    open_interest: float
    mark_iv: float | None
    bid_iv: float | None
    ask_iv: float | None
    greeks: dict | None
    open_24h: float
    high_24h: float
    low_24h: float
    vol_24h: float
    vol_ccy_24h: float
    current_funding: float | None = None  # perpetuals: the running funding period's predicted rate (Deribit: hourly)
    funding_8h: float | None = None  # Deribit perpetual: the last eight hourly settlements, summed
