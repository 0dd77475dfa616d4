"""Book messages (``BOOK_FIELDS`` tuples, one per message) exploded into ``bronze/book_deltas`` rows.

A parser hands over each message's levels as the venue sent them, so the hot path copies no level:
- a level is a sequence ``(price, size, _, orders, action)`` cut short where the venue has no more: OKX sends
  ``[px, sz, "0", orders]`` (strings; the third is a deprecated field), and a Deribit parser passes
  ``(price, amount, None, None, action)``;
- price and size may be strings (OKX, exactly as sent: the checksum was verified on them) or numbers.
A message with no level at all still gives one row with a null side, so its place in the chain stays visible.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.lake import schemas as s

_MESSAGE_COLUMNS = s.BOOK_FIELDS[:12]  # the per-message fields, repeated on each of its level rows


def book_deltas_table(rows: Sequence[tuple[Any, ...]]) -> pa.Table:
    """bronze/book_deltas rows from book messages (``BOOK_FIELDS`` order)."""
    take: list[int] = []  # message index of each level row
    sides: list[str | None] = []
    prices: list[Any] = []
    sizes: list[Any] = []
    orders: list[Any] = []
    actions: list[Any] = []
    for i, row in enumerate(rows):
        bids, asks = row[12], row[13]
        if not bids and not asks:
            take.append(i)
            sides.append(None)
            prices.append(None)
            sizes.append(None)
            orders.append(None)
            actions.append(None)
            continue
        for side, levels in (("bid", bids), ("ask", asks)):
            for level in levels or ():
                take.append(i)
                sides.append(side)
                prices.append(level[0])
                sizes.append(level[1])
                n = len(level)
                orders.append(level[3] if n > 3 else None)
                actions.append(level[4] if n > 4 else None)
    message = dict(zip(_MESSAGE_COLUMNS, zip(*rows, strict=False), strict=False)) if rows else {}
    index = pa.array(take, pa.int64())
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
    arrays["side"] = pa.array(sides, pa.string())
    arrays["price"] = _floats(prices)
    arrays["size"] = _floats(sizes)
    arrays["orders"] = _ints(orders)
    arrays["action"] = pa.array(actions, pa.string())
    arrays["date"] = pc.cast(arrays["exchange_ts"].cast(pa.timestamp("us")), pa.date32())
    return pa.Table.from_pydict({n: arrays[n] for n in s.BOOK_DELTAS_SCHEMA.names}, schema=s.BOOK_DELTAS_SCHEMA)


def _floats(values: list[Any]) -> pa.Array:
    # Strings (as sent) are parsed by Arrow in one pass; a value that is not a number raises, and the flush
    # turns the message's rows into rejects with the reason.
    if any(isinstance(v, str) for v in values):
        return pc.cast(pa.array([None if v is None else str(v) for v in values], pa.string()), pa.float64())
    return pa.array(values, pa.float64())


def _ints(values: list[Any]) -> pa.Array:
    if any(isinstance(v, str) for v in values):
        return pc.cast(pa.array([None if v is None else str(v) for v in values], pa.string()), pa.int64())
    return pa.array(values, pa.int64())
