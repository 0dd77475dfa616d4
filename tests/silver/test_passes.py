"""A backlog larger than max_rows is done in passes of whole commits, each committed with its watermarks:
the silver tables equal one pass's, late trades in a later commit restate their bars, a crash between
passes keeps the passes done, and a table-level failure stops the run instead of looping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.errors import ConfigError
from pipeline.lake import writer
from pipeline.lake.location import resolve_lake
from pipeline.lake.tables import BRONZE_TRADES, SILVER_TRADES
from pipeline.silver import files, run_silver, writes
from pipeline.silver import run as silver_run
from pipeline.silver.handles import Handles
from tests.silver_rows import MIN_MS, T0_MS, trade, trades, without_seq
from tests.silver_tables import HOUR_MS, LAKE_PROPERTY, append_commits, assert_same_silver, bronze_commits, fill_hour

NOW_MS = T0_MS + 4 * HOUR_MS + 2 * MIN_MS


def _backlog(lake) -> None:
    """Four hours in four commits per bronze table; the third also brings late trades for hour 0 (new ids
    and REST copies of ids already there), so a later pass restates bars an earlier one published."""
    # (without a venue sequence, as REST may bring them: ids above hour 0's would break sequence_order)
    late = [
        without_seq(trade("BTC-USDT-SWAP", 50_000 + i, T0_MS + 60_000 * i + 17, 99.5, 0.5, source="rest"))
        for i in range(5)
    ]
    # (received two hours after the stream's copies, as a backfill would: the stream's copies stay)
    copies = [
        r[:8] + (r[8] + 2 * HOUR_MS * 1000, "rest") + r[10:]
        for r in trades(200, start_ms=T0_MS, span_ms=HOUR_MS, first_id=10_000)[:7]
    ]
    for k in range(4):
        fill_hour(lake, 10_000 * (k + 1), T0_MS + k * HOUR_MS, bad=k == 1, extra=late + copies if k == 2 else [])


def test_files_since_takes_whole_commits_up_to_max_rows(lake) -> None:
    for k in range(4):
        writer.append_rows(lake, BRONZE_TRADES, trades(10, start_ms=T0_MS + k * HOUR_MS, first_id=100 * (k + 1)))
    now = Handles(lake).files(BRONZE_TRADES)
    first = files.files_since(lake, now, None, max_rows=25)
    assert (first.version, first.rows) == (1, 20)
    rest = files.files_since(lake, now, first.version, max_rows=25)
    assert (rest.version, rest.rows) == (3, 20) and set(rest.paths).isdisjoint(first.paths)
    assert (
        files.files_since(lake, now, None, max_rows=5).version,
        files.files_since(lake, now, 1, max_rows=5).rows,
    ) == (0, 10)
    assert files.files_since(lake, now, None, max_rows=40).paths == now.paths  # it all fits: no log read


def test_a_backlog_in_passes_equals_one_pass(tmp_path) -> None:
    passes, whole = resolve_lake(str(tmp_path / "passes")), resolve_lake(str(tmp_path / "whole"))
    _backlog(passes)
    _backlog(whole)
    one = run_silver(whole, now_ms=NOW_MS, fail_share=0.5)
    lines: list[str] = []
    several = run_silver(
        passes, now_ms=NOW_MS, fail_share=0.5, max_rows=250, progress=lambda r: lines.append(r.progress_line())
    )
    assert one.ok and several.ok and one.passes == 1 and several.passes == 4  # one trades commit a pass
    assert [line.split(": ", 1)[1].split("(")[0] for line in lines] == [f"pass {k} committed " for k in (1, 2, 3)]
    assert "bronze/trades v2" in lines[-1]
    assert several.bronze_rows == one.bronze_rows and several.written["silver/trades"] == one.written["silver/trades"]
    assert several.duplicates == one.duplicates == 7
    assert several.updated["silver/candles"] > 0  # the late hour-0 trades restated bars of the first pass
    assert several.watermarks == one.watermarks
    assert_same_silver(passes, whole)
    assert run_silver(passes, now_ms=NOW_MS, max_rows=250).written.get("silver/trades", 0) == 0  # nothing left


def test_a_crash_between_passes_keeps_the_passes_done(tmp_path, monkeypatch) -> None:
    crashed, whole = resolve_lake(str(tmp_path / "crashed")), resolve_lake(str(tmp_path / "whole"))
    _backlog(crashed)
    _backlog(whole)
    real, calls = silver_run._one_pass, []

    def dies_in_the_third_pass(ctx, report):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("the machine went away")
        return real(ctx, report)

    monkeypatch.setattr(silver_run, "_one_pass", dies_in_the_third_pass)
    with pytest.raises(OSError):
        run_silver(crashed, now_ms=NOW_MS, fail_share=0.5, max_rows=250)
    monkeypatch.undo()
    assert writes.read_watermarks(Handles(crashed))["bronze/trades"].version == 1  # two passes committed
    assert writer.read(crashed, SILVER_TRADES).height == 400
    again = run_silver(crashed, now_ms=NOW_MS, fail_share=0.5, max_rows=250)
    assert again.ok and again.passes == 2 and again.bronze_rows["bronze/trades"] == 200 + 12 + 200
    assert run_silver(whole, now_ms=NOW_MS, fail_share=0.5).ok
    assert_same_silver(crashed, whole)


def test_a_table_level_failure_stops_the_passes(lake) -> None:
    _backlog(lake)
    report = run_silver(lake, now_ms=NOW_MS, fail_share=0.5, max_rows=200)  # pass 2 holds the bad row
    assert report.ok and report.passes == 4
    lake2 = resolve_lake(str(lake.root) + "-strict")
    _backlog(lake2)
    strict = run_silver(lake2, now_ms=NOW_MS, fail_share=0.001, max_rows=250)
    assert not strict.ok and strict.passes == 2 and [f.rule for f in strict.fatal] == ["failing_share"]
    assert writes.read_watermarks(Handles(lake2))["bronze/trades"].version == 0  # the failed pass wrote nothing


@pytest.mark.parametrize("bad", [0, -5, 2.5, True])
def test_max_rows_must_be_a_positive_whole_number(lake, bad) -> None:
    with pytest.raises(ConfigError, match="max_rows"):
        run_silver(lake, max_rows=bad)


@LAKE_PROPERTY
@given(
    commits=st.integers(2, 5).flatmap(lambda n: bronze_commits([T0_MS + 3 * HOUR_MS] * n)), max_rows=st.integers(1, 120)
)
def test_any_backlog_in_passes_equals_one_pass(tmp_path_factory, commits, max_rows) -> None:
    root = tmp_path_factory.mktemp("passes")
    passes, whole = resolve_lake(str(root / "passes")), resolve_lake(str(root / "whole"))
    for commit in commits:
        append_commits([passes, whole], commit)
    several = run_silver(passes, now_ms=NOW_MS, fail_share=1.0, max_rows=max_rows)
    one = run_silver(whole, now_ms=NOW_MS, fail_share=1.0)
    assert several.ok and one.ok and one.passes == 1
    assert several.bronze_rows == one.bronze_rows and several.duplicates == one.duplicates
    assert several.watermarks == one.watermarks
    assert_same_silver(passes, whole)
