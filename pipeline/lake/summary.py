"""A one-screen view of the lake: every known table with its rows, files and Delta version."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.lake import writer
from pipeline.lake.location import Lake
from pipeline.lake.tables import ALL_TABLES, TableSpec


@dataclass(frozen=True)
class TableSummary:
    key: str
    rows: int
    files: int
    version: int | None


def summarize(lake: Lake, specs: tuple[TableSpec, ...] = ALL_TABLES) -> list[TableSummary]:
    out = []
    for spec in specs:
        table = writer.open_table(lake, spec)
        if table is None:
            out.append(TableSummary(spec.key, 0, 0, None))
            continue
        actions = table.get_add_actions(flatten=True)
        rows = sum(int(n or 0) for n in actions.column("num_records").to_pylist())
        out.append(TableSummary(spec.key, rows, actions.num_rows, table.version()))
    return out


def print_summary(lake: Lake) -> None:
    print(f"lake {lake.root}")
    print(f"  {'table':<22} {'rows':>12} {'files':>7} {'version':>8}")
    for s in summarize(lake):
        version = "-" if s.version is None else str(s.version)
        print(f"  {s.key:<22} {s.rows:>12,} {s.files:>7} {version:>8}")
