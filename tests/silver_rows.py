"""Synthetic bronze rows for the silver tests (plain tuples in the bronze field orders)."""

from __future__ import annotations

import random

T0_MS = 1_786_536_000_000  # 2026-08-12 12:00:00 UTC
MIN_MS = 60_000


def trade(
    inst: str,
    trade_id: int,
    ts_ms: int,
    price: float,
    size: float,
    side: str = "buy",
    *,
    venue: str = "okx",
    market: str = "swap",
    source: str = "ws",
    seq: int | None = None,
) -> tuple:
    return (
        venue,
        market,
        inst,
        str(trade_id),
        price,
        size,
        side,
        ts_ms,
        ts_ms * 1000 + 5000,
        source,
        trade_id if seq is None else seq,
        1,
        None,
        None,
        None,
        None,
    )


def without_seq(row: tuple) -> tuple:
    """A trade row without the venue's sequence number (as REST may bring it)."""
    return row[:10] + (None,) + row[11:]


def trades(
    n: int,
    *,
    instruments: tuple[str, ...] = ("BTC-USDT-SWAP", "ETH-USDT-SWAP"),
    start_ms: int = T0_MS,
    span_ms: int = 3 * 3600 * 1000,
    seed: int = 7,
    first_id: int = 1000,
) -> list[tuple]:
    """``n`` trades spread over ``span_ms``, per instrument increasing ids and times, random prices."""
    rng = random.Random(seed)
    out = []
    per = n // len(instruments)
    for k, inst in enumerate(instruments):
        times = sorted(start_ms + rng.randrange(span_ms) for _ in range(per))
        for i, ts in enumerate(times):
            tid = first_id + k * 1_000_000 + i
            out.append(
                trade(
                    inst,
                    tid,
                    ts,
                    round(100 + 10 * k + rng.random() * 5, 2),
                    round(rng.random() * 3 + 0.01, 4),
                    rng.choice(("buy", "sell")),
                )
            )
    return out


def quote(
    inst: str,
    ts_ms: int,
    bid: float,
    ask: float,
    *,
    mark: float | None = None,
    mark_iv: float | None = None,
    delta: float | None = None,
    venue: str = "deribit",
    market: str = "option",
) -> tuple:
    return (
        venue,
        market,
        inst,
        "ticker",
        ts_ms,
        ts_ms * 1000 + 3000,
        "ws",
        None,
        bid,
        1.0,
        ask,
        2.0,
        None,
        None,
        None,
        mark,
        None,
        None,
        None,
        mark_iv,
        None,
        None,
        delta,
        None,
        None,
        None,
        None,
    )


def candle(
    inst: str,
    open_ms: int,
    o: float,
    h: float,
    low: float,
    c: float,
    vol: float,
    vol_ccy: float | None,
    vol_ccy_quote: float | None,
    *,
    market: str = "swap",
    confirm: bool | None = True,
    tf: str = "1m",
) -> tuple:
    return (
        "okx",
        market,
        inst,
        tf,
        open_ms,
        o,
        h,
        low,
        c,
        vol,
        vol_ccy,
        vol_ccy_quote,
        confirm,
        open_ms * 1000 + 70_000_000,
        "rest",
    )
