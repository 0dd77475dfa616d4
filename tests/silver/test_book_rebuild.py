"""The rebuild's rules on hand-made chains with worked answers (issue #16): REST snapshots and the updates
around them, keep-alives, deletes of unknown levels, chains without sequence numbers, when a grid instant
is sampled, and a break bronze recorded (a checksum) ending a segment at its message."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from pipeline.lake.tables import BRONZE_BOOK_DELTAS, BRONZE_GAPS
from pipeline.silver.books import kernel
from pipeline.silver.books.rebuild import rebuild

T0 = 1_786_000_000_000  # ms, on the 1 s grid


def msg(t_ms: int, seq: int | None, prev: int | None, *, snap: bool = False, source: str = "ws",
        bids: Sequence[tuple[float, float]] = (), asks: Sequence[tuple[float, float]] = (), session: str = "s/1",
        rcv_us: int | None = None) -> tuple[Any, ...]:  # fmt: skip
    return (
        "okx", "spot", "BTC-USDT", "books", t_ms, rcv_us or t_ms * 1000 + 500, source, session, seq, prev, None,
        snap, [(p, s, None, None, None) for p, s in bids], [(p, s, None, None, None) for p, s in asks],
    )  # fmt: skip


def rows(*messages: tuple[Any, ...]) -> pl.DataFrame:
    assert BRONZE_BOOK_DELTAS.from_rows is not None
    return pl.DataFrame(BRONZE_BOOK_DELTAS.from_rows(list(messages)))


BOOK: dict[str, Any] = {"bids": [(100.0, 1.0), (99.0, 2.0)], "asks": [(101.0, 3.0), (102.0, 4.0)]}


def test_a_rest_snapshot_skips_older_updates_and_chains_the_first_newer_one() -> None:
    r = rebuild(
        rows(
            msg(T0, 6, 5, bids=[(98.0, 9.0)]),  # before any book: ignored
            msg(T0 + 50, 7, 6, source="rest", snap=True, **BOOK),  # REST snapshot at seq 7
            msg(T0 + 60, 7, 6, bids=[(97.0, 1.0)]),  # already in the snapshot: skipped
            msg(T0 + 100, 8, 6, bids=[(100.0, 0.0)]),  # prev 6 <= 7 < 8: applies
            msg(T0 + 200, 9, 8, asks=[(101.0, 5.0)]),
        ),
        interval_ms=0,
    )
    assert r.messages["status"].to_list() == [
        kernel.IGNORED, kernel.STARTED, kernel.SKIPPED_REST, kernel.APPLIED, kernel.APPLIED
    ]  # fmt: skip
    end = r.states.row(0, named=True)
    assert end["valid"] and end["last_seq"] == 9 and end["bid_px"] == [99.0] and end["ask_sz"] == [5.0, 4.0]


def test_a_rest_snapshot_the_updates_do_not_chain_onto_breaks() -> None:
    r = rebuild(
        rows(msg(T0, 7, 6, source="rest", snap=True, **BOOK), msg(T0 + 100, 9, 8, bids=[(99.5, 1.0)])),
        interval_ms=0,
    )
    assert r.messages["status"].to_list() == [kernel.STARTED, kernel.BROKE_REST]
    assert not r.states["valid"][0]


def test_keep_alives_unknown_deletes_and_chains_without_sequence_numbers() -> None:
    r = rebuild(
        rows(
            msg(T0, None, None, snap=True, **BOOK),
            msg(T0 + 100, None, None),  # a message without levels (one row, null side)
            msg(T0 + 200, None, None, bids=[(95.0, 0.0)], asks=[(101.0, 0.0)]),  # 95 was never there
            msg(T0 + 200, None, None, asks=[(101.5, 2.0)], rcv_us=(T0 + 200) * 1000 + 900),  # same ms: arrival
        ),
        interval_ms=0,
    )
    assert r.messages["status"].to_list() == [kernel.STARTED] + [kernel.APPLIED] * 3
    assert r.messages["levels"].to_list() == [4, 1, 2, 1]
    end = r.states.row(0, named=True)
    assert end["bid_px"] == [100.0, 99.0] and end["ask_px"] == [101.5, 102.0] and end["last_seq"] is None
    assert r.messages["best_ask_px"].to_list() == [101.0, 101.0, 102.0, 101.5]


def test_an_instant_is_sampled_once_a_later_message_confirms_it() -> None:
    r = rebuild(
        rows(
            msg(T0 + 300, 1, -1, snap=True, **BOOK),
            msg(T0 + 1000, 2, 1, bids=[(100.5, 1.0)]),  # exactly on the grid: the instant T0+1 s takes it...
            msg(T0 + 3500, 3, 2, asks=[(101.0, 0.0)]),  # ...once this one applies (and T0+2 s, T0+3 s too)
            msg(T0 + 4200, 5, 4, asks=[(103.0, 1.0)]),  # a lost message: T0+4 s is never sampled
        ),
        interval_ms=1000,
        depth=1,
    )
    s = r.samples
    assert s["ts"].dt.epoch("ms").to_list() == [T0 + 1000, T0 + 2000, T0 + 3000]
    assert s["bid_px"].to_list() == [[100.5]] * 3 and s["age_ms"].to_list() == [0, 1000, 2000]
    assert s["last_seq"].to_list() == [2, 2, 2]
    assert r.messages["status"][-1] == kernel.BROKE_CHAIN


def test_a_break_bronze_recorded_ends_the_segment_at_its_message() -> None:
    assert BRONZE_GAPS.from_rows is not None
    gap = pl.DataFrame(
        BRONZE_GAPS.from_rows(
            [
                (
                    "g1",
                    "okx",
                    "BTC-USDT",
                    "book",
                    T0 + 100,
                    T0 + 200,
                    2,
                    3,
                    "open",
                    0,
                    "checksum: books session s/1: checksum 1 sent, 2 rebuilt",
                )
            ]
        )
    )
    r = rebuild(
        rows(
            msg(T0, 1, -1, snap=True, **BOOK),
            msg(T0 + 100, 2, 1, bids=[(99.5, 1.0)]),
            msg(T0 + 200, 3, 2, bids=[(99.6, 1.0)]),
            msg(T0 + 300, 4, 3, bids=[(99.7, 1.0)]),
        ),
        gaps=gap,
        interval_ms=0,
    )
    assert r.messages["status"].to_list() == [kernel.STARTED, kernel.APPLIED, kernel.BROKE_GAP, kernel.IGNORED]
    assert r.messages["gap_id"][2] == "g1" and not r.states["valid"][0]
