"""Synthetic book chains for the silver book tests: ``BOOK_FIELDS`` messages as a parser emits them.

A chain starts with a snapshot of ``levels`` per side around a fixed mid on a tick grid; each update
resizes, adds or deletes a few levels on its own side of the mid (so a clean chain never crosses).
``lose`` drops the message at that index from the output (the next one's prev_seq then names a seq that
never came: a chain break); ``cross_at`` makes that update put a bid above the best ask.
"""

from __future__ import annotations

import random
from typing import Any

from pipeline.lake.schemas import BOOK_FIELDS

TICK = 0.5


def chain(
    rng: random.Random,
    *,
    instrument: str,
    session: str,
    t0_ms: int,
    messages: int,
    mid: float = 30_000.0,
    levels: int = 30,
    lose: int | None = None,
    cross_at: int | None = None,
    seq0: int = 1000,
    channel: str = "books",
) -> list[tuple[Any, ...]]:
    bids = {mid - TICK * (i + 1): float(rng.randint(1, 50)) for i in range(levels)}
    asks = {mid + TICK * (i + 1): float(rng.randint(1, 50)) for i in range(levels)}
    out = [_msg(instrument, channel, session, t0_ms, seq0, -1, True, list(bids.items()), list(asks.items()))]
    t, seq = t0_ms, seq0
    for i in range(1, messages):
        t += rng.choice((0, 40, 100, 100, 250, 700, 1300))
        b: list[tuple[float, float]] = []
        a: list[tuple[float, float]] = []
        for _ in range(rng.randint(1, 4)):
            side, book, sign = (b, bids, -1) if rng.random() < 0.5 else (a, asks, 1)
            if book and rng.random() < 0.3:
                price = rng.choice(sorted(book))
                side.append((price, 0.0))
                del book[price]
            else:
                price = mid + sign * TICK * rng.randint(1, levels + 10)
                size = float(rng.randint(1, 80))
                side.append((price, size))
                book[price] = size
        if i == cross_at:
            b.append((mid + TICK * 3, 5.0))
        msg = _msg(instrument, channel, session, t, seq + 1, seq, False, b, a)
        seq += 1
        if i != lose:
            out.append(msg)
    return out


def _msg(
    instrument: str,
    channel: str,
    session: str,
    t_ms: int,
    seq: int,
    prev: int,
    snapshot: bool,
    bids: list[tuple[float, float]],
    asks: list[tuple[float, float]],
) -> tuple[Any, ...]:
    row = {
        "venue": "okx", "market": "spot", "instrument": instrument, "channel": channel, "exchange_ts_ms": t_ms,
        "receive_ts_us": t_ms * 1000 + 700, "source": "ws", "session": session, "seq": seq, "prev_seq": prev,
        "checksum": None, "is_snapshot": snapshot,
        "bids": [(p, s, None, None, None) for p, s in bids], "asks": [(p, s, None, None, None) for p, s in asks],
    }  # fmt: skip
    return tuple(row[f] for f in BOOK_FIELDS)
