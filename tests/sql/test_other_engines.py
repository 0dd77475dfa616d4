"""The lake is readable by the engines users reach for, with the recipes the README gives: pandas through
deltalake, DuckDB's `delta_scan` (the delta extension from the `duckdb-extension-delta` wheel, no download) and
DuckDB over the table's current Parquet files. Each answers what `cryptolake sql` answers."""

from __future__ import annotations

from pathlib import Path

import pytest
from deltalake import DeltaTable

from pipeline.lake.location import Lake
from pipeline.sql import query

PER_DAY = (
    "SELECT venue, date, count(*) AS trades, sum(price * size) AS notional "
    "FROM {table} GROUP BY venue, date ORDER BY venue, date"
)


def polars_answer(lake: Lake) -> list[tuple]:
    return list(query(lake, PER_DAY.format(table="silver.trades")).iter_rows())


def same(rows: list[tuple], expected: list[tuple]) -> bool:
    return len(rows) == len(expected) > 0 and all(
        r[:3] == e[:3] and r[3] == pytest.approx(e[3], rel=1e-12) for r, e in zip(rows, expected, strict=True)
    )


def test_pandas_through_deltalake(real_lake: Lake) -> None:
    frame = DeltaTable(real_lake.table_uri("silver", "trades")).to_pandas()
    frame["notional"] = frame["price"] * frame["size"]
    grouped = frame.groupby(["venue", "date"]).agg(trades=("price", "count"), notional=("notional", "sum"))
    rows = [(v, d, int(n), float(x)) for (v, d), n, x in zip(grouped.index, grouped["trades"], grouped["notional"], strict=True)]  # fmt: skip
    assert same(rows, polars_answer(real_lake))


def duckdb_with_delta():  # -> duckdb.DuckDBPyConnection, with the delta extension loaded from its wheel
    duckdb = pytest.importorskip("duckdb")
    wheel = pytest.importorskip("duckdb_extension_delta", reason="pip install duckdb-extension-delta")
    extension = Path(wheel.__file__).parent / "extensions" / f"v{duckdb.__version__}" / "delta.duckdb_extension"
    if not extension.is_file():  # the wheel is built for one DuckDB release (it pins duckdb==X)
        pytest.skip(f"duckdb-extension-delta has no build for duckdb {duckdb.__version__}")
    connection = duckdb.connect()
    connection.execute(f"LOAD '{extension}'")
    return connection


def test_duckdb_delta_scan(real_lake: Lake) -> None:
    connection = duckdb_with_delta()
    table = f"delta_scan('{real_lake.table_uri('silver', 'trades')}')"
    rows = connection.execute(PER_DAY.format(table=table)).fetchall()
    assert same(rows, polars_answer(real_lake))


def test_duckdb_over_the_current_parquet_files(real_lake: Lake) -> None:
    duckdb = pytest.importorskip("duckdb")
    # The files of the table's current version only (a merge or OPTIMIZE leaves replaced files on disk until
    # VACUUM: globbing the folder would count them twice); partition columns come from the hive paths.
    files = DeltaTable(real_lake.table_uri("silver", "trades")).file_uris()
    table = "read_parquet($files, hive_partitioning = true)"
    rows = duckdb.connect().execute(PER_DAY.format(table=table), {"files": files}).fetchall()
    assert same(rows, polars_answer(real_lake))
