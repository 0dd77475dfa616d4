"""OKX v5 public derivatives channels: pure parsers into bronze/derivatives and bronze/liquidations.

``funding-rate``, ``open-interest``, ``mark-price`` and ``index-tickers`` give one bronze/derivatives row per
data item; ``liquidation-orders`` one bronze/liquidations row per detail. Numbers are strings, "" means no
value (``nextFundingRate`` is "" on most instruments); timestamps are ms strings. Every field without a
column goes to ``raw`` (compact JSON, sorted keys), so fields OKX adds later are kept, not dropped. A bad
item refuses the whole frame (``FrameError`` naming the field); nothing of it is added.

``pipeline.venues.okx`` registers these parsers, giving them its instrument -> market memo (``market``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipeline.errors import FrameError
from pipeline.venues import _derivatives as d
from pipeline.venues._parsing import SIDES, BadField, reason
from pipeline.venues.base import Control, ParsedBatch

MarketOf = Callable[[Any], str]

# The columns each channel fills from its item (besides instId -> instrument and ts -> exchange_ts).
_FUNDING_KEYS = ("instId", "ts", "fundingRate", "nextFundingRate", "fundingTime", "nextFundingTime")
_OPEN_INTEREST_KEYS = ("instId", "ts", "oi", "oiCcy", "oiUsd")
_MARK_KEYS = ("instId", "ts", "markPx")
_INDEX_KEYS = ("instId", "ts", "idxPx")
_LIQUIDATION_ITEM_KEYS = ("instId", "details")
_LIQUIDATION_DETAIL_KEYS = ("side", "bkPx", "sz", "ts")


def _item(t: Any) -> tuple[str, int]:
    """(instId, ts) of one data item."""
    if t.__class__ is not dict:
        raise BadField(f"item is a JSON {type(t).__name__}, not an object")
    ts = d.time_ms(t, "ts")
    assert ts is not None  # not optional
    return d.text(t, "instId"), ts


def funding_rate_row(t: Any, market: MarketOf, receive_ts_us: int, source: str) -> tuple[Any, ...]:
    """One ``funding-rate`` item. 2025-26 (OKX docs; the fields field-notes lists):

    {"arg":{"channel":"funding-rate","instId":"BTC-USDT-SWAP"},"data":[{"formulaType":"withRate",
     "fundingRate":"0.0000691200000000","fundingTime":"1786560000000","impactValue":"20000.0000000000000000",
     "instId":"BTC-USDT-SWAP","instType":"SWAP","interestRate":"0.0001000000000000","maxFundingRate":"0.00375",
     "method":"current_period","minFundingRate":"-0.00375","nextFundingRate":"","nextFundingTime":"1786588800000",
     "premium":"-0.0000813612626409","settFundingRate":"0.0000531054758640","settState":"settled",
     "ts":"1786540471710"}]}

    Older (nautilus_trader's test data, ../shared/realdata/okx-funding): instId, fundingRate, nextFundingRate,
    fundingTime, nextFundingTime, ts only. ``fundingRate`` is the current period's rate, predicted until
    ``fundingTime`` passes. An item without ``fundingRate`` is refused (the channel's one claim); ``nextFundingRate``
    is "" on most instruments (null).
    """
    inst, ts = _item(t)
    mkt = market(inst)
    return d.derivative_row(
        "okx", mkt, inst, "funding-rate", ts, receive_ts_us, source,
        funding_rate=d.required(d.rate(t, "fundingRate"), "fundingRate"), next_funding_rate=d.rate(t, "nextFundingRate"),
        funding_time_ms=d.time_ms(t, "fundingTime", optional=True),
        next_funding_time_ms=d.time_ms(t, "nextFundingTime", optional=True),
        raw=d.raw_json(t, _FUNDING_KEYS),
    )  # fmt: skip


def open_interest_row(t: Any, market: MarketOf, receive_ts_us: int, source: str) -> tuple[Any, ...]:
    """One ``open-interest`` item (oi in contracts, oiCcy in the base currency, oiUsd in USD):

    {"arg":{"channel":"open-interest","instId":"BTC-USDT-SWAP"},"data":[{"instId":"BTC-USDT-SWAP",
     "instType":"SWAP","oi":"2836217.02","oiCcy":"28362.1702","oiUsd":"1812770613.17","ts":"1786540471710"}]}
    """
    inst, ts = _item(t)
    mkt = market(inst)
    return d.derivative_row(
        "okx", mkt, inst, "open-interest", ts, receive_ts_us, source,
        open_interest=d.required(d.amount(t, "oi"), "oi"), open_interest_ccy=d.amount(t, "oiCcy"),
        open_interest_usd=d.amount(t, "oiUsd"), raw=d.raw_json(t, _OPEN_INTEREST_KEYS),
    )  # fmt: skip


def open_interest_history_row(
    t: Any, instrument: str, market: MarketOf, receive_ts_us: int, source: str
) -> tuple[Any, ...]:
    """One item of ``GET /api/v5/rubik/stat/contracts/open-interest-history`` (an array, newest first:
    ``[ts, oi, oiCcy, oiUsd]``, as ccxt's fetch_open_interest_history reads it) as a bronze/derivatives row,
    channel "open-interest-history"; positions past the fourth go to ``raw`` by index."""
    if t.__class__ is not list or len(t) < 4:
        raise BadField(f"item is not an array [ts, oi, oiCcy, oiUsd]: {t!r}")
    item = {"ts": t[0], "oi": t[1], "oiCcy": t[2], "oiUsd": t[3]}
    ts = d.time_ms(item, "ts")
    assert ts is not None  # not optional
    extra = {str(i): v for i, v in enumerate(t[4:], start=4)}
    return d.derivative_row(
        "okx", market(instrument), instrument, "open-interest-history", ts, receive_ts_us, source,
        open_interest=d.required(d.amount(item, "oi"), "oi"), open_interest_ccy=d.amount(item, "oiCcy"),
        open_interest_usd=d.amount(item, "oiUsd"), raw=d.raw_json(extra, ()),
    )  # fmt: skip


def mark_price_row(t: Any, market: MarketOf, receive_ts_us: int, source: str) -> tuple[Any, ...]:
    """One ``mark-price`` item:

    {"arg":{"channel":"mark-price","instId":"BTC-USDT-SWAP"},"data":[{"instId":"BTC-USDT-SWAP",
     "instType":"SWAP","markPx":"63918.4","ts":"1786540471710"}]}
    """
    inst, ts = _item(t)
    mkt = market(inst)
    mark = d.required(d.mark(t, "markPx", mkt), "markPx")
    return d.derivative_row(
        "okx", mkt, inst, "mark-price", ts, receive_ts_us, source, mark_price=mark, raw=d.raw_json(t, _MARK_KEYS)
    )


def index_row(t: Any, receive_ts_us: int, source: str) -> tuple[Any, ...]:
    """One ``index-tickers`` item; its instrument is the index name (BTC-USDT for BTC-USDT-SWAP), market "index":

    {"arg":{"channel":"index-tickers","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","idxPx":"63902.1",
     "high24h":"64466.2","low24h":"63162.9","open24h":"64297.5","sodUtc0":"63566.3","sodUtc8":"63584.7",
     "ts":"1786540471710"}]}
    """
    inst, ts = _item(t)
    index = d.required(d.price(t, "idxPx"), "idxPx")
    return d.derivative_row(
        "okx", d.INDEX_MARKET, inst, "index-tickers", ts, receive_ts_us, source,
        index_price=index, raw=d.raw_json(t, _INDEX_KEYS),
    )  # fmt: skip


def liquidation_rows(t: Any, market: MarketOf, receive_ts_us: int, source: str) -> list[tuple[Any, ...]]:
    """One ``liquidation-orders`` item: each of its ``details`` is a row (the instrument is the item's instId,
    the side the detail's: the side of the liquidation order; price is the bankruptcy price ``bkPx``):

    {"arg":{"channel":"liquidation-orders","instType":"SWAP"},"data":[{"details":[{"bkLoss":"0",
     "bkPx":"0.007831","ccy":"","posSide":"short","side":"buy","sz":"13","ts":"1692266434010"}],
     "instFamily":"IOST-USDT","instId":"IOST-USDT-SWAP","instType":"SWAP","uly":"IOST-USDT"}]}

    ``raw`` holds the detail's fields without a column and the item's (instFamily, instType, uly).
    """
    if t.__class__ is not dict:
        raise BadField(f"item is a JSON {type(t).__name__}, not an object")
    inst = d.text(t, "instId")
    mkt = market(inst)
    details = t.get("details")
    if details.__class__ is not list:
        raise BadField(f"details is not a list: {details!r}")
    shared = {k: v for k, v in t.items() if k not in _LIQUIDATION_ITEM_KEYS}
    rows = []
    for detail in details:
        if detail.__class__ is not dict:
            raise BadField(f"detail is a JSON {type(detail).__name__}, not an object")
        side = detail.get("side")
        if side.__class__ is not str or side not in SIDES:
            raise BadField(f"unknown side {side!r}")
        px = d.required(d.price(detail, "bkPx"), "bkPx")
        sz = d.required(d.positive(detail, "sz"), "sz")
        ts = d.time_ms(detail, "ts")
        assert ts is not None  # not optional
        extra = {k: v for k, v in detail.items() if k not in _LIQUIDATION_DETAIL_KEYS}
        raw = d.raw_json({**shared, **extra}, ())
        rows.append(d.liquidation_row("okx", mkt, inst, side, px, sz, ts, receive_ts_us, source, raw))
    return rows


def _derivatives_parser(
    build: Callable[[Any, MarketOf, int, str], tuple[Any, ...]], channel: str
) -> Callable[..., Control | None]:
    def parse(
        msg: dict, arg: dict, data: list, receive_ts_us: int, out: ParsedBatch, source: str, *, market: MarketOf
    ) -> Control | None:
        try:
            rows = [build(t, market, receive_ts_us, source) for t in data]
        except (BadField, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise FrameError(reason(f"okx {channel}", exc)) from None
        out.derivatives.extend(rows)  # after every item parsed: all or nothing
        return None

    parse.__doc__ = build.__doc__
    return parse


def _parse_index(
    msg: dict, arg: dict, data: list, receive_ts_us: int, out: ParsedBatch, source: str, *, market: MarketOf
) -> Control | None:
    try:
        rows = [index_row(t, receive_ts_us, source) for t in data]
    except (BadField, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FrameError(reason("okx index-tickers", exc)) from None
    out.derivatives.extend(rows)
    return None


def _parse_liquidations(
    msg: dict, arg: dict, data: list, receive_ts_us: int, out: ParsedBatch, source: str, *, market: MarketOf
) -> Control | None:
    try:
        rows = [row for t in data for row in liquidation_rows(t, market, receive_ts_us, source)]
    except (BadField, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FrameError(reason("okx liquidation-orders", exc)) from None
    out.liquidations.extend(rows)
    return None


# OKX channel -> parser; each takes okx's handler arguments plus ``market`` (okx binds its memo).
PARSERS: dict[str, Callable[..., Control | None]] = {
    "funding-rate": _derivatives_parser(funding_rate_row, "funding-rate"),
    "open-interest": _derivatives_parser(open_interest_row, "open-interest"),
    "mark-price": _derivatives_parser(mark_price_row, "mark-price"),
    "index-tickers": _parse_index,
    "liquidation-orders": _parse_liquidations,
}
