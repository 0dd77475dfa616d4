"""The Delta tables of one silver run, each opened once and handed on.

Opening a table replays its log and listing its files turns every add action into a row: both grow with
the table's history, so a run does each once per table, and every read of the run sees that one snapshot
(a bronze table the stream appends to meanwhile does not change under the run). Writes go through the same
handle, which delta-rs moves to the version it committed.
"""

from __future__ import annotations

import threading

from deltalake import DeltaTable

from pipeline.lake import writer
from pipeline.lake.location import Lake
from pipeline.lake.tables import TableSpec
from pipeline.silver import files


class Handles:
    """The open tables and their file listings of one run (shared by its threads)."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self._tables: dict[str, DeltaTable | None] = {}
        self._files: dict[str, files.FileSet] = {}
        self._lock = threading.RLock()  # the run's threads share the handles: still one open each

    def table(self, spec: TableSpec) -> DeltaTable | None:
        """The open table (None: nothing was ever written to it)."""
        with self._lock:
            if spec.key not in self._tables:
                self._tables[spec.key] = writer.open_table(self.lake, spec)
            return self._tables[spec.key]

    def files(self, spec: TableSpec) -> files.FileSet:
        """The table's files at the version the run first listed them (callers list a table before writing it)."""
        with self._lock:
            if spec.key not in self._files:
                self._files[spec.key] = files.listing(self.lake, spec, self.table(spec))
            return self._files[spec.key]

    def created(self, spec: TableSpec) -> None:
        """A write created the table: open it again when next asked."""
        with self._lock:
            if self._tables.get(spec.key, False) is None:
                del self._tables[spec.key]
