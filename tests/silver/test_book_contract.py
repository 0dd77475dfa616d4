"""The silver/book_snapshots contract: a good snapshot passes, each broken rule fails under its own name and
the row goes to quarantine with that rule (issue #16)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
import pytest

from pipeline.lake.tables import SILVER_BOOK_SNAPSHOTS
from pipeline.silver import writes
from pipeline.silver.books import snapshots

T = dt.datetime(2026, 8, 12, 19, 31, 25, tzinfo=dt.UTC)
GOOD: dict[str, Any] = {
    "venue": "okx", "instrument": "BTC-USDT", "channel": "books", "ts": T, "segment_id": "s/1#1",
    "bid_px": [100.0, 99.5, 99.0], "bid_sz": [1.0, 2.0, 3.0], "ask_px": [100.5, 101.0], "ask_sz": [4.0, 5.0],
    "last_seq": 7, "last_ts": T - dt.timedelta(milliseconds=250), "age_ms": 250, "date": T.date(),
}  # fmt: skip

BROKEN = [
    ({"ask_px": [99.5, 101.0]}, "book_not_crossed"),
    ({"ask_px": [100.0, 101.0]}, "book_not_crossed"),  # a bid at the ask is crossed too
    ({"bid_px": [100.0, 99.0, 99.5]}, "bid_prices_strictly_descending"),
    ({"bid_px": [100.0, 100.0, 99.0]}, "bid_prices_strictly_descending"),
    ({"ask_px": [101.0, 100.5]}, "ask_prices_strictly_ascending"),
    ({"bid_sz": [1.0, 0.0, 3.0]}, "sizes_positive"),
    ({"ask_sz": [4.0, -1.0]}, "sizes_positive"),
    ({"ask_sz": [4.0]}, "prices_positive_and_levels_complete"),
    ({"bid_px": [100.0, 99.5, -1.0]}, "prices_positive_and_levels_complete"),
    ({"age_ms": 999}, "age_matches_last_message"),
    ({"age_ms": -5, "last_ts": T + dt.timedelta(milliseconds=5)}, "age_ms:greater_than_or_equal_to(0)"),
]


def frame(*rows: dict[str, Any]) -> pl.DataFrame:
    return writes.conform(pl.DataFrame(list(rows)), SILVER_BOOK_SNAPSHOTS)


def test_a_good_snapshot_and_a_one_sided_book_pass() -> None:
    one_sided = GOOD | {"ts": T + dt.timedelta(seconds=1), "ask_px": [], "ask_sz": [], "age_ms": 1250}
    res = snapshots.checked(frame(GOOD, one_sided), run_id="r", detected=T)
    assert res.good.height == 2 and res.quarantine.height == 0 and not res.failures


@pytest.mark.parametrize(("change", "rule"), BROKEN, ids=[r for _, r in BROKEN])
def test_each_broken_rule_is_quarantined_by_name(change: dict[str, Any], rule: str) -> None:
    bad = GOOD | {"ts": T + dt.timedelta(seconds=1)} | change
    if "age_ms" not in change:
        bad["age_ms"] = 1250
    res = snapshots.checked(frame(GOOD, bad), run_id="r", detected=T)
    assert res.good.height == 1 and res.good["ts"][0] == T  # the good row goes on
    assert rule in set(res.quarantine["rule"])
    assert set(res.quarantine["table"]) == {"silver/book_snapshots"}
    assert all(f.rule == rule or f.rule in set(res.quarantine["rule"]) for f in res.failures)
    assert not any(f.fatal for f in res.failures)  # rows quarantined, the table still written


def test_two_books_of_one_instant_keep_the_freshest() -> None:
    stale = GOOD | {"segment_id": "cap/1#1", "age_ms": 900, "last_ts": T - dt.timedelta(milliseconds=900)}
    rows = snapshots.best_per_key(frame(stale, GOOD))
    assert rows.height == 1 and rows["segment_id"][0] == "s/1#1"
