"""A silver run opens each Delta table once and takes the new bronze files from the commits since the
watermark, so its cost follows the new data, not the history; the result is that of a run from scratch."""

from __future__ import annotations

import collections
import os
from pathlib import Path

import deltalake
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.lake import writer
from pipeline.lake.location import resolve_lake
from pipeline.lake.tables import BRONZE_TRADES
from pipeline.silver import files, run_silver, writes
from pipeline.silver.handles import Handles
from tests.silver_rows import MIN_MS, T0_MS, trades
from tests.silver_tables import HOUR_MS, LAKE_PROPERTY, append_commits, assert_same_silver, bronze_commits, fill_hour


@pytest.fixture
def opened(monkeypatch):
    """(table, version) -> how many DeltaTables were constructed for it: the real class, only counted."""
    counts: collections.Counter = collections.Counter()
    real = deltalake.DeltaTable.__init__

    def counting(self, table_uri, *args, **kwargs):
        counts[("/".join(str(table_uri).rstrip("/").split("/")[-2:]), kwargs.get("version"))] += 1
        real(self, table_uri, *args, **kwargs)

    monkeypatch.setattr(deltalake.DeltaTable, "__init__", counting)
    return counts


def test_a_run_opens_each_table_once(lake, opened) -> None:
    for k in range(3):  # a history of several commits per table
        fill_hour(lake, 10_000 * (k + 1), T0_MS - (3 - k) * HOUR_MS, bad=k == 0)
    assert run_silver(lake, now_ms=T0_MS).ok
    fill_hour(lake, 90_000, T0_MS, bad=True)
    opened.clear()
    report = run_silver(lake, now_ms=T0_MS + HOUR_MS + 2 * MIN_MS)
    assert report.ok and report.written["silver/trades"] == 200 and report.written["silver/candles"] > 0
    assert report.bronze_rows["bronze/trades"] == 201  # only the new commit's rows were read
    assert opened[("bronze/trades", None)] == 1
    assert all(n == 1 for n in opened.values()), dict(opened)
    assert all(version is None for _, version in opened), "no old version replayed"


def test_new_files_come_from_the_commits_since_the_watermark(lake) -> None:
    for k in range(4):
        writer.append_rows(lake, BRONZE_TRADES, trades(10, start_ms=T0_MS + k * HOUR_MS, first_id=100 * (k + 1)))
    now = Handles(lake).files(BRONZE_TRADES)
    assert now.version == 3
    since1 = files.files_since(lake, now, 1)
    log = Path(lake.table_uri("bronze", "trades")) / "_delta_log"
    expected = {p for v in (2, 3) for p in _added(log / f"{v:020d}.json")}
    assert set(since1.paths) == expected and since1.rows == 20
    # Commits up to the watermark may be cleaned up: they are never read.
    for v in (0, 1):
        os.remove(log / f"{v:020d}.json")
    assert set(files.files_since(lake, now, 1).paths) == expected
    # A commit after the watermark that can no longer be read: everything is read again (correct, slower).
    os.remove(log / f"{2:020d}.json")
    assert files.files_since(lake, now, 1).paths == now.paths
    assert files.files_since(lake, now, 3).actions.height == 0


def _added(commit: Path) -> list[str]:
    import json

    return [json.loads(line)["add"]["path"] for line in commit.read_text().splitlines() if '"add"' in line]


def test_incremental_runs_equal_one_run_from_scratch(tmp_path) -> None:
    """Three runs over three commits, and one run over all of them: the same silver tables."""
    step, whole = resolve_lake(str(tmp_path / "step")), resolve_lake(str(tmp_path / "whole"))
    for k in range(3):
        fill_hour(step, 10_000 * (k + 1), T0_MS + k * HOUR_MS, bad=True)
        fill_hour(whole, 10_000 * (k + 1), T0_MS + k * HOUR_MS, bad=True)
        assert run_silver(step, now_ms=T0_MS + (k + 1) * HOUR_MS + 2 * MIN_MS, fail_share=0.5).ok
    assert run_silver(whole, now_ms=T0_MS + 3 * HOUR_MS + 2 * MIN_MS, fail_share=0.5).ok
    assert writes.read_watermarks(Handles(step))["bronze/trades"].version == 2
    assert_same_silver(step, whole)


def test_columns_the_log_says_are_all_null_read_as_nulls_and_the_rest_as_stored(lake) -> None:
    """A column every file of a partition holds only nulls in (by the log's statistics) is not decoded;
    the scan still gives exactly the stored rows, and a partition where one file has values reads them."""
    swaps = trades(20, first_id=100)
    with_iv = [r[:12] + (2000.0, 35.0, 0.61, None) for r in trades(6, first_id=900)]  # index, mark, iv set
    writer.append_rows(lake, BRONZE_TRADES, swaps)
    writer.append_rows(lake, BRONZE_TRADES, [("deribit", "option") + r[2:] for r in swaps[:5]])
    writer.append_rows(lake, BRONZE_TRADES, [("deribit", "option") + r[2:] for r in with_iv])
    fs = Handles(lake).files(BRONZE_TRADES)
    okx = fs.actions.filter(pl.col("partition.venue") == "okx")
    deribit = fs.actions.filter(pl.col("partition.venue") == "deribit")
    assert okx.height == 1 and deribit.height == 2
    cols = ["price", "index_price", "mark_price", "iv", "liquidation"]
    assert files._only_nulls(okx, cols) == ["index_price", "mark_price", "iv", "liquidation"]
    assert files._only_nulls(deribit, cols) == ["liquidation"]  # one of the two files has values: read both
    key = ["venue", "trade_id"]
    got = files.scan(lake, fs).collect().sort(key)
    stored = writer.read(lake, BRONZE_TRADES).select(got.columns).sort(key)
    assert got.equals(stored) and got.schema == stored.schema
    assert got.filter(pl.col("iv").is_not_null()).height == 6 and got["iv"].drop_nulls().unique().to_list() == [0.61]


@st.composite
def _runs(draw) -> list[tuple[int, dict]]:
    """2-4 silver runs at random times; before each, a commit to each bronze table up to that time."""
    n = draw(st.integers(2, 4))
    ends = sorted(draw(st.lists(st.integers(10 * MIN_MS, 3 * HOUR_MS), min_size=n, max_size=n, unique=True)))
    ends = [T0_MS + e for e in ends]
    return list(zip(ends, draw(bronze_commits(ends)), strict=True))


@LAKE_PROPERTY
@given(runs=_runs())
def test_incremental_runs_at_random_times_equal_one_run(tmp_path_factory, runs) -> None:
    """Runs whenever the schedule happens to fire, with late trades and REST copies arriving in between,
    leave the silver tables one run over everything leaves."""
    root = tmp_path_factory.mktemp("incremental")
    step, whole = resolve_lake(str(root / "step")), resolve_lake(str(root / "whole"))
    for now_ms, commits in runs:
        append_commits([step, whole], commits)
        assert run_silver(step, now_ms=now_ms, fail_share=1.0).ok
    assert run_silver(whole, now_ms=runs[-1][0], fail_share=1.0).ok
    again = run_silver(step, now_ms=runs[-1][0], fail_share=1.0)  # idempotent
    assert sum(again.written.values()) == 0, again.written
    assert_same_silver(step, whole)
