"""Contract of bronze/book_deltas: the book rows of the real recordings pass, and a row breaking a rule fails
under that rule's name (what silver's quarantine will record)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandera.errors
import polars as pl
import pytest

from contracts.bronze import book_deltas_schema
from pipeline.ingest.importer import import_capture
from pipeline.lake import writer
from pipeline.lake.location import Lake
from pipeline.lake.tables import BRONZE_BOOK_DELTAS

NOW = dt.datetime(2026, 12, 4, tzinfo=dt.UTC)


def failed_rules(frame: pl.DataFrame) -> set[str]:
    try:
        book_deltas_schema(NOW).validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        return set(exc.failure_cases["check"].cast(pl.String).to_list())
    return set()


@pytest.fixture
def recorded_books(lake: Lake, realdata: Path) -> pl.DataFrame:
    import_capture(lake, realdata / "okx" / "cryptofeed-2022-05-public.ws.log", "okx")
    import_capture(lake, realdata / "deribit" / "cryptofeed-2021-07-options.ws.log", "deribit")
    return writer.read(lake, BRONZE_BOOK_DELTAS)


def test_the_recorded_book_rows_pass(recorded_books: pl.DataFrame) -> None:
    assert recorded_books.height > 8000
    assert set(recorded_books["venue"]) == {"okx", "deribit"}
    assert failed_rules(recorded_books) == set()


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"price": -1.0}, "greater_than(0)"),
        ({"size": -0.5}, "greater_than_or_equal_to(0)"),
        ({"side": "buy"}, "isin(('bid', 'ask'))"),
        ({"action": "add"}, "isin(('new', 'change', 'delete'))"),
        ({"side": None}, "level_complete"),
        ({"action": "delete", "size": 3.0}, "delete_empties_the_level"),
        ({"prev_seq": -2}, "greater_than_or_equal_to(-1)"),
        ({"checksum": 2**31}, "less_than(2147483648)"),
    ],
)
def test_a_row_breaking_a_rule_fails_under_its_name(
    recorded_books: pl.DataFrame, change: dict[str, Any], rule: str
) -> None:
    row = recorded_books.filter(pl.col("side").is_not_null()).head(1)
    bad = row.with_columns(pl.lit(v).cast(row.schema[k]).alias(k) for k, v in change.items())
    assert rule in failed_rules(pl.concat([recorded_books, bad]))
