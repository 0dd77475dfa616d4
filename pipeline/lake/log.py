"""Reads of a Delta table's log: the add actions of a snapshot, and the files each commit added."""

from __future__ import annotations

import json
from collections.abc import Iterator

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable
from deltalake.fs import DeltaStorageHandler

from pipeline.lake.location import Lake


def add_actions(table: DeltaTable) -> pl.DataFrame:
    """One row per file of the snapshot: path, size_bytes, num_records, partition.*, min.*, max.*, null_count.*."""
    return pl.DataFrame(pa.table(table.get_add_actions(flatten=True)))


def adds_by_commit(lake: Lake, uri: str, first: int, last: int) -> Iterator[tuple[int, list[str] | None]]:
    """(version, paths of its add actions as the log spells them) for commits ``first``..``last`` in order,
    read one at a time; paths None for a commit that is gone or unreadable (and nothing after it).

    Read from the commit files themselves (deltalake has no call for "what did commit V add" that does not
    replay the log up to V): each line of ``_delta_log/<version>.json`` is one action, an add is
    ``{"add": {"path": ...}}`` (the Delta protocol's "Add File" action)."""
    store = DeltaStorageHandler(uri, lake.storage_options or None)
    for version in range(first, last + 1):
        try:
            text = store.open_input_file(f"_delta_log/{version:020d}.json").read()
            actions = [json.loads(line) for line in text.splitlines() if line.strip()]
        except Exception:  # noqa: BLE001 - a missing or unreadable commit: the caller falls back
            yield version, None
            return
        yield version, [a["add"]["path"] for a in actions if "add" in a]
