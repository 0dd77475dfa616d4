"""Deribit derivatives state: the ticker's funding, open interest, mark and index prices, and the
``deribit_price_index.{index_name}`` channel, as bronze/derivatives rows (pure; numbers are JSON numbers).

``pipeline.venues.deribit`` calls ``ticker_row`` from its ticker parser (the same push also gives the quote
row) and registers ``parse_price_index``.
"""

from __future__ import annotations

from typing import Any

from pipeline.errors import FrameError
from pipeline.venues import _derivatives as d
from pipeline.venues._parsing import BadField, reason
from pipeline.venues.base import Control, ParsedBatch

PRICE_INDEX_CHANNEL = "deribit_price_index"

# Ticker fields that already have a column in bronze/quotes or bronze/derivatives; the rest go to ``raw``.
_TICKER_STORED = frozenset((
    "instrument_name", "timestamp", "best_bid_price", "best_bid_amount", "best_ask_price", "best_ask_amount",
    "last_price", "mark_price", "index_price", "underlying_price", "open_interest", "mark_iv", "bid_iv", "ask_iv",
    "greeks", "current_funding",
))  # fmt: skip
_INDEX_STORED = ("index_name", "timestamp", "price")


def index_name(instrument: str) -> str:
    """The price index an instrument settles against: ETH-PERPETUAL and ETH options -> eth_usd,
    BTC_USDC-PERPETUAL -> btc_usdc (linear instruments name their quote currency)."""
    underlying = instrument.split("-")[0].lower()
    return underlying if "_" in underlying else underlying + "_usd"


def _is_inverse(instrument: str) -> bool:
    # BTC-PERPETUAL, ETH-27DEC26: margined in the coin, amounts in USD; BTC_USDC-PERPETUAL is linear.
    return "_" not in instrument.split("-")[0]


def ticker_row(
    data: dict[str, Any], market: str, instrument: str, ts_ms: int, receive_ts_us: int, source: str
) -> tuple[Any, ...]:
    """The derivatives row of a ``ticker.{inst}.100ms`` push of a perpetual, future or option (2026 capture):

    {"timestamp":1786563120494,"state":"open","stats":{"high":64422,"low":63261,"price_change":-0.0095,
     "volume":2778.68467406,"volume_usd":177187410,"volume_notional":177187410},"index_price":63329.18,
     "instrument_name":"BTC-PERPETUAL","last_price":63344,"settlement_price":63799.96,"min_price":62396,
     "max_price":64297,"open_interest":716004750,"mark_price":63346.33,"interest_value":0.05636261630352104,
     "current_funding":2.081e-05,"estimated_delivery_price":63329.18,"funding_8h":0.00010036,
     "best_ask_price":63344.5,"best_bid_price":63344,"best_ask_amount":9980,"best_bid_amount":58060}

    ``current_funding`` (perpetuals) is the rate now -> funding_rate; ``funding_8h`` (the funding of the last
    8 h) and every other field without a column stay in ``raw``. Deribit gives ``open_interest`` in its amount
    unit: USD for inverse perpetuals and futures (-> open_interest_usd), the coin for options and linear
    instruments (-> open_interest_ccy; an option's contract is one coin, so also open_interest).
    """
    oi = d.amount(data, "open_interest")
    inverse = market != "option" and _is_inverse(instrument)
    return d.derivative_row(
        "deribit", market, instrument, "ticker", ts_ms, receive_ts_us, source,
        funding_rate=d.rate(data, "current_funding"),
        open_interest=oi if market == "option" else None,
        open_interest_ccy=None if inverse else oi,
        open_interest_usd=oi if inverse else None,
        mark_price=d.mark(data, "mark_price", market),
        index_price=d.price(data, "index_price"),
        raw=d.raw_json(data, _TICKER_STORED),
    )  # fmt: skip


def parse_price_index(channel: str, data: Any, receive_ts_us: int, out: ParsedBatch, source: str) -> Control | None:
    """deribit_price_index.{index_name}: the index price (example from Deribit's API docs; none recorded):

    {"jsonrpc":"2.0","method":"subscription","params":{"channel":"deribit_price_index.eth_usd","data":{
     "timestamp":1550588002899,"price":3937.89,"index_name":"eth_usd"}}}

    One derivatives row: market "index", instrument the index name, index_price.
    """
    try:
        if data.__class__ is not dict:
            raise BadField(f"data is a JSON {type(data).__name__}, not an object")
        name = d.text(data, "index_name")
        ts = d.time_ms(data, "timestamp")
        assert ts is not None  # not optional
        row = d.derivative_row(
            "deribit", d.INDEX_MARKET, name, PRICE_INDEX_CHANNEL, ts, receive_ts_us, source,
            index_price=d.required(d.price(data, "price"), "price"), raw=d.raw_json(data, _INDEX_STORED),
        )  # fmt: skip
    except (BadField, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FrameError(reason("deribit deribit_price_index", exc)) from None
    out.derivatives.append(row)
    return None
