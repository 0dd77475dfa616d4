"""Lake maintenance: compact the small files streaming appends leave, vacuum what compaction replaced,
write checkpoints.

Safe while the stream keeps appending:
- compaction (Delta ``OPTIMIZE``) rewrites files without changing data; a concurrent blind append does
  not conflict with it, and if the optimize commit does lose a race it is retried on a fresh snapshot
  (``pipeline.lake.retry``; the stream never retries because of us: its appends only add files);
- vacuum only deletes *tombstoned* files (``full=False``) older than the retention, never files that are
  not in the log yet, so a flush that is writing its Parquet file while we vacuum cannot lose it. The
  retention has a floor (``MIN_RETENTION_HOURS``) so a reader that started on an older snapshot (silver,
  gold) still finds its files.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable

from pipeline.errors import ConfigError, LakeWriteError
from pipeline.lake import tables as catalogue
from pipeline.lake import writer
from pipeline.lake.location import Lake
from pipeline.lake.retry import retry_commit
from pipeline.lake.tables import TableSpec

log = logging.getLogger(__name__)

DEFAULT_TARGET_SIZE = 128 * 1024 * 1024  # bytes per compacted file: Delta's usual target
DEFAULT_RETENTION_HOURS = 168  # one week: readers and time travel keep working over that window
MIN_RETENTION_HOURS = 1  # below this a long silver/gold read could lose files under its feet


@dataclass
class TableMaintenance:
    """What one maintenance pass did to one table."""

    key: str
    files_before: int = 0
    files_after: int = 0
    partitions_compacted: int = 0
    files_removed: int = 0
    files_added: int = 0
    vacuumed: int = 0
    checkpoint_version: int | None = None
    conflicts_retried: int = 0
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"{self.key:<22} files {self.files_before:>6} -> {self.files_after:<6} compacted {self.partitions_compacted} partitions "
            f"(-{self.files_removed} +{self.files_added}), vacuumed {self.vacuumed}, checkpoint v{self.checkpoint_version}"
            + (f", retried {self.conflicts_retried} conflicts" if self.conflicts_retried else "")
            + (f", ERRORS: {'; '.join(self.errors)}" if self.errors else "")
        )


def all_tables() -> list[TableSpec]:
    """Every table of the catalogue (new tables are picked up without touching this module)."""
    seen: dict[str, TableSpec] = {}
    for value in vars(catalogue).values():
        if isinstance(value, TableSpec):
            seen.setdefault(value.key, value)
    return [seen[k] for k in sorted(seen)]


def small_file_partitions(table: DeltaTable, spec: TableSpec, target_size: int, min_files: int) -> list[dict[str, str]]:
    """Partitions (as {column: value}) holding at least ``min_files`` files smaller than half the target."""
    # get_add_actions returns an arro3 table; pyarrow reads it through the Arrow C stream interface.
    actions = pa.table(table.get_add_actions(flatten=True)).to_pydict()
    counts: dict[tuple[tuple[str, str], ...], int] = defaultdict(int)
    for i, size in enumerate(actions["size_bytes"]):
        if size is None or size >= target_size // 2:
            continue
        part = tuple(
            (c, _partition_text(actions.get(f"partition.{c}", [None] * (i + 1))[i])) for c in spec.partition_by
        )
        counts[part] += 1
    return [dict(p) for p, n in sorted(counts.items()) if n >= min_files]


def _partition_text(value: Any) -> str:
    # Delta stores partition values as strings; get_add_actions hands back typed ones (dates, ints).
    return "" if value is None else str(value)


def compact_partition(
    lake: Lake, spec: TableSpec, partition: dict[str, str], target_size: int, report: TableMaintenance
) -> None:
    """OPTIMIZE one partition, on a fresh snapshot each try (``lake.retry``: again if a concurrent commit
    wins the race). A failure goes to the report: the files stay small, the data stays right."""
    filters = [(col, "=", val) for col, val in partition.items()] or None

    def compact() -> dict[str, Any]:
        table = writer.open_table(lake, spec)
        assert table is not None
        # the table's own codec and encodings: delta-rs' defaults would rewrite book_deltas as Snappy
        return table.optimize.compact(
            partition_filters=filters, target_size=target_size, writer_properties=writer.writer_properties(spec)
        )

    def conflict() -> None:
        report.conflicts_retried += 1

    try:
        metrics = retry_commit(compact, f"compact {spec.key} {partition or 'table'}", on_conflict=conflict)
    except LakeWriteError as exc:
        report.errors.append(str(exc))
        return
    report.partitions_compacted += 1 if metrics.get("numFilesRemoved") else 0
    report.files_removed += int(metrics.get("numFilesRemoved", 0))
    report.files_added += int(metrics.get("numFilesAdded", 0))


def maintain_table(
    lake: Lake,
    spec: TableSpec,
    *,
    target_size: int = DEFAULT_TARGET_SIZE,
    min_files: int = 4,
    retention_hours: int = DEFAULT_RETENTION_HOURS,
    vacuum: bool = True,
    checkpoint: bool = True,
) -> TableMaintenance | None:
    """Compact, vacuum and checkpoint one table; None if the table does not exist."""
    if retention_hours < MIN_RETENTION_HOURS:
        raise ConfigError("retention_hours", f"{retention_hours} h is below the {MIN_RETENTION_HOURS} h floor",
                          "readers on an older snapshot would lose files; use 1 or more")  # fmt: skip
    table = writer.open_table(lake, spec)
    if table is None:
        return None
    report = TableMaintenance(spec.key, files_before=len(table.file_uris()))
    for partition in small_file_partitions(table, spec, target_size, min_files):
        compact_partition(lake, spec, partition, target_size, report)
    table = writer.open_table(lake, spec)
    assert table is not None
    if vacuum:
        try:
            # full=False: only files the log tombstoned, never a flush's file that is not committed yet.
            report.vacuumed = len(
                table.vacuum(
                    retention_hours=retention_hours, dry_run=False, enforce_retention_duration=False, full=False
                )
            )
        except Exception as exc:  # noqa: BLE001 - a failed vacuum leaves extra files, never wrong data
            report.errors.append(f"vacuum: {type(exc).__name__}: {exc}")
        table = writer.open_table(lake, spec)
        assert table is not None
    if checkpoint:
        try:
            table.create_checkpoint()
            table.cleanup_metadata()  # log files older than the table's logRetentionDuration (30 days)
            report.checkpoint_version = table.version()
        except Exception as exc:  # noqa: BLE001 - a missing checkpoint only slows reads down
            report.errors.append(f"checkpoint: {type(exc).__name__}: {exc}")
    report.files_after = len(table.file_uris())
    return report


def maintain_lake(
    lake: Lake,
    *,
    tables: list[str] | None = None,
    target_size: int = DEFAULT_TARGET_SIZE,
    min_files: int = 4,
    retention_hours: int = DEFAULT_RETENTION_HOURS,
    vacuum: bool = True,
    checkpoint: bool = True,
) -> list[TableMaintenance]:
    """Maintain every existing table (or the named ``layer/name`` keys); one report per table."""
    specs = all_tables()
    if tables:
        known = {s.key: s for s in specs}
        unknown = [t for t in tables if t not in known]
        if unknown:
            raise ConfigError("tables", f"unknown table(s) {', '.join(unknown)}", "known: " + ", ".join(known))
        specs = [known[t] for t in tables]
    out = []
    for spec in specs:
        report = maintain_table(lake, spec, target_size=target_size, min_files=min_files, retention_hours=retention_hours,
                                vacuum=vacuum, checkpoint=checkpoint)  # fmt: skip
        if report is not None:
            log.info("maintenance: %s", report.line())
            out.append(report)
    return out
