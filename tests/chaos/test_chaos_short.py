"""The chaos scenarios of `make chaos`, compressed to seconds for `make test`: a faulty soak, SIGKILLs, an
unwritable lake, maintenance and silver under load. Each reconciles silver with the simulator's ground truth.

The four run at the same time (each with its own simulator, stream process and lake), started by the first
test that needs one, so together they add about the time of the slowest.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from pipeline.chaos import Outcome, kills, maintenance, short_soak_plan, soak, unwritable

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Future[Outcome]]:
    root = tmp_path_factory.mktemp("chaos")
    quiet = lambda text: None  # noqa: E731 - the figures are asserted, not printed
    jobs = {
        "soak": lambda: soak(_dir(root, "soak"), short_soak_plan(), say=quiet),
        "kills": lambda: kills(_dir(root, "kills"), n=2, live_s=(1.0, 2.5), say=quiet),
        "unwritable": lambda: unwritable(_dir(root, "unwritable"), block_s=3.0, say=quiet),
        "maintenance": lambda: maintenance(_dir(root, "maintenance"), seconds=6.0, say=quiet),
    }
    pool = ThreadPoolExecutor(max_workers=len(jobs))
    futures = {name: pool.submit(job) for name, job in jobs.items()}
    pool.shutdown(wait=False)
    return futures


def _dir(root: Path, name: str) -> Path:
    (root / name).mkdir()
    return root / name


def _ok(outcome: Outcome) -> None:
    s = outcome.silver
    assert outcome.problems == [] and s.problems == [], outcome.problems + s.problems
    assert s.truth > 100 and s.rows == s.truth
    assert (s.missing, s.extra, s.duplicated, s.mismatched) == (0, 0, 0, 0)


def test_soak_with_drops_malformed_bursts_silence_loses_and_duplicates_nothing(outcomes) -> None:
    o = outcomes["soak"].result()
    _ok(o)
    f = o.faults
    assert f["drops"] >= 2 and f["silences"] == 1 and f["burst_trades"] > 1000
    assert f["duplicates_sent"] > 0 and f["out_of_order_sent"] > 0 and f["malformed_delivered"] > 0
    assert o.figures["rejects"] == f["malformed_delivered"]
    assert o.figures["gaps"] > 0 and o.figures["rest_trades"] > 0  # the drops did lose trades on the wire
    assert o.figures["rss_growth_pct"] < 10.0
    # Order books under faults (issue #15): every book message received is in bronze/book_deltas once per copy
    # received, and the breaks recorded are the faults injected (reconcile_books puts any other count in problems).
    b = o.books
    assert b is not None and b.received > 100 and b.stored == b.received and (b.missing, b.duplicated) == (0, 0)
    assert b.injected > 0 and b.breaks > 0


def test_sigkill_and_restart_lose_nothing_after_gap_filling(outcomes) -> None:
    o = outcomes["kills"].result()
    _ok(o)
    assert o.figures["restart_gaps"] > 0 and o.figures["rest_trades"] > 0


def test_an_unwritable_lake_spools_then_replays_everything(outcomes) -> None:
    o = outcomes["unwritable"].result()
    _ok(o)
    assert o.figures["spool_files_peak"] > 0 and o.figures["spool_files_left"] == 0 and o.figures["bronze_missing"] == 0


def test_compaction_and_silver_beside_the_stream_conflict_with_nothing(outcomes) -> None:
    o = outcomes["maintenance"].result()
    _ok(o)
    assert o.figures["files_compacted"] > 0 and o.figures["stream_writes_refused"] == 0 and o.figures["candles_1m"] > 0
