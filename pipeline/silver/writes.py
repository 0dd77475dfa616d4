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
from typing import TypeVar

import polars as pl
import pyarrow.parquet as pq
from deltalake import Schema, write_deltalake
from deltalake.transaction import AddAction, create_table_with_add_actions

from pipeline.errors import LakeWriteError
from pipeline.lake import writer
from pipeline.lake.merge import merge
from pipeline.lake.tables import SILVER_QUARANTINE, SILVER_WATERMARKS, TableSpec
from pipeline.silver import files
from pipeline.silver.handles import Handles


FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)


@dataclass(frozen=True)
class Written:
    inserted: int = 0
    updated: int = 0


def polars_schema(spec: TableSpec) -> pl.Schema:
    return pl.Schema(pl.from_arrow(spec.schema.empty_table()).schema)  # type: ignore[union-attr]


def conform(df: FrameT, spec: TableSpec) -> FrameT:
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


# polars cuts string statistics in the parquet footer at 64 bytes (the max rounded up): shorter ones are exact.
_FOOTER_TEXT_EXACT = 64


def _footer_stats(meta: pq.FileMetaData, schema: pl.Schema) -> tuple[dict[str, tuple[object, object]], dict[str, int]]:
    """From the footer of a parquet file polars wrote: (min, max) of the columns whose footer statistics
    are exact (integers, dates, datetimes, and strings shorter than polars' cut; not floats, whose zero
    the footer signs differently), and null counts. Columns the footer is unsure of are left out, to be
    computed from the rows."""
    at = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
    groups = [meta.row_group(g) for g in range(meta.num_row_groups)]
    ranges: dict[str, tuple[object, object]] = {}
    nulls: dict[str, int] = {}
    for name, dtype in schema.items():
        stats = [g.column(at[name]).statistics for g in groups] if name in at else [None]
        if any(st is None or not st.has_null_count for st in stats):
            continue
        nulls[name] = sum(st.null_count for st in stats)
        if not (dtype.is_integer() or dtype in (pl.Date, pl.String) or isinstance(dtype, pl.Datetime)):
            continue
        full = [st for st, g in zip(stats, groups, strict=True) if st.null_count != g.num_rows]  # not all nulls
        if any(not st.has_min_max for st in full):
            continue
        if dtype == pl.String and any(max(len(st.min_raw), len(st.max_raw)) >= _FOOTER_TEXT_EXACT for st in full):
            continue
        ranges[name] = (min((st.min for st in full), default=None), max((st.max for st in full), default=None))
    return ranges, nulls


def _file_stats(rows: pl.DataFrame | pl.LazyFrame, path: Path) -> tuple[str, int]:
    """Delta file statistics (numRecords, minValues, maxValues, nullCount) of ``rows`` written at ``path``,
    exact to the microsecond, so that ``files.overlapping`` can prune on them like on the stats delta-rs
    writes; and the number of rows. What the parquet footer holds exactly is taken from there (a min/max
    over millions of strings costs more than all the other columns together); the rest from the rows."""
    schema = rows.collect_schema() if isinstance(rows, pl.LazyFrame) else rows.schema
    ranged = [c for c, t in schema.items() if t == pl.String or t == pl.Date or t.is_numeric() or isinstance(t, pl.Datetime)]
    meta = pq.read_metadata(path)
    ranges, nulls = _footer_stats(meta, schema)
    todo = [c for c in ranged if c not in ranges]
    row: dict[str, object] = {"\0rows": meta.num_rows}
    if todo or len(nulls) < len(schema):
        row = rows.lazy().select(
            *(pl.col(c).min().alias(f"min\0{c}") for c in todo),
            *(pl.col(c).max().alias(f"max\0{c}") for c in todo),
            *(pl.col(c).null_count().alias(f"nul\0{c}") for c in schema if c not in nulls),
            pl.len().alias("\0rows"),
        ).collect(engine="streaming").row(0, named=True)
    for c, (lo, hi) in ranges.items():
        row[f"min\0{c}"], row[f"max\0{c}"] = lo, hi
    for c, n in nulls.items():
        row[f"nul\0{c}"] = n
    stats: dict[str, object] = {"numRecords": row["\0rows"], "minValues": {}, "maxValues": {}, "nullCount": {}}
    for kind, key in (("min", "minValues"), ("max", "maxValues")):
        for col in ranged:
            v = _stat(row[f"{kind}\0{col}"], schema[col])
            if v is not None:
                stats[key][col] = v  # type: ignore[index]
    for col in schema:
        stats["nullCount"][col] = int(row[f"nul\0{col}"])  # type: ignore[index]
    return json.dumps(stats), int(row["\0rows"])  # type: ignore[arg-type]


def _partition_value(value: object) -> str | None:
    text = value.isoformat() if isinstance(value, dt.date) else value
    return text if isinstance(text, str) and _SAFE_VALUE.match(text) else None


def _partitions(rows: pl.DataFrame | pl.LazyFrame, parts: list[str]) -> dict[tuple, pl.DataFrame | pl.LazyFrame]:
    """``rows`` split by the partition columns (left out of each part); {} when there are no rows."""
    if not parts:
        empty = (rows.height if isinstance(rows, pl.DataFrame) else rows.select(pl.len()).collect().item()) == 0
        return {} if empty else {(): rows}
    keys = rows.lazy().select(parts).unique().collect(engine="streaming")
    if keys.height <= 1:  # the usual batch: one partition, nothing to split
        return {keys.row(0): rows.drop(parts)} if keys.height else {}
    frame = rows.collect() if isinstance(rows, pl.LazyFrame) else rows
    return frame.partition_by(parts, as_dict=True, include_key=False, maintain_order=True)


def append(tables: Handles, spec: TableSpec, rows: pl.DataFrame | pl.LazyFrame) -> int:
    """Append ``rows`` in one Delta commit, like ``writer.append`` but ~3x cheaper on big batches: polars
    writes the parquet files (in parallel, lz4) and deltalake only commits their add actions, with the
    statistics computed here. Lazy ``rows`` that fill one partition (the usual batch) are streamed into
    their file, never held in memory whole. Object stores and unusual partition values take
    ``writer.append``."""
    lake = tables.lake
    rows = conform(rows, spec)
    parts = list(spec.partition_by)
    groups = _partitions(rows, parts)
    if not groups:
        return 0
    values = {k: [_partition_value(v) for v in k] for k in groups}
    if not lake.is_local or any(v is None for vs in values.values() for v in vs):
        data = (rows.collect() if isinstance(rows, pl.LazyFrame) else rows).to_arrow()
        table = tables.table(spec)
        count = writer.append(lake, spec, data, handle=table)
        if table is None:
            tables.created(spec)
        return count
    uri = lake.table_uri(spec.layer, spec.name)
    root = Path(uri.removeprefix("file://"))
    actions: list[AddAction] = []
    written: list[Path] = []
    count = 0
    try:
        for key, group in groups.items():
            folder = "/".join(f"{c}={v}" for c, v in zip(parts, values[key], strict=True))
            rel = (folder + "/" if folder else "") + f"part-00000-{uuid.uuid4()}-c000.{PARQUET_COMPRESSION}.parquet"
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            written.append(path)
            group.lazy().sink_parquet(path, compression=PARQUET_COMPRESSION, statistics=True)
            stats, n = _file_stats(group, path)
            count += n
            actions.append(AddAction(
                rel, path.stat().st_size, dict(zip(parts, values[key], strict=True)), int(time.time() * 1000), True, stats,
            ))
        table = tables.table(spec)
        if table is None:
            create_table_with_add_actions(
                uri, Schema.from_arrow(spec.schema), actions, mode="append", partition_by=parts or None,
                storage_options=lake.storage_options or None,
            )
            tables.created(spec)
        else:
            table.create_write_transaction(actions, mode="append", schema=spec.schema, partition_by=parts or None)
    except Exception as exc:  # noqa: BLE001
        for path in written:  # files no commit refers to: remove them (vacuum would, later)
            path.unlink(missing_ok=True)
        raise LakeWriteError(f"append to {spec.key} failed: {type(exc).__name__}: {exc}") from exc
    return count


def upsert(tables: Handles, spec: TableSpec, rows: pl.DataFrame, existing: pl.DataFrame, key: tuple[str, ...]) -> Written:
    """Write the rows of ``rows`` that differ from ``existing`` (the table's current rows for those keys)."""
    rows = conform(rows, spec)
    if rows.height == 0:
        return Written()
    changed, updates = _diff(rows, conform(existing, spec), key)
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
    known = files.scan(tables.lake, tables.files(SILVER_QUARANTINE), ["table", "rule", "column", "row"])
    known = known.filter(pl.col("table").is_in(rows["table"].unique().implode())).collect()
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
    df = pl.from_arrow(table.to_pyarrow_table())
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
    lake, table = tables.lake, tables.table(SILVER_WATERMARKS)
    try:
        write_deltalake(
            table if table is not None else lake.table_uri(SILVER_WATERMARKS.layer, SILVER_WATERMARKS.name),
            df.to_arrow(),
            mode="overwrite",
            storage_options=None if table is not None else (lake.storage_options or None),
        )
    except Exception as exc:  # noqa: BLE001
        raise LakeWriteError(f"writing silver/watermarks failed: {type(exc).__name__}: {exc}") from exc
