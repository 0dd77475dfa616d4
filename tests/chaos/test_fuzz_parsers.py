"""Fuzzing every venue parser with mutated real frames (../shared/realdata): flipped, truncated and inserted
bytes, JSON values swapped for other types, absurd numbers. A parser may only return (rows or a Control) or
raise FrameError, adding nothing then; and through the import path (the same parse + rejects the stream
uses) every frame ends up parsed or in bronze/rejects, every row in bronze or in rejects.

``CRYPTOLAKE_FUZZ_EXAMPLES`` sets the hypothesis example count (`make chaos` runs 2,000; `make test` 150).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import FrameError
from pipeline.ingest.capture import CaptureWriter
from pipeline.ingest.importer import import_capture
from pipeline.lake import writer
from pipeline.lake.location import resolve_lake
from pipeline.lake.schemas import CANDLE_FIELDS, QUOTE_FIELDS, TRADE_FIELDS
from pipeline.lake.tables import (
    BRONZE_BOOK_DELTAS,
    BRONZE_CANDLES,
    BRONZE_DERIVATIVES,
    BRONZE_LIQUIDATIONS,
    BRONZE_QUOTES,
    BRONZE_REJECTS,
    BRONZE_TRADES,
)
from pipeline.venues import deribit, okx
from pipeline.venues.base import Control, ParsedBatch
from tests.frame_mutations import frames_or_skip, mutate, real_frames

EXAMPLES = int(os.environ.get("CRYPTOLAKE_FUZZ_EXAMPLES", "150"))
VENUES = {"okx": okx, "deribit": deribit}
FRAMES = real_frames(VENUES)


WIDTH = {"trades": len(TRADE_FIELDS), "quotes": len(QUOTE_FIELDS), "candles": len(CANDLE_FIELDS)}


def _check_one(venue: str, text: str) -> str:
    """Parse one frame; returns "rejected" | "control" | "rows" | "empty" or fails the test."""
    batch = ParsedBatch()
    try:
        control = VENUES[venue].parse(text, 1_786_540_435_000_000, batch, "ws")
    except FrameError as exc:
        assert batch.row_count() == 0, f"FrameError but rows were added: {text[:300]!r}"
        assert exc.reason and len(exc.reason) > 5
        return "rejected"
    assert control is None or isinstance(control, Control)
    for table in ("trades", "quotes", "candles"):
        for row in getattr(batch, table):
            assert isinstance(row, tuple) and len(row) == WIDTH[table], f"bad {table} row {row!r}"
            assert row[0] == venue
    if control is not None:
        return "control"
    return "rows" if batch.row_count() else "empty"


@pytest.mark.parametrize("venue", sorted(VENUES))
def test_every_real_frame_parses_cleanly(venue: str) -> None:
    outcomes = [_check_one(venue, t) for t in frames_or_skip(FRAMES, venue)]
    assert outcomes.count("rows") > 50 and "rejected" not in outcomes


@pytest.mark.parametrize("venue", sorted(VENUES))
def test_mutated_frames_only_ever_give_rows_a_control_or_frame_error(venue: str) -> None:
    seen: dict[str, int] = {}

    frames = frames_or_skip(FRAMES, venue)

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(index=st.integers(0, len(frames) - 1), seed=st.integers(0, 2**32), steps=st.integers(1, 3))
    def run(index: int, seed: int, steps: int) -> None:
        text = mutate(frames[index], random.Random(seed), steps)
        outcome = _check_one(venue, text)  # anything but FrameError escaping parse fails here
        seen[outcome] = seen.get(outcome, 0) + 1

    run()
    _count(sum(seen.values()))
    # The mutations must reach both sides, or the test proves little.
    assert seen.get("rejected", 0) > EXAMPLES // 10 and seen.get("rows", 0) + seen.get("control", 0) > EXAMPLES // 10, (
        seen
    )


@pytest.mark.parametrize("venue", sorted(VENUES))
def test_every_fuzzed_frame_is_in_bronze_or_rejects_after_import(venue: str, tmp_path: Path) -> None:
    """The import path (replay: parse, rejects verbatim; Arrow conversion, unconvertible rows to rejects) into a
    real Delta lake accounts for every frame and every row."""
    rng = random.Random(20260808 + len(venue))
    texts = [
        mutate(rng.choice(frames_or_skip(FRAMES, venue)), rng, rng.randrange(1, 4)) for _ in range(max(300, EXAMPLES))
    ]
    _count(len(texts))
    expect = {"rejected": 0, "control": 0, "rows": 0, "empty": 0}
    rows = {"trades": 0, "quotes": 0, "candles": 0, "derivatives": 0, "liquidations": 0}
    book_rows = book_rejects = 0  # a book message is one row per level in bronze, or one reject if Arrow refuses it
    for text in texts:
        expect[_check_one(venue, text)] += 1
        batch = ParsedBatch()
        try:
            VENUES[venue].parse(text, 0, batch, "capture")
        except FrameError:
            pass
        for table in rows:
            rows[table] += len(getattr(batch, table))
        for message in batch.books:
            try:
                book_rows += BRONZE_BOOK_DELTAS.from_rows([message]).num_rows  # type: ignore[misc]  # a callable field
            except (ArithmeticError, ValueError, TypeError):  # pyarrow's errors are these too (overflow, bad cast)
                book_rejects += 1
    capture = tmp_path / "fuzz.jsonl"
    with CaptureWriter(capture) as rec:
        for i, text in enumerate(texts):
            rec.write("wss://fuzz.invalid/ws", "recv", text, 1_786_540_435_000_000 + i)
    lake = resolve_lake(str(tmp_path / "lake"))
    result = import_capture(lake, capture, venue)
    assert result.frames == len(texts)
    stored = {
        t: writer.count_rows(lake, spec)
        for t, spec in (
            ("trades", BRONZE_TRADES),
            ("quotes", BRONZE_QUOTES),
            ("candles", BRONZE_CANDLES),
            ("derivatives", BRONZE_DERIVATIVES),
            ("liquidations", BRONZE_LIQUIDATIONS),
        )
    }
    rejects = writer.read(lake, BRONZE_REJECTS)
    unconvertible = rejects.filter(rejects["reason"].str.starts_with("unconvertible"))
    # every rejected frame is kept verbatim
    frame_rejects = rejects.filter(~rejects["reason"].str.starts_with("unconvertible"))
    assert frame_rejects.height == expect["rejected"]
    assert sorted(frame_rejects["frame"].to_list()) == sorted(t for t in texts if _check_one(venue, t) == "rejected")
    # every parsed row is in bronze, or in rejects with the reason Arrow refused it
    assert sum(stored.values()) + unconvertible.height == sum(rows.values()) + book_rejects
    assert writer.count_rows(lake, BRONZE_BOOK_DELTAS) == book_rows
    assert expect["rejected"] > 0 and sum(stored.values()) > 0


def _count(n: int) -> None:
    """`make chaos` reports how many bad inputs were tried."""
    target = os.environ.get("CRYPTOLAKE_CHAOS_COUNT")
    if target:
        with open(target, "a") as fh:
            fh.write(f"{n}\n")
