"""`make bench`'s summary: each figure against its baseline in words, the direction right for times, rates
and sizes, and the raw values kept."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def run_all() -> Iterator[ModuleType]:
    sys.path.insert(0, str(BENCH))  # the runner imports its sibling `versions` as a script would
    try:
        yield importlib.import_module("run_all")
    finally:
        sys.path.remove(str(BENCH))


def test_comparison_says_the_direction(run_all: ModuleType) -> None:
    c = run_all.comparison
    # a time: 12.5 s against 227 s is faster (the old column printed 0.06x)
    assert c("gold_full_publish_s", "12.5", "dump_bin_dump_all_s_quoted", "227") == (
        "18.2x faster than dump_bin_dump_all_s_quoted"
    )
    assert c("gold_full_publish_s", "454", "dump_bin_dump_all_s_quoted", "227") == (
        "2x slower than dump_bin_dump_all_s_quoted"
    )
    # a rate: more per second is faster
    assert c("ingest_trades_per_s", "408000", "ccxt_trades_per_s", "43000") == "9.49x faster than ccxt_trades_per_s"
    assert c("okx trades rows/s", "9300", "okx_limit_rows_per_s", "10000") == "1.08x slower than okx_limit_rows_per_s"
    # a size: less memory is smaller
    assert c("stream_rss_mb", "235", "target_rss_mb", "250") == "1.06x smaller than target_rss_mb"
    assert c("stream_rss_mb", "500", "target_rss_mb", "250") == "2x larger than target_rss_mb"
    # no direction known, or no number: said so, or nothing
    assert c("widgets", "3", "other_widgets", "6") == "0.5x other_widgets (figure / baseline)"
    assert c("stream_rss_mb", "n/a", "target_rss_mb", "250") == ""
    assert c("stream_rss_mb", "0", "target_rss_mb", "250") == ""


def test_summary_table_keeps_the_raw_values(run_all: ModuleType) -> None:
    table = run_all.summary_table(
        [
            ("bench_gold.py", "gold_full_publish_s 12.50 | baseline dump_bin_dump_all_s_quoted 227 | bars 1000"),
            ("bench_silver.py", "silver_trades_per_s 2247000 | pandas_trades_per_s 860000 | speedup 2.65"),
        ],
        ["bench_gold.py", "bench_silver.py", "bench_simulator.py"],
    )
    lines = table.splitlines()
    assert "comparison" in lines[0] and "ratio" not in lines[0]
    gold = next(line for line in lines if line.startswith("bench_gold"))
    assert "12.50" in gold and "227" in gold and "18.2x faster than dump_bin_dump_all_s_quoted" in gold
    silver = next(line for line in lines if line.startswith("bench_silver"))
    assert "2247000" in silver and "860000" in silver and "2.61x faster than pandas_trades_per_s" in silver
    assert "speedup 2.65" in silver
    assert any(line.startswith("bench_simulator") and "(no RESULT line)" in line for line in lines)
