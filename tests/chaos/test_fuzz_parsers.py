"""Fuzzing every venue parser with mutated real frames (../shared/realdata): flipped, truncated and inserted
bytes, JSON values swapped for other types, absurd numbers. A parser may only return (rows or a Control) or
raise FrameError, adding nothing then; and through the import path (the same parse + rejects the stream
uses) every frame ends up parsed or in bronze/rejects, every row in bronze or in rejects.

``CRYPTOLAKE_FUZZ_EXAMPLES`` sets the hypothesis example count (`make chaos` runs 2,000; `make test` 150).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import FrameError
from pipeline.ingest.capture import CaptureWriter, iter_capture
from pipeline.ingest.importer import import_capture
from pipeline.lake import writer
from pipeline.lake.location import resolve_lake
from pipeline.lake.schemas import CANDLE_FIELDS, QUOTE_FIELDS, TRADE_FIELDS
from pipeline.lake.tables import BRONZE_CANDLES, BRONZE_QUOTES, BRONZE_REJECTS, BRONZE_TRADES
from pipeline.venues import deribit, okx
from pipeline.venues.base import Control, ParsedBatch

EXAMPLES = int(os.environ.get("CRYPTOLAKE_FUZZ_EXAMPLES", "150"))
REALDATA = Path(os.environ.get("CRYPTOLAKE_REALDATA") or Path(__file__).resolve().parents[2].parent / "shared" / "realdata")
VENUES = {"okx": okx, "deribit": deribit}

# Values a hostile or broken venue might put anywhere: other JSON types, absurd numbers as numbers and as
# strings (OKX sends numbers as strings), huge integers, path tricks, very long strings.
HOSTILE: list[Any] = [
    None, True, False, 0, -1, 1e308, -1e308, 5e-324, 2**63, 2**70, -(2**63) - 1, "", "nan", "NaN", "inf", "-inf",
    "1e999", "-0", "0", "-1", "1e308", "99999999999999999999999", "../../etc/passwd", "BTC/USDT", "x" * 5000, [], {},
    [None], {"value": 1}, "buy", "sell", "\u0000", "🚀",
]  # fmt: skip


def _frames(venue: str) -> list[str]:
    if not REALDATA.is_dir():
        pytest.skip(f"real recordings not found at {REALDATA}")
    out = []
    for path in sorted((REALDATA / venue).iterdir()):
        if ".rest." in path.name:
            continue
        out += [f.text for f in iter_capture(path) if f.direction == "recv"]
    assert len(out) > 100, f"too few {venue} frames in {REALDATA / venue}"
    return out


FRAMES = {v: _frames(v) for v in VENUES} if REALDATA.is_dir() else {}


def _leaves(node: Any, path: tuple = ()) -> list[tuple]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _leaves(v, (*path, k))] + [path]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _leaves(v, (*path, i))] + [path]
    return [path]


def _set(node: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    node[path[0]] = _set(node[path[0]], path[1:], value)
    return node


def mutate(text: str, rng: random.Random, steps: int) -> str:
    """Apply ``steps`` random mutations; the result is always a str (as a WebSocket text frame is)."""
    for _ in range(steps):
        kind = rng.randrange(6)
        data = text.encode()
        if kind == 0 and data:  # flip a bit
            i = rng.randrange(len(data))
            data = data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1 :]
        elif kind == 1:  # truncate
            data = data[: rng.randrange(len(data) + 1)]
        elif kind == 2:  # insert bytes
            i = rng.randrange(len(data) + 1)
            data = data[:i] + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8))) + data[i:]
        else:  # swap a JSON value for another type / an absurd number (the frame stays valid JSON)
            try:
                msg = orjson.loads(text)
            except orjson.JSONDecodeError:
                continue
            paths = _leaves(msg)
            msg = _set(msg, rng.choice(paths), rng.choice(HOSTILE))
            try:
                data = orjson.dumps(msg)
            except TypeError:  # 2**70 and friends: orjson refuses big ints, the stdlib writes them
                data = json.dumps(msg, ensure_ascii=False).encode()
        text = data.decode("utf-8", errors="replace")
    return text


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
    outcomes = [_check_one(venue, t) for t in FRAMES[venue]]
    assert outcomes.count("rows") > 50 and "rejected" not in outcomes


@pytest.mark.parametrize("venue", sorted(VENUES))
def test_mutated_frames_only_ever_give_rows_a_control_or_frame_error(venue: str) -> None:
    seen: dict[str, int] = {}

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(index=st.integers(0, len(FRAMES[venue]) - 1), seed=st.integers(0, 2**32), steps=st.integers(1, 3))
    def run(index: int, seed: int, steps: int) -> None:
        text = mutate(FRAMES[venue][index], random.Random(seed), steps)
        outcome = _check_one(venue, text)  # anything but FrameError escaping parse fails here
        seen[outcome] = seen.get(outcome, 0) + 1

    run()
    _count(sum(seen.values()))
    # The mutations must reach both sides, or the test proves little.
    assert seen.get("rejected", 0) > EXAMPLES // 10 and seen.get("rows", 0) + seen.get("control", 0) > EXAMPLES // 10, seen


@pytest.mark.parametrize("venue", sorted(VENUES))
def test_every_fuzzed_frame_is_in_bronze_or_rejects_after_import(venue: str, tmp_path: Path) -> None:
    """The import path (replay: parse, rejects verbatim; Arrow conversion, unconvertible rows to rejects) into a
    real Delta lake accounts for every frame and every row."""
    rng = random.Random(20260808 + len(venue))
    texts = [mutate(rng.choice(FRAMES[venue]), rng, rng.randrange(1, 4)) for _ in range(max(300, EXAMPLES))]
    _count(len(texts))
    expect = {"rejected": 0, "control": 0, "rows": 0, "empty": 0}
    rows = {"trades": 0, "quotes": 0, "candles": 0}
    for text in texts:
        expect[_check_one(venue, text)] += 1
        batch = ParsedBatch()
        try:
            VENUES[venue].parse(text, 0, batch, "capture")
        except FrameError:
            pass
        for table in rows:
            rows[table] += len(getattr(batch, table))
    capture = tmp_path / "fuzz.jsonl"
    with CaptureWriter(capture) as rec:
        for i, text in enumerate(texts):
            rec.write("wss://fuzz.invalid/ws", "recv", text, 1_786_540_435_000_000 + i)
    lake = resolve_lake(str(tmp_path / "lake"))
    result = import_capture(lake, capture, venue)
    assert result.frames == len(texts)
    stored = {t: writer.count_rows(lake, spec) for t, spec in (("trades", BRONZE_TRADES), ("quotes", BRONZE_QUOTES), ("candles", BRONZE_CANDLES))}
    rejects = writer.read(lake, BRONZE_REJECTS)
    unconvertible = rejects.filter(rejects["reason"].str.starts_with("unconvertible"))
    # every rejected frame is kept verbatim
    frame_rejects = rejects.filter(~rejects["reason"].str.starts_with("unconvertible"))
    assert frame_rejects.height == expect["rejected"]
    assert sorted(frame_rejects["frame"].to_list()) == sorted(
        t for t in texts if _check_one(venue, t) == "rejected"
    )
    # every parsed row is in bronze, or in rejects with the reason Arrow refused it
    assert sum(stored.values()) + unconvertible.height == sum(rows.values())
    assert expect["rejected"] > 0 and sum(stored.values()) > 0


def _count(n: int) -> None:
    """`make chaos` reports how many bad inputs were tried."""
    target = os.environ.get("CRYPTOLAKE_CHAOS_COUNT")
    if target:
        with open(target, "a") as fh:
            fh.write(f"{n}\n")
