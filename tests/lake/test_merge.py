"""pipeline.lake.merge against real Delta tables on disk, including commits that lose a real race."""

from __future__ import annotations

import threading
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
from deltalake.exceptions import CommitFailedError

from pipeline.errors import LakeWriteError
from pipeline.lake import writer
from pipeline.lake.location import Lake
from pipeline.lake.merge import merge
from pipeline.lake.retry import CommitRetry
from pipeline.lake.tables import TableSpec

SCHEMA = pa.schema([("part", pa.string()), ("k", pa.string()), ("v", pa.int64()), ("note", pa.string())])
PROBE = TableSpec("silver", "merge_probe", SCHEMA, ("part",))
KEY = ("part", "k")


def rows(*items: tuple[str, str, int, str | None]) -> pa.Table:
    return pa.Table.from_pylist([dict(zip(SCHEMA.names, r, strict=True)) for r in items], schema=SCHEMA)


def table_rows(lake: Lake) -> list[tuple[Any, ...]]:
    return writer.read(lake, PROBE).sort("part", "k").select(SCHEMA.names).rows()


def version(lake: Lake) -> int:
    table = writer.open_table(lake, PROBE)
    assert table is not None
    return table.version()


def test_merge_creates_the_table_then_updates_matches_and_inserts_the_rest(lake: Lake) -> None:
    merge(lake, PROBE, rows(("a", "1", 1, "x"), ("b", "2", 2, "y")), KEY)
    metrics = merge(lake, PROBE, rows(("a", "1", 10, "x2"), ("b", "3", 3, None)), KEY)
    assert metrics["num_target_rows_updated"] == 1 and metrics["num_target_rows_inserted"] == 1
    assert table_rows(lake) == [("a", "1", 10, "x2"), ("b", "2", 2, "y"), ("b", "3", 3, None)]
    assert merge(lake, PROBE, rows(), KEY) == {}  # nothing to write: no commit
    assert version(lake) == 1


def test_update_sets_only_the_named_columns_and_insert_false_adds_nothing(lake: Lake) -> None:
    merge(lake, PROBE, rows(("a", "1", 1, "keep"), ("a", "2", 2, "keep")), KEY)
    partial = pa.table({"part": ["a", "a"], "k": ["1", "9"], "v": [100, 900]})  # like bronze/gaps' status update
    merge(lake, PROBE, partial, KEY, update=("v",), insert=False)
    assert table_rows(lake) == [("a", "1", 100, "keep"), ("a", "2", 2, "keep")]


def test_a_merge_that_loses_the_race_is_run_again_and_lands_its_rows_once(lake: Lake) -> None:
    merge(lake, PROBE, rows(("a", "1", 1, None), ("a", "2", 2, None)), KEY)
    stale = writer.open_table(lake, PROBE)  # writer A read version 0 ...
    merge(lake, PROBE, rows(("a", "2", 20, "B")), KEY)  # ... writer B rewrote the file A read
    conflicts: list[int] = []
    merge(lake, PROBE, rows(("a", "1", 10, "A"), ("a", "3", 3, "A")), KEY, handle=stale,
          on_conflict=lambda: conflicts.append(1))  # fmt: skip
    assert conflicts == [1]  # the first commit really failed, the second landed
    assert table_rows(lake) == [("a", "1", 10, "A"), ("a", "2", 20, "B"), ("a", "3", 3, "A")]
    assert stale is not None and stale.version() == version(lake) == 2


def test_when_every_try_loses_the_race_the_caller_gets_a_lake_write_error(lake: Lake) -> None:
    merge(lake, PROBE, rows(("a", "1", 1, None)), KEY)
    stale = writer.open_table(lake, PROBE)
    merge(lake, PROBE, rows(("a", "1", 2, "B")), KEY)
    with pytest.raises(LakeWriteError) as caught:
        merge(
            lake, PROBE, rows(("a", "1", 3, "A"), ("a", "4", 4, "A")), KEY, handle=stale, policy=CommitRetry(attempts=1)
        )
    message = str(caught.value)
    assert message.startswith("merge into silver/merge_probe failed: its Delta commit was refused 1 time(s) in a row")
    assert "last: Failed to commit transaction: Commit failed: a concurrent transaction" in message
    assert message.endswith("nothing was written") and "Help:" not in message
    assert isinstance(caught.value.__cause__, CommitFailedError)
    assert table_rows(lake) == [("a", "1", 2, "B")]  # the losing merge left nothing behind


def test_a_merge_that_cannot_succeed_is_not_retried_and_names_the_table(lake: Lake) -> None:
    merge(lake, PROBE, rows(("a", "1", 1, None)), KEY)
    conflicts: list[int] = []
    with pytest.raises(LakeWriteError, match=r"^merge into silver/merge_probe failed: \w+"):
        merge(lake, PROBE, rows(("a", "1", 1, None)), ("no_such_column",), on_conflict=lambda: conflicts.append(1))
    assert conflicts == []


def test_writers_in_threads_that_collide_each_land_their_rows_once(lake: Lake) -> None:
    merge(lake, PROBE, rows(("a", "shared", 0, None)), KEY)
    conflicts: list[int] = []
    writers = 4
    for round_no in range(1, 6):  # the threads start together; a round without any collision is rare
        barrier = threading.Barrier(writers)
        failures: list[BaseException] = []

        def write(
            i: int,
            round_no: int = round_no,
            barrier: threading.Barrier = barrier,
            failures: list[BaseException] = failures,
        ) -> None:
            barrier.wait()
            try:
                merge(lake, PROBE, rows(("a", "shared", round_no * 10 + i, None), ("a", f"r{round_no}-w{i}", i, None)), KEY,
                      policy=CommitRetry(attempts=10, initial_backoff_secs=0.01, max_backoff_secs=0.2),
                      on_conflict=lambda: conflicts.append(1))  # fmt: skip
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                failures.append(exc)

        threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert failures == []
        got = writer.read(lake, PROBE)
        assert got.height == 1 + round_no * writers and got["k"].n_unique() == got.height  # every row once
        shared = got.filter(pl.col("k") == "shared")["v"].item()
        assert shared in {round_no * 10 + i for i in range(writers)}  # one of this round's writers set it last
        if conflicts:
            break
    assert conflicts, "no two writers ever collided: the retry was not exercised"
