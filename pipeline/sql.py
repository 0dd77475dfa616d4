"""SQL over the lake: every Delta table of ``pipeline.lake.tables.ALL_TABLES`` under ``layer.table``
(``silver.trades``, ``bronze.gaps``), a lazy polars scan run by polars' own SQL engine (no service).

    from pipeline.lake.location import resolve_lake
    from pipeline.sql import query
    query(resolve_lake("./lake"), "SELECT venue, count(*) AS n FROM silver.trades GROUP BY venue")

Each table is ``pl.scan_delta`` over the ``DeltaTable`` that ``writer.open_table`` opens with the lake's
storage options (how gold and status read): polars' native Parquet reader with partition and statistics
pruning, and an object-store lake works with the same credentials as every other reader. A table the
catalogue names but nothing has written yet answers as an empty table of its schema (as ``writer.read``
does), so a query does not depend on whether, say, a first quarantined row has arrived.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
from deltalake.exceptions import DeltaError

from pipeline.errors import CryptolakeError, LakeReadError
from pipeline.lake import tables, writer
from pipeline.lake.location import Lake
from pipeline.lake.retry import first_line
from pipeline.lake.tables import TableSpec

_MISSING_RELATION = re.compile(r"relation '([^']*)' was not found")
_MISSING_COLUMN = re.compile(r'unable to find column "([^"]*)"; valid columns: (\[[^\]]*\])')
_MISSING_QUALIFIED = re.compile(r"no column named '([^']*)' found in table '([^']*)'")


class QueryError(CryptolakeError):
    """A query the lake cannot answer (unknown table or column, bad syntax); one line that says what fits."""


def sql_name(spec: TableSpec) -> str:
    """The name a table has in SQL: ``silver.trades``."""
    return f"{spec.layer}.{spec.name}"


def table_names() -> list[str]:
    """Every table a query may name, in the order `cryptolake tables` lists them."""
    return [sql_name(spec) for spec in tables.ALL_TABLES]


def lazy_query(lake: Lake, sql: str) -> pl.LazyFrame:
    """The query's plan over the lake, not yet run (``.collect()`` it, or add filters first).

    Tables, columns and syntax are checked here (the plan's schema is resolved); errors are ``QueryError``."""
    _check_root(lake)
    context = pl.SQLContext(frames=_frames(lake, sql))
    try:
        frame = context.execute(sql)
        frame.collect_schema()  # unknown columns surface here rather than at collect
    except pl.exceptions.PolarsError as exc:
        raise QueryError(_explain(exc)) from None
    return frame


def query(lake: Lake, sql: str, *, limit: int | None = None) -> pl.DataFrame:
    """Run ``sql`` over the lake and return the answer; ``limit``: at most this many rows (read less)."""
    frame = lazy_query(lake, sql)
    if limit is not None:
        frame = frame.head(limit)
    try:
        return frame.collect()
    except pl.exceptions.PolarsError as exc:
        raise QueryError(_explain(exc)) from None
    except (DeltaError, OSError) as exc:  # a file vanished (vacuum) or storage refused mid-read
        raise LakeReadError(f"reading the lake failed: {type(exc).__name__}: {first_line(exc)}") from exc


def _frames(lake: Lake, sql: str) -> dict[str, pl.LazyFrame]:
    # Only the tables the query names are opened: on an object store each open reads a Delta log.
    frames: dict[str, pl.LazyFrame] = {}
    for spec in tables.ALL_TABLES:
        if not _mentions(sql, spec):
            continue
        table = writer.open_table(lake, spec)
        frames[sql_name(spec)] = (
            pl.scan_delta(table) if table is not None else pl.DataFrame(spec.schema.empty_table()).lazy()
        )
    return frames


def _mentions(sql: str, spec: TableSpec) -> bool:
    # silver.trades, "silver"."trades", SILVER . trades: anything polars could read as that name.
    pattern = rf'(?<!\w){re.escape(spec.layer)}"?\s*\.\s*"?{re.escape(spec.name)}(?![\w])'
    return re.search(pattern, sql, flags=re.IGNORECASE) is not None


def _check_root(lake: Lake) -> None:
    # A mistyped --lake would otherwise answer every query with empty tables.
    if lake.is_local and not Path(lake.root.removeprefix("file://")).is_dir():
        raise QueryError(f"no lake at {lake.root}: the folder does not exist (check --lake / $CRYPTOLAKE_LAKE)")


def _explain(exc: pl.exceptions.PolarsError) -> str:
    text = str(exc).strip()
    relation = _MISSING_RELATION.search(text)
    if relation:
        return _unknown_table(relation.group(1))
    column = _MISSING_COLUMN.search(text)
    if column:
        return f"unknown column {column.group(1)!r}; the columns there are {column.group(2)}"
    qualified = _MISSING_QUALIFIED.search(text)
    if qualified:
        return f"unknown column {qualified.group(1)!r} in {qualified.group(2)!r}"
    line = text.splitlines()[0] if text else type(exc).__name__
    if line.startswith("sql parser error: "):
        return "SQL syntax error: " + line.removeprefix("sql parser error: ")
    return f"the query failed: {line}"


def _unknown_table(name: str) -> str:
    names = table_names()
    alike = [n for n in names if n.split(".", 1)[1] == name.rsplit(".", 1)[-1].lower()]
    hint = f" (did you mean {' or '.join(alike)}?)" if alike else ""
    return f"unknown table {name!r}{hint}; the lake's tables are {', '.join(names)}"
