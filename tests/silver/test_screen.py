"""The one-pass contract screen says "fine" only for what it models: an unknown check or option sends the
batch to pandera, whose verdict is the one used; every contract silver checks stays fully modelled."""

from __future__ import annotations

import datetime as dt

import pandera.polars as pa
import polars as pl
import pytest

from contracts import bronze as bronze_contracts
from contracts.silver import SilverCandles, SilverQuoteBars, SilverTrades
from pipeline.lake.tables import SILVER_TRADES
from pipeline.silver import screen, writes
from pipeline.silver.validate import check

T0 = dt.datetime(2026, 8, 12, 0, 0, 0, 123456, tzinfo=dt.UTC)
NOW = T0 + dt.timedelta(days=1)


def _trades(n: int) -> pl.DataFrame:
    rows = [
        {
            "venue": "okx",
            "market": "swap",
            "instrument": "BTC-USDT-SWAP",
            "trade_id": str(i),
            "price": 100.0 + i,
            "size": 1.0,
            "side": "buy",
            "exchange_ts": T0 + dt.timedelta(seconds=i),
            "receive_ts": T0 + dt.timedelta(seconds=i, milliseconds=3),
            "source": "ws",
            "seq": i,
            "trade_count": 1,
            "index_price": None,
            "mark_price": None,
            "iv": None,
            "liquidation": None,
            "date": T0.date(),
        }
        for i in range(n)
    ]
    return writes.conform(pl.DataFrame(rows, schema=writes.polars_schema(SILVER_TRADES)), SILVER_TRADES)


class Counted:
    """A custom check (one the screen has no rule for): "column < below", counting its calls. ``fn`` is a
    plain function, as schemas deep-copy their checks and a function is copied as itself."""

    def __init__(self, below: float) -> None:
        self.calls = 0

        def fn(data: pa.PolarsData) -> pl.LazyFrame:
            self.calls += 1
            return data.lazyframe.select(pl.col(data.key) < below)

        self.fn = fn


def _with_price_check(fn: Counted) -> pa.DataFrameSchema:
    schema = bronze_contracts.trades_schema(NOW)
    price = schema.columns["price"]
    return schema.update_column("price", checks=[*price.checks, pa.Check(fn.fn, name="below_cap")])


def test_an_unknown_check_that_passes_is_left_to_pandera() -> None:
    df, fn = _trades(20), Counted(below=1_000.0)
    schema = _with_price_check(fn)
    assert screen.surely_passes(schema, df) is False and fn.calls == 0  # not even run by the screen
    res = check(schema, df, "bronze/trades", run_id="r", detected=NOW, fail_share=1.0)
    assert fn.calls == 1  # pandera ran it, once
    assert res.failures == [] and res.good.equals(df) and res.quarantine.height == 0


def test_an_unknown_check_that_fails_is_reported_by_pandera() -> None:
    df, fn = _trades(20), Counted(below=110.0)  # prices 110..119 fail
    res = check(_with_price_check(fn), df, "bronze/trades", run_id="r", detected=NOW, fail_share=1.0)
    assert fn.calls == 1
    assert [(f.rule, f.failed_rows) for f in res.failures] == [("price:below_cap", 10)]
    assert res.good["price"].max() == 109.0 and res.quarantine.height == 10


def test_an_unknown_dataframe_check_is_left_to_pandera() -> None:
    fn = Counted(below=1_000.0)
    schema = bronze_contracts.trades_schema(NOW)
    schema = pa.DataFrameSchema(  # the contract with one more wide check
        schema.columns,
        checks=[*schema.checks, pa.Check(lambda d: fn.fn(pa.PolarsData(d.lazyframe, "price")), name="wide")],
        strict=schema.strict,
        name=schema.name,
    )
    assert screen.surely_passes(schema, _trades(5)) is False and fn.calls == 0


def test_an_option_the_screen_does_not_model_gets_pandera_s_verdict() -> None:
    """A schema-wide dtype: the screen used to ignore it and call these rows fine; pandera fails them."""
    df = pl.DataFrame({"a": [1, 2, 3], "b": [1.0, 2.0, 3.0]})
    schema = pa.DataFrameSchema({"a": pa.Column(pl.Int64), "b": pa.Column(pl.Float64)}, dtype=pl.Int64)
    assert screen.surely_passes(schema, df) is False
    res = check(schema, df, "t", run_id="r", detected=NOW, fail_share=1.0)
    assert res.fatal and res.good.height == 0


@pytest.mark.parametrize(
    "make",
    [
        lambda c: pa.Column(pl.Int64, pa.Check.gt(0, groupby="b")),  # a grouped check
        lambda c: pa.Column(pl.Int64, pa.Check.gt(0, raise_warning=True)),  # a warning, not a failure
        lambda c: pa.Column(pl.Int64, pa.Check(lambda x: x > 0, element_wise=True)),
        lambda c: pa.Column(pl.Int64, pa.Check.unique_values_eq([1, 2, 3])),  # a built-in with a scalar answer
        lambda c: pa.Column(pl.Int64, unique=True),
        lambda c: pa.Column(pl.Int64, coerce=True),
        lambda c: pa.Column(pl.Int64, default=0),
    ],
)
def test_column_and_check_options_it_does_not_model_are_refused(make) -> None:
    df = pl.DataFrame({"a": [1, 2, 3], "b": [1.0, 2.0, 3.0]})
    plain = pa.DataFrameSchema({"a": pa.Column(pl.Int64, pa.Check.gt(0)), "b": pa.Column(pl.Float64)})
    assert screen.surely_passes(plain, df) is True  # the same rows, modelled options: fine
    assert screen.surely_passes(pa.DataFrameSchema({"a": make(None), "b": pa.Column(pl.Float64)}), df) is False


@pytest.mark.parametrize(
    "option",
    [
        {"ordered": True},
        {"coerce": True},
        {"strict": "filter"},
        {"add_missing_columns": True},
        {"on_missing_columns": "warn"},
        {"drop_invalid_rows": True},
    ],
)
def test_schema_options_it_does_not_model_are_refused(option) -> None:
    df = pl.DataFrame({"a": [1, 2, 3]})
    assert screen.surely_passes(pa.DataFrameSchema({"a": pa.Column(pl.Int64)}), df) is True
    assert screen.surely_passes(pa.DataFrameSchema({"a": pa.Column(pl.Int64)}, **option), df) is False


@pytest.mark.parametrize(
    "schema",
    [
        bronze_contracts.trades_schema(NOW),
        bronze_contracts.quotes_schema(NOW),
        bronze_contracts.candles_schema(NOW),
        SilverTrades.to_schema(),
        SilverCandles.to_schema(),
        SilverQuoteBars.to_schema(),
    ],
    ids=["bronze/trades", "bronze/quotes", "bronze/candles", "silver/trades", "silver/candles", "silver/quote_bars"],
)
def test_every_contract_silver_checks_is_fully_modelled(schema) -> None:
    """Else silver falls back to pandera on every batch (correct, but ~33 passes slower): what a pandera
    upgrade that renamed an internal would do. PANDERA_READ names the version this was read against."""
    assert screen._schema_known(schema), f"pandera {pa.__version__}, read against {screen.PANDERA_READ}"
    for chk in [*schema.checks, *(c for col in schema.columns.values() for c in col.checks)]:
        assert screen._runnable(chk) is not None, chk
