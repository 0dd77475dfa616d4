"""Derivatives-state rows every venue module builds the same way: bronze/derivatives and bronze/liquidations
tuples by field name (not by position), the number rules of their columns, and ``raw``: the fields a venue sent
that have no column, kept as compact JSON with sorted keys so nothing is dropped."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from pipeline.lake.schemas import DERIVATIVE_FIELDS, LIQUIDATION_FIELDS
from pipeline.venues._parsing import INF, BadField

# Markets that carry derivatives state (funding, open interest, mark/index prices, liquidations).
DERIVATIVE_MARKETS = frozenset(("swap", "future", "option"))
INDEX_MARKET = "index"  # the market of an index row (its instrument is the index name)


def derivative_row(
    venue: str,
    market: str,
    instrument: str,
    channel: str,
    exchange_ts_ms: int,
    receive_ts_us: int,
    source: str,
    *,
    funding_rate: float | None = None,
    next_funding_rate: float | None = None,
    funding_time_ms: int | None = None,
    next_funding_time_ms: int | None = None,
    open_interest: float | None = None,
    open_interest_ccy: float | None = None,
    open_interest_usd: float | None = None,
    mark_price: float | None = None,
    index_price: float | None = None,
    raw: str | None = None,
) -> tuple[Any, ...]:
    """One bronze/derivatives row in ``DERIVATIVE_FIELDS`` order (a test holds the two in step)."""
    return (
        venue, market, instrument, channel, exchange_ts_ms, receive_ts_us, source,
        funding_rate, next_funding_rate, funding_time_ms, next_funding_time_ms,
        open_interest, open_interest_ccy, open_interest_usd, mark_price, index_price, raw,
    )  # fmt: skip


def liquidation_row(
    venue: str,
    market: str,
    instrument: str,
    side: str,
    price: float,
    size: float,
    exchange_ts_ms: int,
    receive_ts_us: int,
    source: str,
    raw: str | None,
) -> tuple[Any, ...]:
    """One bronze/liquidations row in ``LIQUIDATION_FIELDS`` order."""
    return (venue, market, instrument, side, price, size, exchange_ts_ms, receive_ts_us, source, raw)


assert len(derivative_row("", "", "", "", 0, 0, "")) == len(DERIVATIVE_FIELDS)
assert len(liquidation_row("", "", "", "", 0.0, 0.0, 0, 0, "", None)) == len(LIQUIDATION_FIELDS)


def _number(item: Mapping[str, Any], key: str) -> float | None:
    """The value at ``key`` as a finite float; None when absent, null or "" (OKX's "no value")."""
    value = item.get(key)
    if value is None or value == "":
        return None
    if value.__class__ is bool:  # float(True) is 1.0: a flag is not a number
        raise BadField(f"{key} is not a number: {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer too big for a float
        raise BadField(f"{key} is not a number: {value!r}") from None
    if not -INF < number < INF:  # float() reads "nan" and "inf"; no venue sends either
        raise BadField(f"{key} is not a finite number: {value!r}")
    return number


def rate(item: Mapping[str, Any], key: str) -> float | None:
    """A funding rate: any finite number (negative rates are normal)."""
    return _number(item, key)


def amount(item: Mapping[str, Any], key: str) -> float | None:
    """An open interest or size: finite and >= 0."""
    number = _number(item, key)
    if number is not None and number < 0.0:
        raise BadField(f"{key} is negative: {item[key]!r}")
    return number


def price(item: Mapping[str, Any], key: str) -> float | None:
    """A mark or index price: finite and > 0."""
    number = _number(item, key)
    if number is not None and number <= 0.0:
        raise BadField(f"{key} is not a positive price: {item[key]!r}")
    return number


def mark(item: Mapping[str, Any], key: str, market: str) -> float | None:
    """A mark price: > 0, except that an option about to expire worthless can be marked at exactly 0."""
    if market == "option":
        return amount(item, key)
    return price(item, key)


def positive(item: Mapping[str, Any], key: str) -> float | None:
    """A liquidation's size: finite and > 0."""
    number = _number(item, key)
    if number is not None and number <= 0.0:
        raise BadField(f"{key} is not positive: {item[key]!r}")
    return number


def required(value: float | None, key: str) -> float:
    """``value`` of a field the row cannot do without (a liquidation's price and size)."""
    if value is None:
        raise BadField(f"{key} is missing or empty")
    return value


def time_ms(item: Mapping[str, Any], key: str, *, optional: bool = False) -> int | None:
    """A ms timestamp (OKX sends strings, Deribit ints): a positive integer; None only where ``optional``."""
    value = item.get(key)
    if value is None or value == "":
        if optional:
            return None
        raise BadField(f"{key} is missing or empty")
    if value.__class__ is bool or (value.__class__ is float and not value.is_integer()):
        raise BadField(f"{key} is not an integer: {value!r}")
    try:
        ms = int(value)
    except (TypeError, ValueError):
        raise BadField(f"{key} is not an integer: {value!r}") from None
    if ms <= 0:
        raise BadField(f"{key} is not positive: {value!r}")
    return ms


def text(item: Mapping[str, Any], key: str) -> str:
    """A required non-empty string field (an instrument or index name)."""
    value = item.get(key)
    if value.__class__ is not str or not value:
        raise BadField(f"{key} is missing or not a string: {value!r}")
    return value


def raw_json(item: Mapping[str, Any], stored: Iterable[str]) -> str | None:
    """The fields of ``item`` not in ``stored`` (the keys that became columns) as compact JSON, sorted keys;
    None when every field has a column."""
    stored = frozenset(stored)
    rest = {k: v for k, v in item.items() if k not in stored}
    return orjson.dumps(rest, option=orjson.OPT_SORT_KEYS).decode() if rest else None
