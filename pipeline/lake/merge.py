"""The one keyed Delta merge of the lake (silver upserts, bronze/gaps status, silver/instruments).

Source rows that match a target row on ``key`` update it (every column, or the ones named); the others
are inserted (unless ``insert=False``). A merge reads a snapshot before it commits, so it can lose the
race to a concurrent writer: ``pipeline.lake.retry`` runs it again on a fresh snapshot, and every failure
reaches the caller as ``LakeWriteError``. Running it again is safe because the merge is keyed: a row that
landed once is matched, not inserted twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable

from pipeline.lake import writer
from pipeline.lake.location import Lake
from pipeline.lake.retry import DEFAULT_COMMIT_RETRY, CommitRetry, retry_commit
from pipeline.lake.tables import TableSpec


def merge(
    lake: Lake,
    spec: TableSpec,
    source: pa.Table,
    key: Sequence[str],
    *,
    update: Sequence[str] | None = None,
    insert: bool = True,
    prune: Sequence[str] = (),
    handle: DeltaTable | None = None,
    commit_properties: CommitProperties | None = None,
    policy: CommitRetry = DEFAULT_COMMIT_RETRY,
    on_conflict: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Merge ``source`` into the table in one commit; returns delta-rs' merge metrics
    (``num_target_rows_updated``, ``num_target_rows_inserted``, ...).

    ``update``: the columns a match sets from the source (None: all). ``prune``: extra predicate clauses
    on the target (``t.date IN ('2026-05-01')``) that let delta-rs skip every other file. ``handle``: the
    caller's open table, written through (delta-rs moves it to the version it committed) and brought up to
    date before a retry. A table that does not exist yet is created with the source rows when ``insert``.
    ``on_conflict`` is called before each retry (counters).
    """
    if source.num_rows == 0:
        return {}
    predicate = " AND ".join([f"t.{k} = s.{k}" for k in key] + list(prune))
    attempts = 0

    def attempt() -> dict[str, Any]:
        nonlocal attempts
        attempts += 1
        table = handle if handle is not None else writer.open_table(lake, spec)
        if table is None:
            return {"num_target_rows_inserted": writer.append(lake, spec, source)} if insert else {}
        if handle is not None and attempts > 1:
            table.update_incremental()  # the snapshot that lost the race is stale
        builder = table.merge(
            source, predicate=predicate, source_alias="s", target_alias="t", commit_properties=commit_properties
        )
        if update is None:
            builder = builder.when_matched_update_all()
        elif update:
            builder = builder.when_matched_update({c: f"s.{c}" for c in update})
        if insert:
            builder = builder.when_not_matched_insert_all()
        return dict(builder.execute())

    return retry_commit(attempt, f"merge into {spec.key}", policy=policy, on_conflict=on_conflict)
