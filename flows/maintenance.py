"""The maintenance flow (scheduled daily): Delta compaction, vacuum and checkpoints, one coarse task per
table, a markdown artifact with the before/after file counts. Safe while the stream appends."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from pipeline.lake.location import resolve_lake
from pipeline.lake.maintenance import DEFAULT_RETENTION_HOURS, all_tables, maintain_table


@task(name="maintain-table")
def maintain_table_task(
    lake: str | None, key: str, target_mb: int, min_files: int, retention_hours: int
) -> dict[str, Any] | None:
    spec = next(s for s in all_tables() if s.key == key)
    report = maintain_table(
        resolve_lake(lake),
        spec,
        target_size=target_mb * 1024 * 1024,
        min_files=min_files,
        retention_hours=retention_hours,
    )
    if report is None:
        return None
    get_run_logger().info(report.line())
    return asdict(report)


@flow(name="maintenance", log_prints=True)
def maintenance_flow(
    lake: str | None = None,
    tables: list[str] | None = None,
    target_mb: int = 128,
    min_files: int = 4,
    retention_hours: int = DEFAULT_RETENTION_HOURS,
) -> dict[str, int]:
    """Compact, vacuum and checkpoint every table (or ``tables``, as ``layer/name``)."""
    keys = tables or [s.key for s in all_tables()]
    reports = [
        r for k in keys if (r := maintain_table_task(lake, k, target_mb, min_files, retention_hours)) is not None
    ]
    rows = "".join(
        f"| {r['key']} | {r['files_before']} | {r['files_after']} | {r['partitions_compacted']} | {r['vacuumed']} | {r['checkpoint_version']} | {'; '.join(r['errors']) or ''} |\n"
        for r in reports
    )
    create_markdown_artifact(
        key="maintenance",
        markdown="# Maintenance\n\n| table | files before | after | partitions compacted | vacuumed | checkpoint | errors |\n|---|---|---|---|---|---|---|\n"
        + rows,
        description="per table: files before and after compaction, partitions compacted, files vacuumed, checkpoint",
    )
    errors = [e for r in reports for e in r["errors"]]
    if errors:
        raise RuntimeError(f"maintenance finished with {len(errors)} error(s): {errors[:3]}")
    return {"tables": len(reports), "files_removed": sum(int(r["files_removed"]) for r in reports)}
