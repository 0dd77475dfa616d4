"""Book messages (``BOOK_FIELDS`` tuples, one per message) exploded into ``bronze/book_deltas`` rows.

A parser hands over each message's levels as the venue sent them, so the hot path copies no level:
- a level is a sequence ``(price, size, _, orders, action)`` cut short where the venue has no more: OKX sends
  ``[px, sz, "0", orders]`` (strings; the third is a deprecated field), and a Deribit parser passes
  ``(price, amount, None, None, action)``;
- price and size may be strings (OKX, exactly as sent: the checksum was verified on them) or numbers.
A message with no level at all still gives one row with a null side, so its place in the chain stays visible.

Rows come grouped by book (venue, instrument, channel), each book's messages in their order: a stable sort of
the messages, so a file holds each chain in one run and its seq and clock columns delta-encode to almost
nothing (bronze bytes per level row 13.5 -> 11.4 on the book benchmark's frames). Readers order by seq, time
and row within a chain, never across chains.

Speed (the book benchmark's flush): Python touches each message once and each level only inside C loops
(``list.extend``, ``map(itemgetter)``); strings become numbers in Arrow's casts, and the per-message columns are
spread over the level rows with one ``take``.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.lake import schemas as s

_MESSAGE_COLUMNS = s.BOOK_FIELDS[:12]  # the per-message fields, repeated on each of its level rows
_NO_LEVEL = (None, None, None, None, None)  # stands for the one row of a message without levels
_SIDES = pa.array(["bid", "ask", None], pa.string())  # side codes 0, 1, 2 (no level)
_PRICE, _SIZE, _ORDERS, _ACTION = itemgetter(0), itemgetter(1), itemgetter(3), itemgetter(4)
_BOOK = itemgetter(0, 2, 3)  # venue, instrument, channel


def book_deltas_table(rows: Sequence[tuple[Any, ...]]) -> pa.Table:
    """bronze/book_deltas rows from book messages (``BOOK_FIELDS`` order), grouped by book."""
    try:
        rows = sorted(rows, key=_BOOK)  # stable: each book's messages keep their order
    except TypeError:
        pass  # a malformed row (a field not a string): converted as it came, its own error raised below
    levels: list[Sequence[Any]] = []
    extend = levels.extend
    runs: list[int] = []  # per message: bid levels, ask levels, 1 if it has none (its null-side row)
    widths: set[int] = set()  # the level lengths seen (one look per message side), to pick the fast reads
    for row in rows:
        bids, asks = row[12], row[13]
        nb = len(bids) if bids else 0
        na = len(asks) if asks else 0
        if nb:
            extend(bids)
            widths.add(len(bids[0]))
        if na:
            extend(asks)
            widths.add(len(asks[0]))
        if nb or na:
            runs += (nb, na, 0)
        else:
            levels.append(_NO_LEVEL)
            runs += (0, 0, 1)
    per_message = np.asarray(runs, np.int64).reshape(-1, 3) if rows else np.zeros((0, 3), np.int64)
    index = pa.array(np.repeat(np.arange(len(rows), dtype=np.int64), per_message.sum(axis=1)))
    codes = np.repeat(np.tile(np.arange(3, dtype=np.int64), len(rows)), per_message.ravel())
    message = dict(zip(_MESSAGE_COLUMNS, zip(*rows, strict=False), strict=False)) if rows else {}
    arrays: dict[str, Any] = {}
    for name in _MESSAGE_COLUMNS:
        values = message.get(name, ())
        if name == "exchange_ts_ms":
            column = pc.multiply_checked(pa.array(values, pa.int64()), 1000).cast(s.TS)
            arrays["exchange_ts"] = column.take(index)
        elif name == "receive_ts_us":
            arrays["receive_ts"] = pa.array(values, pa.int64()).cast(s.TS).take(index)
        else:
            arrays[name] = pa.array(values, s.BOOK_DELTAS_SCHEMA.field(name).type).take(index)
    arrays["side"] = _SIDES.take(pa.array(codes))
    arrays["price"] = _numbers(list(map(_PRICE, levels)), pa.float64())
    arrays["size"] = _numbers(list(map(_SIZE, levels)), pa.float64())
    arrays["orders"] = _numbers(_field(levels, _ORDERS, 3, widths), pa.int64())
    arrays["action"] = pa.array(_field(levels, _ACTION, 4, widths), pa.string())
    arrays["date"] = pc.cast(arrays["exchange_ts"].cast(pa.timestamp("us")), pa.date32())
    return pa.Table.from_pydict({n: arrays[n] for n in s.BOOK_DELTAS_SCHEMA.names}, schema=s.BOOK_DELTAS_SCHEMA)


def _field(levels: list[Sequence[Any]], get: itemgetter, position: int, widths: set[int]) -> list[Any]:
    """Element ``position`` of every level (None where a level is shorter), in C where the widths allow."""
    if not widths or max(widths) <= position:
        return [None] * len(levels)  # no level carries it (OKX has no action); the no-level rows neither
    if min(widths) > position:
        try:
            return list(map(get, levels))  # every level carries it (the no-level rows are long enough)
        except IndexError:
            pass  # a message whose later levels are shorter than its first
    return [level[position] if len(level) > position else None for level in levels]


def _numbers(values: list[Any], kind: pa.DataType) -> pa.Array:
    """Strings (as sent) are parsed by Arrow in one pass; numbers are taken as they are. A value that is not a
    number raises, and the flush turns the message's rows into rejects with the reason."""
    try:
        return pc.cast(pa.array(values, pa.string()), kind)  # OKX: every value a string (or null)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        pass
    try:
        return pa.array(values, kind)  # Deribit: numbers
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        pass
    # Both kinds in one batch (ccxt re-serialised some numbers as strings)
    return pc.cast(pa.array([None if v is None else str(v) for v in values], pa.string()), kind)
