"""Keyed writes of the silver layer: insert-if-absent, upsert of changed bars, quarantine, watermarks.

Nothing here appends blindly. Bars are compared with what the table already holds for the same keys; only
new or changed bars are written, as a plain append when all of them are new (the common case: the next
closed minute) and as a Delta merge restricted to the touched partitions and time range otherwise (late
data restating a few bars). A re-run over the same input therefore writes nothing at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl
from deltalake import write_deltalake

from pipeline.errors import LakeWriteError
from pipeline.lake import fast_append, writer
from pipeline.lake.fast_append import conform, polars_schema
from pipeline.lake.merge import merge
from pipeline.lake.tables import SILVER_QUARANTINE, SILVER_WATERMARKS, TableSpec
from pipeline.silver import files
from pipeline.silver.handles import Handles


@dataclass(frozen=True)
class Written:
    inserted: int = 0
    updated: int = 0


def append(tables: Handles, spec: TableSpec, rows: pl.DataFrame | pl.LazyFrame) -> int:
    """Append ``rows`` in one Delta commit through the run's handle of the table (``fast_append``: polars
    writes the files, deltalake commits them)."""
    table = tables.table(spec)
    count = fast_append.append(tables.lake, spec, rows, handle=table)
    if table is None and count:
        tables.created(spec)
    return count


def upsert(
    tables: Handles, spec: TableSpec, rows: pl.DataFrame, existing: pl.DataFrame, key: tuple[str, ...]
) -> Written:
    """Write the rows of ``rows`` that differ from ``existing`` (the table's current rows for those keys)."""
    rows = conform(rows, spec)
    if rows.height == 0:
        return Written()
    changed, updates = diff(rows, conform(existing, spec), key)
    if changed.height == 0:
        return Written()
    if updates.height == 0:
        append(tables, spec, changed)
        return Written(inserted=changed.height)
    table = tables.table(spec)
    assert table is not None  # updates imply existing rows
    # Literal partition values in the predicate let delta-rs skip every other file.
    prune: list[str] = []
    for part in spec.partition_by:
        values = changed[part].unique().to_list()
        if changed.schema[part] == pl.String:
            prune.append(f"t.{part} IN ({', '.join(repr(v) for v in values)})")
    merge(tables.lake, spec, changed.to_arrow(), key, prune=prune, handle=table)
    return Written(inserted=changed.height - updates.height, updated=updates.height)


# How a stage writes keyed rows: (handles, table, rows, the table's rows for those keys, key) -> counts.
Upsert = Callable[[Handles, TableSpec, pl.DataFrame, pl.DataFrame, tuple[str, ...]], Written]

FLOAT_RTOL = 1e-12  # float sums of the same trades read in another order differ in the last bits


def diff(rows: pl.DataFrame, existing: pl.DataFrame, key: tuple[str, ...]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(rows that are new or differ from ``existing``, the subset of those that exist: updates)."""
    old = existing.unique(list(key), keep="last").with_columns(__exists=pl.lit(True))
    j = rows.join(old, on=list(key), how="left", suffix="__old", nulls_equal=True)
    same = []
    for c in rows.columns:
        if c in key:
            continue
        a, b = pl.col(c), pl.col(f"{c}__old")
        if rows.schema[c].is_float():
            near = (a - b).abs() <= pl.max_horizontal(a.abs(), b.abs()) * FLOAT_RTOL
            same.append(pl.when(a.is_null() | b.is_null()).then(a.is_null() & b.is_null()).otherwise(near))
        else:
            same.append(a.eq_missing(b))
    exists = pl.col("__exists").fill_null(False)
    j = j.with_columns(__exists=exists, __same=pl.all_horizontal(same) if same else pl.lit(True))
    changed = j.filter(~pl.col("__exists") | ~pl.col("__same"))
    updates = changed.filter(pl.col("__exists"))
    return changed.select(rows.columns), updates.select(rows.columns)


def existing_rows(
    tables: Handles, spec: TableSpec, time_col: str, lo: dt.datetime, hi: dt.datetime, where: pl.Expr | None = None
) -> pl.DataFrame:
    """The table's rows with ``lo <= time_col < hi`` (only files whose statistics overlap are read)."""
    fs = files.overlapping(tables.files(spec), time_col, lo, hi)
    lf = files.scan(tables.lake, fs).filter((pl.col(time_col) >= lo) & (pl.col(time_col) < hi))
    return (lf.filter(where) if where is not None else lf).collect()


def quarantine(tables: Handles, rows: pl.DataFrame) -> int:
    """Append quarantine rows not already there (same table, rule, column and row): re-runs add nothing."""
    if rows.height == 0:
        return 0
    rows = rows.unique(["table", "rule", "column", "row"], maintain_order=True)
    scan = files.scan(tables.lake, tables.files(SILVER_QUARANTINE), ["table", "rule", "column", "row"])
    known = scan.filter(pl.col("table").is_in(rows["table"].unique().implode())).collect()
    fresh = rows.join(known, on=["table", "rule", "column", "row"], how="anti", nulls_equal=True)
    table = tables.table(SILVER_QUARANTINE)
    count = writer.append(tables.lake, SILVER_QUARANTINE, conform(fresh, SILVER_QUARANTINE).to_arrow(), handle=table)
    if table is None and count:
        tables.created(SILVER_QUARANTINE)
    return count


@dataclass(frozen=True)
class Watermark:
    version: int | None = None
    horizon: dt.datetime | None = None


def read_watermarks(tables: Handles) -> dict[str, Watermark]:
    table = tables.table(SILVER_WATERMARKS)
    if table is None:
        return {}
    df = pl.DataFrame(table.to_pyarrow_table())
    return {r["name"]: Watermark(r["version"], r["horizon"]) for r in df.iter_rows(named=True)}


def write_watermarks(tables: Handles, marks: dict[str, Watermark], run_id: str, now: dt.datetime) -> None:
    """Replace the watermark table in one commit (the table is a handful of rows)."""
    df = pl.DataFrame(
        {
            "name": list(marks),
            "version": [m.version for m in marks.values()],
            "horizon": [m.horizon for m in marks.values()],
            "run_id": [run_id] * len(marks),
            "updated_ts": [now] * len(marks),
        },
        schema=polars_schema(SILVER_WATERMARKS),
    )
    overwrite(tables, SILVER_WATERMARKS, df)


def overwrite(tables: Handles, spec: TableSpec, df: pl.DataFrame) -> None:
    """Replace the whole of ``spec``'s small table (watermarks, book states, carries) with ``df`` in one commit,
    creating the table on the first write."""
    lake, table = tables.lake, tables.table(spec)
    try:
        write_deltalake(
            table if table is not None else lake.table_uri(spec.layer, spec.name),
            df.to_arrow(),
            mode="overwrite",
            storage_options=None if table is not None else (lake.storage_options or None),
        )
    except Exception as exc:  # noqa: BLE001
        raise LakeWriteError(f"writing {spec.key} failed: {type(exc).__name__}: {exc}") from exc
    if table is None:
        tables.created(spec)
