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

Speed (the book benchmark's flush): no Python loop runs per message or per level: the messages are sorted by
Arrow, their levels gathered by ``map``/``chain`` and counted by numpy, each venue's levels read apart (one
layout per venue, so a mixed batch takes no slow path): OKX's as lists of strings by Arrow in one pass, others
column by column with ``map(itemgetter)``; strings become numbers in Arrow's casts, and the per-message columns
are spread over the level rows with one ``take`` (0.73 -> 0.55 us a level row on OKX frames, 1.42 -> 1.19 on
Deribit's, 1.23 -> 0.75 on the two mixed).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain, pairwise
from operator import itemgetter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.lake import schemas as s

_MESSAGE_COLUMNS = s.BOOK_FIELDS[:12]  # the per-message fields, repeated on each of its level rows
_NO_LEVEL = (None, None, None, None, None)  # stands for the one row of a message without levels
_NO_LEVEL_SIDE = (_NO_LEVEL,)
_SIDES = pa.array(["bid", "ask", None], pa.string())  # side codes 0, 1, 2 (no level)
_PRICE, _SIZE, _ORDERS, _ACTION = itemgetter(0), itemgetter(1), itemgetter(3), itemgetter(4)
_BIDS, _ASKS, _FIRST = itemgetter(12), itemgetter(13), itemgetter(0)


def book_deltas_table(rows: Sequence[tuple[Any, ...]]) -> pa.Table:
    """bronze/book_deltas rows from book messages (``BOOK_FIELDS`` order), grouped by book."""
    message = dict(zip(_MESSAGE_COLUMNS, zip(*rows, strict=False), strict=False)) if rows else {}
    columns = {name: _message_column(name, message.get(name, ())) for name in _MESSAGE_COLUMNS}
    # Arrow's sort is stable: each book's messages keep their order (and no key tuple per message is made)
    order = pc.sort_indices(pa.table({k: columns[k] for k in _BOOK_KEY}), [(k, "ascending") for k in _BOOK_KEY])
    rows = list(map(rows.__getitem__, order.to_numpy()))
    count = len(rows)
    # Everything per message or per level below runs in C (map, chain, numpy): a Python loop over the messages
    # cost 2 us a message on the book benchmark, most of it waiting for memory.
    bids = list(map(_BIDS, rows))
    asks = list(map(_ASKS, rows))
    if None in bids or None in asks:
        bids, asks = [b or () for b in bids], [a or () for a in asks]
    nb = np.fromiter(map(len, bids), np.int64, count)
    na = np.fromiter(map(len, asks), np.int64, count)
    empty = (nb + na) == 0
    per_message = np.stack([nb, na, empty.astype(np.int64)], axis=1)
    per_level = per_message.sum(axis=1)
    # One run of messages per venue (they are sorted by venue): its levels share a layout (OKX strings, Deribit
    # numbers), so each level column is one C pass; the level lengths are read on each side's first level.
    venue_codes = columns["venue"].take(order).dictionary_encode().indices.to_numpy(zero_copy_only=False)
    cuts = [0, *(np.flatnonzero(np.diff(venue_codes)) + 1).tolist(), count]
    level_cuts = np.concatenate([[0], np.cumsum(per_level)])
    widths = [set(map(len, map(_FIRST, filter(None, chain(bids[a:b], asks[a:b]))))) for a, b in pairwise(cuts)]
    for i in np.flatnonzero(empty).tolist():
        bids[i] = _NO_LEVEL_SIDE  # a message without levels still gives one row (a null side)
    levels: list[Sequence[Any]] = list(chain.from_iterable(chain.from_iterable(zip(bids, asks, strict=False))))
    parts = [
        _level_columns(levels[level_cuts[a] : level_cuts[b]], w)
        for a, b, w in zip(cuts, cuts[1:], widths, strict=False)
    ]
    # the message of each level row, as a position in the unsorted messages: one take per message column
    index = order.take(pa.array(np.repeat(np.arange(count, dtype=np.int64), per_level)))
    codes = np.repeat(np.tile(np.arange(3, dtype=np.int64), count), per_message.ravel())
    arrays: dict[str, Any] = {_RENAMED.get(name, name): column.take(index) for name, column in columns.items()}
    arrays["side"] = _SIDES.take(pa.array(codes))
    for name in _LEVEL_COLUMNS:
        arrays[name] = parts[0][name] if len(parts) == 1 else pa.concat_arrays([part[name] for part in parts])
    arrays["date"] = pc.cast(arrays["exchange_ts"].cast(pa.timestamp("us")), pa.date32())
    return pa.Table.from_pydict({n: arrays[n] for n in s.BOOK_DELTAS_SCHEMA.names}, schema=s.BOOK_DELTAS_SCHEMA)


_LEVEL_COLUMNS = ("price", "size", "orders", "action")
_STRING_LIST = pa.list_(pa.string())
_BOOK_KEY = ("venue", "instrument", "channel")
_RENAMED = {"exchange_ts_ms": "exchange_ts", "receive_ts_us": "receive_ts"}


def _message_column(name: str, values: Sequence[Any]) -> pa.Array:
    """One per-message field as its bronze column (one value per message)."""
    if name == "exchange_ts_ms":
        return pc.multiply_checked(pa.array(values, pa.int64()), 1000).cast(s.TS)
    if name == "receive_ts_us":
        return pa.array(values, pa.int64()).cast(s.TS)
    return pa.array(values, s.BOOK_DELTAS_SCHEMA.field(name).type)


def _level_columns(levels: list[Sequence[Any]], widths: set[int]) -> dict[str, pa.Array]:
    """price, size, orders, action of ``levels`` (one venue's: one layout, so each column is one C pass)."""
    if widths == {4}:  # OKX [px, sz, "0", orders] strings: Arrow reads every level once, as a list of strings
        try:
            nested = pa.array(levels, _STRING_LIST)
            return {
                "price": pc.cast(pc.list_element(nested, 0), pa.float64()),
                "size": pc.cast(pc.list_element(nested, 1), pa.float64()),
                "orders": pc.cast(pc.list_element(nested, 3), pa.int64()),
                "action": pa.nulls(len(levels), pa.string()),
            }
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass  # a number not a string, a shorter level, a bad number: column by column below (it names it)
    return {
        "price": _numbers(list(map(_PRICE, levels)), pa.float64()),
        "size": _numbers(list(map(_SIZE, levels)), pa.float64()),
        "orders": _numbers(_field(levels, _ORDERS, 3, widths), pa.int64()),
        "action": pa.array(_field(levels, _ACTION, 4, widths), pa.string()),
    }


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
    # Both kinds in one venue's batch (ccxt re-serialised some numbers as strings)
    return pc.cast(pa.array([None if v is None else str(v) for v in values], pa.string()), kind)
