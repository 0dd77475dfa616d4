"""Filling bronze for the silver tests one hour at a time, and comparing the silver tables of two lakes."""

from __future__ import annotations

import polars as pl
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from pipeline.lake import writer
from pipeline.lake.tables import (
    BRONZE_CANDLES,
    BRONZE_QUOTES,
    BRONZE_TRADES,
    SILVER_CANDLES,
    SILVER_QUARANTINE,
    SILVER_QUOTE_BARS,
    SILVER_TRADES,
)
from tests.silver_rows import MIN_MS, T0_MS, candle, quote, trade, trades, without_seq

HOUR_MS = 3_600_000
# Each example builds two lakes and runs silver on both (~1-2 s): a few per suite run, no shrinking.
LAKE_PROPERTY = settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    phases=[Phase.explicit, Phase.generate],
)


def fill_hour(lake, first_id: int, start_ms: int, *, bad: bool = False, extra: list[tuple] = ()) -> None:
    """One commit to each bronze table: 200 trades over the hour (plus ``extra`` trades and, with ``bad``,
    one with a negative price), five option quotes, one exchange candle."""
    rows = trades(200, start_ms=start_ms, span_ms=HOUR_MS, first_id=first_id) + list(extra)
    if bad:  # one row for quarantine
        rows.append(trade("BTC-USDT-SWAP", first_id + 999_999, start_ms + 5, -1.0, 1.0))
    writer.append_rows(lake, BRONZE_TRADES, rows)
    writer.append_rows(
        lake, BRONZE_QUOTES, [quote("BTC-1SEP26-60000-C", start_ms + 1000 * i, 0.05, 0.06) for i in range(5)]
    )
    writer.append_rows(lake, BRONZE_CANDLES, [candle("SOL-USDT-SWAP", start_ms, 10.0, 11.0, 9.0, 10.5, 5.0, 0.5, 5.2)])


def assert_same_silver(a_lake, b_lake) -> None:
    """The same silver trades, candles and quote bars (floats up to the order of summation), and the same rows
    quarantined by the price rule (a row's sequence_order verdict depends on the batch it came in)."""
    tables = [(SILVER_TRADES, ["instrument", "trade_id"]), (SILVER_CANDLES, ["instrument", "timeframe", "open_time"])]
    if writer.open_table(a_lake, SILVER_QUOTE_BARS) or writer.open_table(b_lake, SILVER_QUOTE_BARS):
        tables.append((SILVER_QUOTE_BARS, ["instrument", "open_time"]))
    for spec, key in tables:
        a, b = (writer.read(x, spec).sort(key) for x in (a_lake, b_lake))
        assert a.height == b.height > 0, spec.key
        floats = [c for c, t in a.schema.items() if t.is_float()]
        assert a.drop(floats).equals(b.drop(floats)), spec.key
        for c in floats:  # sums of the same rows in another order differ in the last bits at most
            assert ((a[c] - b[c]).abs() <= b[c].abs() * 1e-12).fill_null(a[c].is_null() & b[c].is_null()).all(), (
                spec.key,
                c,
            )
    q = [
        writer.read(x, SILVER_QUARANTINE)
        .filter(pl.col("rule").str.starts_with("price"))
        .select("table", "rule", "row")
        .sort("row")
        for x in (a_lake, b_lake)
    ]
    assert q[0].height > 0 and q[0].equals(q[1])


@st.composite
def trade_commits(draw, ends_ms: list[int] | None = None) -> list[list[tuple]]:
    """Commits of trades at random times of three hours from T0 (a later commit may go back in time), some
    with REST copies of trades an earlier commit holds (received later, as a backfill would); the first
    also holds one row for quarantine. ``ends_ms``: one commit per end, its trades no later than it
    (default: 2-5 commits over the whole three hours)."""
    ends = ends_ms if ends_ms is not None else [T0_MS + 3 * HOUR_MS] * draw(st.integers(2, 5))
    out: list[list[tuple]] = []
    next_id = 1000
    for k, end in enumerate(ends):
        rows = []
        for _ in range(draw(st.integers(1, 60))):
            inst = draw(st.sampled_from(("BTC-USDT-SWAP", "ETH-USDT-SWAP")))
            ts = T0_MS + draw(st.integers(0, end - T0_MS - 1))
            price, size = draw(st.integers(100, 200)) / 2, draw(st.integers(1, 40)) / 8
            # without a venue sequence: with random times, ids would break sequence_order batch by batch
            rows.append(without_seq(trade(inst, next_id, ts, price, size, draw(st.sampled_from(("buy", "sell"))))))
            next_id += 1
        earlier = [r for c in out for r in c if r[4] > 0]
        for r in draw(st.lists(st.sampled_from(earlier), max_size=5, unique=True)) if earlier else []:
            rows.append(r[:8] + (r[8] + (k + 1) * HOUR_MS * 1000, "rest") + r[10:])
        if k == 0:
            rows.append(trade("BTC-USDT-SWAP", 1, T0_MS + 5, -1.0, 1.0))  # one row for quarantine
        out.append(rows)
    return out


@st.composite
def bronze_commits(draw, ends_ms: list[int]) -> list[dict]:
    """One commit to each bronze table per end: ``trade_commits``' trades, exchange candles of random closed
    minutes (SOL without trades, BTC with) and option quotes, none later than the end."""
    out = []
    for end, rows in zip(ends_ms, draw(trade_commits(ends_ms)), strict=True):
        minutes = draw(st.lists(st.integers(0, (end - T0_MS) // MIN_MS - 2), max_size=5, unique=True))
        insts = draw(
            st.lists(st.sampled_from(("SOL-USDT-SWAP", "BTC-USDT-SWAP")), min_size=len(minutes), max_size=len(minutes))
        )
        bars = [
            candle(i, T0_MS + m * MIN_MS, 10.0, 11.0, 9.0, 10.5, 5.0, 0.5, 5.2)
            for i, m in zip(insts, minutes, strict=True)
        ]
        quotes = [
            quote("BTC-1SEP26-60000-C", T0_MS + t, 0.05, 0.06)
            for t in draw(st.lists(st.integers(0, end - T0_MS - 1), max_size=5))
        ]
        out.append({BRONZE_TRADES: rows, BRONZE_CANDLES: bars, BRONZE_QUOTES: quotes})
    return out


def append_commits(lakes: list, commits: dict) -> None:
    """The same commits (a table -> rows mapping, empty ones skipped) to every lake."""
    for spec, rows in commits.items():
        for lake in lakes if rows else []:
            writer.append_rows(lake, spec, rows)
