"""Parsing helpers every venue module shares, written once: the specific-problem exception, reject reasons,
the instrument-name patterns -> market rule, the bounded instrument -> market memo, and the slow-path search for
a trade's first bad field."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

INF = float("inf")
SIDES = frozenset(("buy", "sell"))


def plain_number(text: str) -> bool:
    """A number as venues write it in JSON strings: float() also reads "1_0", " 1" and "１", which Arrow (the
    bronze conversion) refuses, so a parser that keeps the string checks it with this."""
    return text.isascii() and text.isprintable() and "_" not in text and " " not in text


def market_by_name(instrument: Any, patterns: Sequence[tuple[str, re.Pattern[str]]], what: str) -> str:
    """The market of the first (market, pattern) whose pattern matches the whole name (a venue lists its
    patterns in the order that tells overlapping ones apart); ValueError naming ``what`` otherwise."""
    if isinstance(instrument, str):
        for market, pattern in patterns:
            if pattern.fullmatch(instrument):
                return market
    raise ValueError(f"not {what}: {instrument!r}")


class BadField(ValueError):
    """A specific problem found inside a channel parser; ``reason`` prefixes it with "<venue> <channel>: "."""


INT64_MAX = (1 << 63) - 1


def int64_or_none(raw: Any) -> int | None:
    """A sequence number, change id or checksum as bronze stores it (int64): a JSON int, or an int-valued string
    (ccxt re-serialises some numbers); None stays None. Anything else, or a value past int64, is a BadField:
    one bad id would otherwise fail the whole flush's Arrow conversion, and the book break it starts too."""
    if raw.__class__ is str:
        raw = int(raw)
    elif raw is None:
        return None
    elif raw.__class__ is not int:
        raise BadField(f"not an integer: {raw!r}")
    if not -INT64_MAX - 1 <= raw <= INT64_MAX:
        raise BadField(f"integer out of int64 range: {raw!r}")
    return raw


def reason(where: str, exc: BaseException) -> str:
    """A short reject reason for ``exc`` raised while parsing ``where`` (e.g. "okx trades")."""
    if isinstance(exc, BadField):
        return f"{where}: {exc}"
    if isinstance(exc, KeyError):
        return f"{where}: missing field {exc.args[0]!r}"
    if isinstance(exc, IndexError):
        return f"{where}: too few elements ({exc})"
    return f"{where}: bad value ({exc})"


class MarketMemo:
    """instrument -> market ("spot" | "swap" | "future" | "option"), so a venue's symbol rules (regexes)
    run once per instrument, not once per row. Hot paths read ``cache`` directly and call ``slow`` on a
    miss. Bounded: a stream of made-up names must not grow memory forever."""

    def __init__(self, market_of: Callable[[str], str], field: str, max_size: int = 100_000) -> None:
        self.cache: dict[str, str] = {}
        self._market_of = market_of
        self._field = field
        self._max = max_size

    def slow(self, inst: Any) -> str:
        try:
            market = self._market_of(inst)
        except ValueError:
            raise BadField(f"unrecognised {self._field} {inst!r}") from None
        if len(self.cache) >= self._max:
            self.cache.clear()
        self.cache[inst] = market
        return market


def first_bad_field(
    t: dict[str, Any], where: str, *, required: tuple[str, ...], positive: tuple[str, ...], side: tuple[str, str]
) -> str | None:
    """The first missing field, non-positive number or unknown side of a trade that failed to parse
    (slow path: rejected frames only); None when these checks find nothing. ``side`` = (key, word)."""
    for key in required:
        if key not in t:
            return f"{where}: missing field {key!r}"
    for key in positive:
        try:
            value = float(t[key])
        except (TypeError, ValueError):
            return f"{where}: {key} is not a number: {t[key]!r}"
        if not 0.0 < value < INF:
            return f"{where}: {key} is not a positive finite number: {t[key]!r}"
    key, word = side
    if t[key].__class__ is not str or t[key] not in SIDES:  # a list/dict side is unhashable: TypeError
        return f"{where}: unknown {word} {t[key]!r}"
    return None
