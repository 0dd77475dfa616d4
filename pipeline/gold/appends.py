"""Did a silver table change since a version only by appending newer rows? Read from the Delta log alone.

Gold publishes incrementally when its sources only gained rows after what it already wrote; anything else (a
removed file: a merge restating rows, a compaction; an added file reaching back into published history; a
version the log no longer has) means the published dataset may differ, and the caller rebuilds in full.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl
from deltalake import DeltaTable

from pipeline.lake.location import Lake
from pipeline.lake.tables import TableSpec
from pipeline.lake.writer import open_table


def only_appended(
    lake: Lake,
    spec: TableSpec,
    since_version: int,
    files: Callable[[DeltaTable], pl.DataFrame],
    fresh: pl.Expr,
) -> bool:
    """True when ``spec`` at its current version differs from ``since_version`` only by added files that all
    satisfy ``fresh`` (evaluated on ``files(table)``: one row per add action, with a ``path`` column)."""
    table = open_table(lake, spec)
    if table is None or since_version < 0:
        return False
    if table.version() == since_version:
        return True
    try:
        old = DeltaTable(table.table_uri, version=since_version, storage_options=lake.storage_options or None)
    except Exception:  # noqa: BLE001 - a vacuumed or unreadable log: be safe, rebuild
        return False
    now, before = files(table), files(old)
    if set(before["path"].to_list()) - set(now["path"].to_list()):
        return False
    added = now.filter(~pl.col("path").is_in(before["path"].to_list()))
    return added.is_empty() or bool(added.select(fresh.all()).item())
