"""pipeline.lake.retry: which failures are tried again, and what the caller gets when they keep failing.
The conflicts are real: another writer commits between our read of the table and our commit."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError

from pipeline.errors import ConfigError, CryptolakeError, LakeWriteError
from pipeline.lake.retry import CommitRetry, retry_commit

FAST = CommitRetry(attempts=3, initial_backoff_secs=0.001, max_backoff_secs=0.01)


def _update(table: DeltaTable, v: int) -> None:
    source = pa.table({"k": [1], "v": [v]})
    table.merge(source, "t.k = s.k", source_alias="s", target_alias="t").when_matched_update_all().execute()


class RacedUpdate:
    """Reads the table, lets another writer rewrite the same row, then commits: a real lost race on each of
    the first ``losses`` calls."""

    def __init__(self, uri: str, losses: int) -> None:
        self.uri, self.losses, self.calls = uri, losses, 0

    def __call__(self) -> int:
        self.calls += 1
        ours = DeltaTable(self.uri)
        if self.calls <= self.losses:
            _update(DeltaTable(self.uri), -self.calls)  # the other writer commits first
        _update(ours, 100)
        return ours.version()


@pytest.fixture
def uri(tmp_path: Path) -> str:
    path = str(tmp_path / "t")
    write_deltalake(path, pa.table({"k": [1, 2], "v": [0, 0]}))
    return path


def test_a_lost_commit_is_run_again_on_a_fresh_snapshot(uri: str) -> None:
    raced = RacedUpdate(uri, losses=2)
    conflicts: list[int] = []
    version = retry_commit(raced, "update t", policy=FAST, on_conflict=lambda: conflicts.append(1))
    assert raced.calls == 3 and len(conflicts) == 2
    assert version == 3 and DeltaTable(uri).to_pyarrow_table().to_pydict() == {"k": [1, 2], "v": [100, 0]}


def test_after_the_last_try_the_caller_gets_a_lake_write_error_not_deltas(uri: str) -> None:
    raced = RacedUpdate(uri, losses=99)
    with pytest.raises(LakeWriteError) as caught:
        retry_commit(raced, "merge into bronze/gaps", policy=FAST)
    assert raced.calls == 3
    assert str(caught.value).startswith(
        "merge into bronze/gaps failed: its Delta commit was refused 3 time(s) in a row (a concurrent writer committed first"
    )
    assert "\n" not in str(caught.value)  # deltalake's multi-line "Help: ... isolation level" is left out
    assert isinstance(caught.value.__cause__, CommitFailedError)
    assert DeltaTable(uri).to_pyarrow_table().to_pydict()["v"][0] == -3  # ours never landed


def test_other_failures_are_not_retried(tmp_path: Path) -> None:
    calls: list[int] = []

    def open_missing() -> int:
        calls.append(1)
        return DeltaTable(str(tmp_path / "missing")).version()

    with pytest.raises(LakeWriteError, match=r"^compact bronze/trades failed: TableNotFoundError: "):
        retry_commit(open_missing, "compact bronze/trades", policy=FAST)
    assert calls == [1]


def test_our_own_errors_pass_through_unchanged() -> None:
    class Refused(CryptolakeError):
        pass

    def refuse() -> None:
        raise Refused("already clear")

    with pytest.raises(Refused, match=r"^already clear$"):
        retry_commit(refuse, "anything", policy=FAST)


def test_a_policy_that_cannot_work_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="attempts >= 1"):
        CommitRetry(attempts=0)
    with pytest.raises(ConfigError):
        CommitRetry(initial_backoff_secs=5, max_backoff_secs=1)
