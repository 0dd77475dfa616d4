"""Books in silver are incremental: any split of bronze/book_deltas into commits, with sessions imported
late or a session's later part committed before its earlier part, gives the same silver/book_snapshots,
book_segments and book_state as one run over everything; a second run writes nothing (issue #16)."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from pipeline.lake import writer
from pipeline.lake.location import Lake, resolve_lake
from pipeline.lake.tables import (
    BRONZE_BOOK_DELTAS,
    SILVER_BOOK_SEGMENTS,
    SILVER_BOOK_SNAPSHOTS,
    SILVER_BOOK_STATE,
)
from pipeline.silver import files
from pipeline.silver.books.step import BookSettings, books_pass
from pipeline.silver.handles import Handles
from tests.silver.book_kit import chain
from tests.silver_tables import LAKE_PROPERTY

T0 = 1_786_000_000_000
NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def scenario(seed: int) -> dict[str, list[tuple[Any, ...]]]:
    """Chains of one lake: X on the stream (a session, then its resubscription after a lost message),
    X again from a capture of the same hours (imported late), Y with a crossed book then a new snapshot."""
    rng = random.Random(seed)
    x1 = chain(rng, instrument="X", session="ws/X/1", t0_ms=T0, messages=40, lose=25)
    x2 = chain(rng, instrument="X", session="ws/X/2", t0_ms=x1[-1][4] + 500, messages=30, seq0=5000)
    cap = chain(rng, instrument="X", session="cap/X/1", t0_ms=T0 + 3000, messages=40, mid=30_010.0, seq0=70)
    y = chain(rng, instrument="Y", session="ws/Y/1", t0_ms=T0 + 800, messages=50, mid=100.0, cross_at=20)
    y += chain(rng, instrument="Y", session="ws/Y/1", t0_ms=y[-1][4] + 200, messages=20, mid=100.0, seq0=9000)
    return {"stream": sorted(x1 + x2 + y, key=lambda m: m[5]), "capture": cap}


def run_all(lake: Lake, max_rows: int | None = None) -> None:
    for _ in range(100):
        done = books_pass(Handles(lake), BookSettings(), run_id="t", now=NOW, max_rows=max_rows)
        if done is None or not done.more:
            return


def table(lake: Lake, spec: Any, key: list[str]) -> pl.DataFrame:
    df = files.scan(lake, Handles(lake).files(spec)).collect()
    return df.drop("bronze_version", "updated_ts", strict=False).sort(key)


def assert_same(a: Lake, b: Lake) -> None:
    snap_key = ["venue", "instrument", "channel", "ts"]
    assert table(a, SILVER_BOOK_SNAPSHOTS, snap_key).equals(table(b, SILVER_BOOK_SNAPSHOTS, snap_key))
    assert table(a, SILVER_BOOK_SEGMENTS, ["segment_id"]).equals(table(b, SILVER_BOOK_SEGMENTS, ["segment_id"]))
    state_key = ["venue", "instrument", "channel", "session"]
    assert table(a, SILVER_BOOK_STATE, state_key).equals(table(b, SILVER_BOOK_STATE, state_key))


def one_run(root: Any, messages: list[tuple[Any, ...]]) -> Lake:
    whole = resolve_lake(str(root / "whole"))
    writer.append_rows(whole, BRONZE_BOOK_DELTAS, messages)
    run_all(whole)
    return whole


@LAKE_PROPERTY
@given(
    seed=st.integers(0, 3),
    cuts=st.lists(st.integers(1, 190), min_size=1, max_size=4),
    late_after=st.integers(0, 4),
    swap_y=st.booleans(),
    max_rows=st.sampled_from([None, 150]),
)
def test_incremental_equals_one_run(tmp_path_factory, seed, cuts, late_after, swap_y, max_rows) -> None:
    root = tmp_path_factory.mktemp("books")
    chains = scenario(seed)
    stream, capture = chains["stream"], chains["capture"]
    bounds = sorted({c for c in cuts if c < len(stream)})
    parts = [stream[i:j] for i, j in zip([0, *bounds], [*bounds, len(stream)], strict=True)]
    if swap_y and len(parts) >= 2:  # a later part of the stream committed before an earlier one
        parts[0], parts[1] = parts[1], parts[0]
    parts.insert(min(late_after, len(parts)), capture)  # the capture imported between two runs
    inc = resolve_lake(str(root / "inc"))
    for part in parts:
        writer.append_rows(inc, BRONZE_BOOK_DELTAS, part)
        run_all(inc, max_rows)
    whole = one_run(root, stream + capture)
    assert_same(inc, whole)
    before = Handles(inc).table(SILVER_BOOK_SNAPSHOTS)
    assert before is not None
    version = before.version()
    run_all(inc)  # nothing new: nothing written
    after = Handles(inc).table(SILVER_BOOK_SNAPSHOTS)
    assert after is not None and after.version() == version


def test_the_scenario_has_what_the_property_needs(tmp_path) -> None:
    """The one-run result itself: the lost message and the crossed update end segments, the capture and the
    stream meet at the same instants (one row each), and no snapshot lies outside its segment's span."""
    chains = scenario(0)
    whole = one_run(tmp_path, chains["stream"] + chains["capture"])
    segs = table(whole, SILVER_BOOK_SEGMENTS, ["segment_id"])
    reasons = dict(zip(segs["segment_id"], segs["end_reason"], strict=True))
    assert reasons["ws/X/1#1"] == "chain" and reasons["ws/Y/1#1"] == "crossed"
    assert reasons["ws/Y/1#2"] is None and reasons["ws/X/2#1"] is None and reasons["cap/X/1#1"] is None
    snaps = table(whole, SILVER_BOOK_SNAPSHOTS, ["venue", "instrument", "channel", "ts"])
    assert snaps.filter(pl.col("instrument") == "X")["segment_id"].str.starts_with("cap/").any()
    assert snaps.filter(pl.col("instrument") == "X")["segment_id"].str.starts_with("ws/").any()
    j = snaps.join(segs.select("segment_id", "start_ts", "end_ts"), on="segment_id")
    assert j.height == snaps.height
    assert j.filter((pl.col("ts") < pl.col("start_ts")) | (pl.col("ts") >= pl.col("end_ts"))).height == 0
