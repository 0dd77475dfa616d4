"""Book messages (``BOOK_FIELDS`` tuples, one per message) exploded into ``bronze/book_deltas`` rows.

A parser hands over each message's levels as the venue sent them, so the hot path copies no level:
- a level is a sequence ``(price, size, _, orders, action)`` cut short where the venue has no more: OKX sends
  ``[px, sz, "0", orders]`` (strings; the third is a deprecated field), and a Deribit parser passes
  ``(price, amount, None, None, action)``;
- price and size may be strings (OKX, exactly as sent: the checksum was verified on them) or numbers.
A message with no level at all still gives one row with a null side, so its place in the chain stays visible.

Rows come grouped by book (venue, instrument, channel; books in the order they first appear in the batch), each
book's messages in their order, so a file holds each chain in one run and its seq and clock columns
delta-encode to almost nothing (bronze bytes per level row 14.2 -> 10.6 on the book benchmark's frames, with
``TableSpec.delta_columns``). Readers order by seq, time and row within a chain, never across chains.

Speed (the book benchmark's flush): Python touches each message once and each level only inside C loops; the
grouping is a stable numpy argsort of one code per book (Arrow's hash of the key, no string compared); each
venue's levels are read apart (one layout per venue, so a mixed batch takes no slow path): OKX's as lists of
strings by Arrow in one pass, others column by column with ``map(itemgetter)``; strings become numbers in Arrow's
casts, and the per-message columns are spread over the level rows with one ``take``. Against the session-6
start (ungrouped rows), same runs: 0.52 -> 0.46 us a level row on OKX frames, 0.88 -> 0.66 on OKX and Deribit
mixed, 0.67 -> 0.95 on Deribit's alone (1.8 levels a message: the grouping's cost per message shows there).
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


def book_deltas_table(rows: Sequence[tuple[Any, ...]]) -> pa.Table:
    """bronze/book_deltas rows from book messages (``BOOK_FIELDS`` order), grouped by book."""
    message = dict(zip(_MESSAGE_COLUMNS, zip(*rows, strict=False), strict=False)) if rows else {}
    columns = {name: _message_column(name, message.get(name, ())) for name in _MESSAGE_COLUMNS}
    # Books in the order they first appear, each book's messages in theirs: one code per book (Arrow's hash of the
    # joined key, numbered by first appearance) and a stable argsort of the codes; no string is compared.
    key = pc.binary_join_element_wise(*(columns[k] for k in _BOOK_KEY), "\x1f")
    books = pc.fill_null(key.dictionary_encode().indices, -1).to_numpy()
    order = pa.array(np.argsort(books, kind="stable"))
    rows = list(map(rows.__getitem__, order.to_numpy()))
    count = len(rows)
    # One pass over the messages (a message carries 1.8 levels on Deribit: several C passes cost more there), the
    # levels of each venue's run kept apart: one layout per venue (OKX strings, Deribit numbers), so each level
    # column is one C pass; the level lengths are read on each side's first level.
    levels: list[Sequence[Any]] = []
    extend = levels.extend
    runs: list[int] = []  # per message: bid levels, ask levels, 1 if it has none (its null-side row)
    parts: list[dict[str, pa.Array]] = []
    widths: set[int] = set()
    venue, first = (rows[0][0] if rows else None), 0
    for row in rows:
        if row[0] != venue:
            parts.append(_level_columns(levels[first:], widths))
            venue, first, widths = row[0], len(levels), set()
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
    parts.append(_level_columns(levels[first:] if first else levels, widths))
    per_message = np.asarray(runs, np.int64).reshape(-1, 3) if rows else np.zeros((0, 3), np.int64)
    per_level = per_message.sum(axis=1)
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
