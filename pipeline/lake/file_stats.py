"""The Delta statistics of a parquet file polars wrote (numRecords, minValues, maxValues, nullCount), as the
add action of the fast append carries them.

They are the statistics delta-rs writes for the same rows, with one deliberate difference: timestamps are
exact to the microsecond (delta-rs cuts them to milliseconds, which makes a file's max earlier than its
last row), so that a time-range read can prune files on them. Strings longer than ``STATS_TEXT_BYTES``
are cut by delta-rs' own rule (the parquet writer's: the min a prefix, the max a prefix with its last
character raised), here on purpose rather than by trusting a writer's footer: the footer's values are only
bounds (the parquet spec's promise), and cutting bounds by this rule gives what delta-rs gives.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

# delta-rs takes string min/max from arrow-rs' parquet footer, which keeps at most 64 bytes of each.
STATS_TEXT_BYTES = 64


def truncate_min(text: str) -> str:
    """A lower bound of ``text`` at most STATS_TEXT_BYTES long: its longest prefix that fits (whole characters)."""
    raw = text.encode()
    return text if len(raw) <= STATS_TEXT_BYTES else raw[:STATS_TEXT_BYTES].decode(errors="ignore")


def truncate_max(text: str) -> str:
    """An upper bound of ``text`` at most STATS_TEXT_BYTES long: the fitting prefix with its last character that
    can be raised by one code point without growing in UTF-8 raised (what follows dropped); ``text`` itself
    when none can (arrow-rs' ``truncate_and_increment_utf8``)."""
    raw = text.encode()
    if len(raw) <= STATS_TEXT_BYTES:
        return text
    prefix = raw[:STATS_TEXT_BYTES].decode(errors="ignore")
    for i in range(len(prefix) - 1, -1, -1):
        up = ord(prefix[i]) + 1
        if up <= 0x10FFFF and not 0xD800 <= up <= 0xDFFF and len(chr(up).encode()) == len(prefix[i].encode()):
            return prefix[:i] + chr(up)
    return text


def _ranged(dtype: pl.DataType) -> bool:
    """Columns with min/max statistics (as in delta-rs: not nested, not binary)."""
    return dtype in (pl.String, pl.Date, pl.Boolean) or dtype.is_numeric() or isinstance(dtype, pl.Datetime)


def _footer_exact(dtype: pl.DataType) -> bool:
    """Footer min/max taken as the statistics: exact for these, bounds cut by STATS_TEXT_BYTES for strings.
    Not floats, whose zero the footer signs differently and whose NaN/inf the log leaves out."""
    return dtype.is_integer() or dtype in (pl.Date, pl.String, pl.Boolean) or isinstance(dtype, pl.Datetime)


def _stat(value: Any, dtype: pl.DataType, *, high: bool) -> object:  # value: a polars scalar of dtype
    """A min (max with ``high``) as the Delta log spells it (None: leave the column out of the stats)."""
    if value is None:
        return None
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone not in ("UTC", None):
            return None
        text = value.strftime("%Y-%m-%dT%H:%M:%S.%f")
        return text + "Z" if dtype.time_zone else text
    if dtype == pl.Date:
        return value.isoformat()
    if dtype.is_float():
        return float(value) if math.isfinite(value) else None
    if dtype == pl.String:
        return (truncate_max if high else truncate_min)(value)
    if dtype.is_integer() or dtype == pl.Boolean:
        return value
    return None


def _footer(meta: pq.FileMetaData, schema: pl.Schema) -> tuple[dict[str, tuple[object, object]], dict[str, int]]:
    """From the footer: (min, max) of the columns ``_footer_exact`` takes from there, and null counts.
    Columns the footer says nothing sure of are left out, to be computed from the rows."""
    at = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
    groups = [meta.row_group(g) for g in range(meta.num_row_groups)]
    ranges: dict[str, tuple[object, object]] = {}
    nulls: dict[str, int] = {}
    for name, dtype in schema.items():
        found = [g.column(at[name]).statistics for g in groups] if name in at else []
        stats = [st for st in found if st is not None and st.has_null_count]
        if not stats or len(stats) != len(groups):
            continue
        nulls[name] = sum(st.null_count for st in stats)
        if not _footer_exact(dtype):
            continue
        full = [st for st, g in zip(stats, groups, strict=True) if st.null_count != g.num_rows]  # not all nulls
        if any(not st.has_min_max for st in full):
            continue
        try:
            ranges[name] = (min((st.min for st in full), default=None), max((st.max for st in full), default=None))
        except (UnicodeDecodeError, ValueError):  # a footer string cut inside a character: from the rows
            continue
    return ranges, nulls


def file_stats(rows: pl.DataFrame | pl.LazyFrame, path: Path) -> tuple[str, int]:
    """The Delta statistics JSON of ``rows``, just written by polars at ``path``, and the number of rows.
    What the footer holds is taken from there (a min/max over millions of strings costs more than all the
    other columns together); the rest (floats, columns without footer statistics) from the rows."""
    schema = rows.collect_schema() if isinstance(rows, pl.LazyFrame) else rows.schema
    ranged = [c for c, t in schema.items() if _ranged(t)]
    meta = pq.read_metadata(path)
    ranges, nulls = _footer(meta, schema)
    todo = [c for c in ranged if c not in ranges]
    row: dict[str, Any] = {"\0rows": meta.num_rows}
    if todo or len(nulls) < len(schema):
        row = (
            rows.lazy()
            .select(
                *(pl.col(c).min().alias(f"min\0{c}") for c in todo),
                *(pl.col(c).max().alias(f"max\0{c}") for c in todo),
                *(pl.col(c).null_count().alias(f"nul\0{c}") for c in schema if c not in nulls),
                pl.len().alias("\0rows"),
            )
            .collect(engine="streaming")
            .row(0, named=True)
        )
    for c, (lo, hi) in ranges.items():
        row[f"min\0{c}"], row[f"max\0{c}"] = lo, hi
    for c, n in nulls.items():
        row[f"nul\0{c}"] = n
    mins: dict[str, object] = {}
    maxs: dict[str, object] = {}
    for col in ranged:
        for out, kind in ((mins, "min"), (maxs, "max")):
            v = _stat(row[f"{kind}\0{col}"], schema[col], high=kind == "max")
            if v is not None:
                out[col] = v
    count = int(row["\0rows"])
    stats = {
        "numRecords": count,
        "minValues": mins,
        "maxValues": maxs,
        "nullCount": {col: int(row[f"nul\0{col}"]) for col in schema},
    }
    return json.dumps(stats, ensure_ascii=False), count  # UTF-8 as delta-rs writes it (see tests)
