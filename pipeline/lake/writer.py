"""Delta writes and reads. One call, one commit: the stream commits once per table per flush."""

from __future__ import annotations

import functools
from typing import Any

import polars as pl
import pyarrow as pa
from deltalake import ColumnProperties, CommitProperties, DeltaTable, Transaction, WriterProperties, write_deltalake
from deltalake.exceptions import DeltaError, TableNotFoundError

from pipeline.errors import LakeReadError, LakeWriteError
from pipeline.lake import compression
from pipeline.lake.location import Lake
from pipeline.lake.retry import first_line
from pipeline.lake.tables import TableSpec


def append(
    lake: Lake, spec: TableSpec, data: pa.Table, *, txn: tuple[str, int] | None = None, handle: DeltaTable | None = None
) -> int:
    """Append ``data`` to the table in one Delta commit; returns the rows written.

    ``txn`` = (app_id, version) records a Delta application transaction in the same commit, so a writer
    that retries after a crash can ask ``committed_version`` whether this batch already landed
    (exactly-once appends). ``handle``: an open ``DeltaTable`` of this table to write through, so a
    frequent writer (the stream) does not replay the table's log from storage on every commit.

    Raises ``LakeWriteError`` (the caller keeps the rows and retries or spools) instead of whatever the
    storage layer raised, so no caller has to know deltalake's exception zoo.
    """
    if data.num_rows == 0:
        return 0
    if data.schema != spec.schema:
        data = data.select(spec.schema.names).cast(spec.schema)
    properties = writer_properties(spec)
    try:
        write_deltalake(
            handle if handle is not None else lake.table_uri(spec.layer, spec.name),
            data,
            mode="append",
            partition_by=list(spec.partition_by) or None,
            storage_options=None if handle is not None else (lake.storage_options or None),
            commit_properties=CommitProperties(app_transactions=[Transaction(app_id=txn[0], version=txn[1])])
            if txn
            else None,
            writer_properties=properties,
            configuration=dict(spec.configuration)
            if spec.configuration and handle is None
            else None,  # on creation only
        )
    except Exception as exc:  # noqa: BLE001 - any storage failure means the same thing to the caller
        raise LakeWriteError(f"append to {spec.key} failed: {type(exc).__name__}: {exc}") from exc
    return data.num_rows


def writer_properties(spec: TableSpec) -> WriterProperties:
    """How ``spec``'s Parquet files are written: its codec and column encodings (appends and compaction alike)."""
    return _writer_properties(spec.plain_columns, spec.delta_columns, *compression.delta_codec(spec.key))


@functools.cache
def _writer_properties(
    plain_columns: tuple[str, ...],
    delta_columns: tuple[str, ...] = (),
    codec: compression.DeltaCodec = compression.DELTA,
    level: int | None = None,
) -> WriterProperties:
    # The table's codec (compression.py); no dictionary for the columns named (unique per row: it only costs).
    plain = ColumnProperties(dictionary_enabled=False)
    delta = ColumnProperties(dictionary_enabled=False, encoding="DELTA_BINARY_PACKED")
    columns = {**dict.fromkeys(plain_columns, plain), **dict.fromkeys(delta_columns, delta)}
    return WriterProperties(compression=codec, compression_level=level, column_properties=columns)


def append_rows(lake: Lake, spec: TableSpec, rows: list[tuple[Any, ...]]) -> int:
    """Convert row tuples with the table's converter and append them in one commit."""
    if not rows:
        return 0
    assert spec.from_rows is not None, f"{spec.key} has no row converter"
    return append(lake, spec, spec.from_rows(rows))


def committed_version(lake: Lake, spec: TableSpec, app_id: str) -> int | None:
    """The last application-transaction version ``app_id`` committed to the table (None: never)."""
    table = open_table(lake, spec)
    return None if table is None else table.transaction_version(app_id)


def open_table(lake: Lake, spec: TableSpec) -> DeltaTable | None:
    """The Delta table, or None when nothing was ever written to it."""
    try:
        return DeltaTable(lake.table_uri(spec.layer, spec.name), storage_options=lake.storage_options or None)
    except TableNotFoundError:
        return None
    except (DeltaError, OSError) as exc:  # a damaged log, unreachable storage: a message, not a traceback
        hint = (
            " (an object-store lake: check the credentials and endpoint in $CRYPTOLAKE_STORAGE_OPTIONS)"
            if "://" in lake.root
            else ""
        )
        raise LakeReadError(f"{spec.key} cannot be opened: {type(exc).__name__}: {first_line(exc)}{hint}") from exc


def read(lake: Lake, spec: TableSpec, *, columns: list[str] | None = None) -> pl.DataFrame:
    """The whole table as a polars frame (empty, with the right schema, if it does not exist yet)."""
    table = open_table(lake, spec)
    if table is None:
        empty = spec.schema.empty_table()
        return pl.DataFrame(empty.select(columns) if columns else empty)
    data = table.to_pyarrow_table(columns=columns)
    return pl.DataFrame(data)


def count_rows(lake: Lake, spec: TableSpec) -> int:
    table = open_table(lake, spec)
    if table is None:
        return 0
    return sum(int(n) for n in table.get_add_actions(flatten=True).column("num_records").to_pylist() if n is not None)
