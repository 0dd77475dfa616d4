"""Keyed writes of the silver layer: insert-if-absent, upsert of changed bars, quarantine, watermarks.

Nothing here appends blindly. Bars are compared with what the table already holds for the same keys; only
new or changed bars are written, as a plain append when all of them are new (the common case: the next
closed minute) and as a Delta merge restricted to the touched partitions and time range otherwise (late
data restating a few bars). A re-run over the same input therefore writes nothing at all.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from deltalake import Schema, write_deltalake
from deltalake.transaction import AddAction, create_table_with_add_actions

from pipeline.errors import LakeWriteError
from pipeline.lake import writer
from pipeline.lake.location import Lake
from pipeline.lake.tables import SILVER_QUARANTINE, SILVER_WATERMARKS, TableSpec
from pipeline.silver import files


@dataclass(frozen=True)
class Written:
    inserted: int = 0
    updated: int = 0


def polars_schema(spec: TableSpec) -> pl.Schema:
    return pl.Schema(pl.from_arrow(spec.schema.empty_table()).schema)  # type: ignore[union-attr]


def conform(df: pl.DataFrame, spec: TableSpec) -> pl.DataFrame:
    schema = polars_schema(spec)
    return df.select(schema.names()).cast(dict(schema))


_SAFE_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# lz4: as fast to write as no compression at all, files about the size delta-rs' default snappy makes.
PARQUET_COMPRESSION = "lz4"


def _stat(value: object, dtype: pl.DataType) -> object:
    """A min/max value as the Delta log spells it (None: leave the column out of the stats)."""
    if value is None:
        return None
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone not in ("UTC", None):
            return None
        text = value.strftime("%Y-%m-%dT%H:%M:%S.%f")  # type: ignore[attr-defined]
        return text + "Z" if dtype.time_zone else text
    if dtype == pl.Date:
        return value.isoformat()  # type: ignore[attr-defined]
    if dtype.is_float():
        return float(value) if math.isfinite(value) else None  # type: ignore[arg-type]
    if dtype.is_integer() or dtype == pl.String:
        return value
    return None


def _file_stats(df: pl.DataFrame) -> str:
    """Delta file statistics (numRecords, minValues, maxValues, nullCount), exact to the microsecond, so
    that ``files.overlapping`` can prune on them like on the stats delta-rs writes."""
    ranged = [c for c, t in df.schema.items() if t == pl.String or t == pl.Date or t.is_numeric() or isinstance(t, pl.Datetime)]
    row = df.select(
        *(pl.col(c).min().alias(f"min\0{c}") for c in ranged),
        *(pl.col(c).max().alias(f"max\0{c}") for c in ranged),
        *(pl.col(c).null_count().alias(f"nul\0{c}") for c in df.columns),
    ).row(0, named=True)
    stats: dict[str, object] = {"numRecords": df.height, "minValues": {}, "maxValues": {}, "nullCount": {}}
    for name, value in row.items():
        kind, col = name.split("\0", 1)
        if kind == "nul":
            stats["nullCount"][col] = int(value)  # type: ignore[index]
            continue
        v = _stat(value, df.schema[col])
        if v is not None:
            stats["minValues" if kind == "min" else "maxValues"][col] = v  # type: ignore[index]
    return json.dumps(stats)


def _partition_value(value: object) -> str | None:
    text = value.isoformat() if isinstance(value, dt.date) else value
    return text if isinstance(text, str) and _SAFE_VALUE.match(text) else None


def append(lake: Lake, spec: TableSpec, rows: pl.DataFrame) -> int:
    """Append ``rows`` in one Delta commit, like ``writer.append`` but ~3x cheaper on big batches: polars
    writes the parquet files (in parallel, lz4) and deltalake only commits their add actions, with the
    statistics computed here. Object stores and unusual partition values take ``writer.append``."""
    rows = conform(rows, spec)
    if rows.height == 0:
        return 0
    parts = list(spec.partition_by)
    if not parts:
        groups = {(): rows}
    elif all(rows[c].n_unique() == 1 for c in parts):  # the usual batch: one partition, nothing to split
        groups = {tuple(rows[c][0] for c in parts): rows.drop(parts)}
    else:
        groups = rows.partition_by(parts, as_dict=True, include_key=False, maintain_order=True)
    values = {k: [_partition_value(v) for v in k] for k in groups}
    if not lake.is_local or any(v is None for vs in values.values() for v in vs):
        return writer.append(lake, spec, rows.to_arrow())
    uri = lake.table_uri(spec.layer, spec.name)
    root = Path(uri.removeprefix("file://"))
    actions: list[AddAction] = []
    written: list[Path] = []
    try:
        for key, group in groups.items():
            folder = "/".join(f"{c}={v}" for c, v in zip(parts, values[key], strict=True))
            rel = (folder + "/" if folder else "") + f"part-00000-{uuid.uuid4()}-c000.{PARQUET_COMPRESSION}.parquet"
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            written.append(path)
            group.write_parquet(path, compression=PARQUET_COMPRESSION, statistics=True)
            actions.append(AddAction(
                rel, path.stat().st_size, dict(zip(parts, values[key], strict=True)), int(time.time() * 1000), True,
                _file_stats(group),
            ))
        table = writer.open_table(lake, spec)
        if table is None:
            create_table_with_add_actions(
                uri, Schema.from_arrow(spec.schema), actions, mode="append", partition_by=parts or None,
                storage_options=lake.storage_options or None,
            )
        else:
            table.create_write_transaction(actions, mode="append", schema=spec.schema, partition_by=parts or None)
    except Exception as exc:  # noqa: BLE001
        for path in written:  # files no commit refers to: remove them (vacuum would, later)
            path.unlink(missing_ok=True)
        raise LakeWriteError(f"append to {spec.key} failed: {type(exc).__name__}: {exc}") from exc
    return rows.height


def upsert(lake: Lake, spec: TableSpec, rows: pl.DataFrame, existing: pl.DataFrame, key: tuple[str, ...]) -> Written:
    """Write the rows of ``rows`` that differ from ``existing`` (the table's current rows for those keys)."""
    rows = conform(rows, spec)
    if rows.height == 0:
        return Written()
    changed, updates = _diff(rows, conform(existing, spec), key)
    if changed.height == 0:
        return Written()
    if updates.height == 0:
        append(lake, spec, changed)
        return Written(inserted=changed.height)
    table = writer.open_table(lake, spec)
    assert table is not None  # updates imply existing rows
    # Literal partition values and key ranges in the predicate let delta-rs skip every other file.
    clauses = [f"t.{k} = s.{k}" for k in key]
    for part in spec.partition_by:
        values = changed[part].unique().to_list()
        if changed.schema[part] == pl.String:
            clauses.append(f"t.{part} IN ({', '.join(repr(v) for v in values)})")
    try:
        (
            table.merge(changed.to_arrow(), predicate=" AND ".join(clauses), source_alias="s", target_alias="t")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )
    except Exception as exc:  # noqa: BLE001
        raise LakeWriteError(f"merge into {spec.key} failed: {type(exc).__name__}: {exc}") from exc
    return Written(inserted=changed.height - updates.height, updated=updates.height)


FLOAT_RTOL = 1e-12  # float sums of the same trades read in another order differ in the last bits


def _diff(rows: pl.DataFrame, existing: pl.DataFrame, key: tuple[str, ...]) -> tuple[pl.DataFrame, pl.DataFrame]:
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
    lake: Lake, spec: TableSpec, time_col: str, lo: dt.datetime, hi: dt.datetime, where: pl.Expr | None = None
) -> pl.DataFrame:
    """The table's rows with ``lo <= time_col < hi`` (only files whose statistics overlap are read)."""
    fs = files.overlapping(files.current_files(lake, spec), time_col, lo, hi)
    lf = files.scan(lake, fs).filter((pl.col(time_col) >= lo) & (pl.col(time_col) < hi))
    return (lf.filter(where) if where is not None else lf).collect()


def quarantine(lake: Lake, rows: pl.DataFrame) -> int:
    """Append quarantine rows not already there (same table, rule, column and row): re-runs add nothing."""
    if rows.height == 0:
        return 0
    rows = rows.unique(["table", "rule", "column", "row"], maintain_order=True)
    known = files.scan(lake, files.current_files(lake, SILVER_QUARANTINE), ["table", "rule", "column", "row"])
    known = known.filter(pl.col("table").is_in(rows["table"].unique().implode())).collect()
    fresh = rows.join(known, on=["table", "rule", "column", "row"], how="anti", nulls_equal=True)
    return writer.append(lake, SILVER_QUARANTINE, conform(fresh, SILVER_QUARANTINE).to_arrow())


@dataclass(frozen=True)
class Watermark:
    version: int | None = None
    horizon: dt.datetime | None = None


def read_watermarks(lake: Lake) -> dict[str, Watermark]:
    df = writer.read(lake, SILVER_WATERMARKS)
    return {r["name"]: Watermark(r["version"], r["horizon"]) for r in df.iter_rows(named=True)}


def write_watermarks(lake: Lake, marks: dict[str, Watermark], run_id: str, now: dt.datetime) -> None:
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
    try:
        write_deltalake(
            lake.table_uri(SILVER_WATERMARKS.layer, SILVER_WATERMARKS.name),
            df.to_arrow(),
            mode="overwrite",
            storage_options=lake.storage_options or None,
        )
    except Exception as exc:  # noqa: BLE001
        raise LakeWriteError(f"writing silver/watermarks failed: {type(exc).__name__}: {exc}") from exc
