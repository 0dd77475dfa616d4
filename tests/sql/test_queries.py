"""pipeline.sql over a lake of real recordings: every answer checked against the Delta tables read by deltalake
and pyarrow (not polars), joins across tables and layers, the README's first queries, one-line errors."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

import polars as pl
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from pipeline.lake import tables, writer
from pipeline.lake.location import Lake, resolve_lake
from pipeline.sql import QueryError, lazy_query, query, sql_name, table_names
from tests.sql.conftest import BAD_TRADES


def delta_rows(lake: Lake, layer: str, name: str) -> list[dict]:
    """A table's rows as deltalake reads them (none when it was never written)."""
    spec = next(s for s in tables.ALL_TABLES if (s.layer, s.name) == (layer, name))
    table = writer.open_table(lake, spec)
    return [] if table is None else table.to_pyarrow_table().to_pylist()


@pytest.mark.parametrize("spec", tables.ALL_TABLES, ids=sql_name)
def test_every_table_answers_with_its_delta_row_count(real_lake: Lake, spec: tables.TableSpec) -> None:
    answer = query(real_lake, f"SELECT count(*) AS n FROM {sql_name(spec)}")
    assert answer["n"].to_list() == [len(delta_rows(real_lake, spec.layer, spec.name))]


def test_trades_per_instrument_equal_the_delta_table(real_lake: Lake) -> None:
    answer = query(
        real_lake,
        "SELECT venue, instrument, count(*) AS trades, sum(price * size) AS notional "
        "FROM silver.trades GROUP BY venue, instrument ORDER BY venue, instrument",
    )
    rows = delta_rows(real_lake, "silver", "trades")
    counts = Counter((r["venue"], r["instrument"]) for r in rows)
    assert len(counts) >= 5 and {"okx", "deribit"} <= {v for v, _ in counts}  # both venues' recordings landed
    assert [(v, i, n) for v, i, n, _ in answer.iter_rows()] == sorted((v, i, n) for (v, i), n in counts.items())
    for venue, instrument, _, notional in answer.iter_rows():
        expected = sum(r["price"] * r["size"] for r in rows if (r["venue"], r["instrument"]) == (venue, instrument))
        assert notional == pytest.approx(expected, rel=1e-12)


def test_a_join_of_silver_with_bronze_and_of_candles_with_trades(real_lake: Lake) -> None:
    # Every silver trade came from one bronze trade (the real recordings have no duplicates).
    joined = query(
        real_lake,
        "SELECT count(*) AS n FROM silver.trades s "
        "JOIN bronze.trades b ON s.venue = b.venue AND s.instrument = b.instrument AND s.trade_id = b.trade_id",
    )
    assert joined["n"].item() == len(delta_rows(real_lake, "silver", "trades")) > 0
    # Each 1m candle aggregated from trades has the volume of the trades of its minute.
    bars = query(
        real_lake,
        """SELECT c.instrument, c.open_time, c.volume, t.volume AS traded
           FROM silver.candles c
           JOIN (SELECT venue, instrument, date_trunc('minute', exchange_ts) AS minute, sum(size) AS volume
                 FROM silver.trades GROUP BY 1, 2, 3) t
             ON c.venue = t.venue AND c.instrument = t.instrument AND c.open_time = t.minute
           WHERE c.timeframe = '1m' AND c.source = 'trades'""",
    )
    minute_bars = [
        r for r in delta_rows(real_lake, "silver", "candles") if (r["timeframe"], r["source"]) == ("1m", "trades")
    ]
    assert bars.height == len(minute_bars) > 0
    assert bars["volume"].to_list() == pytest.approx(bars["traded"].to_list(), rel=1e-9)


def test_the_readme_queries(real_lake: Lake) -> None:
    day = query(
        real_lake,
        "SELECT instrument, open_time, open, high, low, close, volume FROM silver.candles "
        "WHERE timeframe = '1h' AND date = '2022-05-13' ORDER BY instrument, open_time",
    )
    expected = sorted(
        (r["instrument"], r["open_time"], r["close"])
        for r in delta_rows(real_lake, "silver", "candles")
        if r["timeframe"] == "1h" and r["date"] == date(2022, 5, 13)
    )
    assert list(day.select("instrument", "open_time", "close").iter_rows()) == expected and expected

    by_rule = query(
        real_lake,
        'SELECT "table", rule, count(*) AS rows FROM silver.quarantine GROUP BY 1, 2 ORDER BY 3 DESC, 2',
    )
    quarantined = Counter((r["table"], r["rule"]) for r in delta_rows(real_lake, "silver", "quarantine"))
    assert sorted(by_rule.iter_rows()) == sorted((t, rule, n) for (t, rule), n in quarantined.items())
    assert by_rule["rows"].sum() == len(BAD_TRADES)
    assert {rule.split(":")[0] for rule in by_rule["rule"]} == {"price", "size"}

    still_open = query(
        real_lake, "SELECT venue, instrument, kind, from_ts, detail FROM bronze.gaps WHERE status = 'open'"
    )
    assert still_open.select("venue", "instrument", "kind").rows() == [("okx", "BTC-USDT", "trade_id")]


def test_the_lazy_variant_is_a_plan_that_takes_more_steps(real_lake: Lake) -> None:
    plan = lazy_query(real_lake, "SELECT venue, instrument, price FROM silver.trades")
    assert isinstance(plan, pl.LazyFrame)
    okx = plan.filter(pl.col("venue") == "okx").collect()
    table = DeltaTable(real_lake.table_uri("silver", "trades")).to_pyarrow_table()
    assert okx.height == pc.sum(pc.equal(table["venue"], "okx")).as_py() > 0
    assert query(real_lake, "SELECT * FROM silver.trades", limit=3).height == 3
    with pytest.raises(QueryError, match="unknown column 'nope'"):  # found while planning, before any read
        lazy_query(real_lake, "SELECT nope FROM silver.trades")


def test_a_table_not_written_yet_answers_empty_with_its_columns(lake: Lake) -> None:
    Path(lake.root).mkdir(parents=True)  # a lake folder with no table in it yet
    answer = query(lake, "SELECT rule, count(*) AS n FROM silver.quarantine GROUP BY rule")
    assert answer.height == 0 and answer.columns == ["rule", "n"]


@pytest.mark.parametrize(
    ("sql", "says"),
    [
        ("SELECT * FROM silver.nope", "unknown table 'silver.nope'; the lake's tables are bronze.trades"),
        ("SELECT * FROM trades", "unknown table 'trades' (did you mean bronze.trades or silver.trades?)"),
        ("SELECT nope FROM silver.trades", "unknown column 'nope'; the columns there are [\"venue\""),
        ("SELECT t.nope FROM silver.trades t", "unknown column 'nope' in 't'"),
        ("SELEC venue FROM silver.trades", "SQL syntax error: Expected: an SQL statement, found: SELEC"),
        ("SELECT count(*) FROM silver.trades WHERE", "SQL syntax error"),
        ("SELECT nosuchfunction(price) FROM silver.trades", "the query failed: unsupported function"),
    ],
)
def test_errors_are_one_line_that_says_what_fits(real_lake: Lake, sql: str, says: str) -> None:
    with pytest.raises(QueryError) as caught:
        query(real_lake, sql)
    message = str(caught.value)
    assert says in message and "\n" not in message
    if "unknown table" in says:
        assert all(name in message for name in table_names())


def test_a_lake_folder_that_does_not_exist_is_named(tmp_path) -> None:
    with pytest.raises(QueryError, match=r"no lake at .*missing: the folder does not exist"):
        query(resolve_lake(str(tmp_path / "missing")), "SELECT count(*) FROM silver.trades")
