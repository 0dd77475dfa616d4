"""The fast paths of the silver layer give what the slow ones gave: polars-written silver/trades files with
exact statistics, the one-pass contract screen agreeing with pandera, dedupe keeping the first received."""

from __future__ import annotations

import datetime as dt

import polars as pl

from contracts import bronze as bronze_contracts
from contracts.silver import SilverCandles
from pipeline.lake import writer
from pipeline.lake.location import resolve_lake
from pipeline.lake.tables import SILVER_TRADES
from pipeline.silver import files, writes
from pipeline.silver.handles import Handles
from pipeline.silver.screen import surely_passes
from pipeline.silver.trades import dedupe, new_rows
from pipeline.silver.validate import check

UTC = dt.UTC
T0 = dt.datetime(2026, 8, 12, 0, 0, 0, 123456, tzinfo=UTC)


def _trades(n: int, day_offsets=(0,)) -> pl.DataFrame:
    rows = []
    for d in day_offsets:
        for i in range(n):
            ts = T0 + dt.timedelta(days=d, seconds=i, microseconds=7 * i)
            rows.append(
                {
                    "venue": "okx",
                    "market": "swap",
                    "instrument": "BTC-USDT-SWAP",
                    "trade_id": f"{d}-{i}",
                    "price": 100.0 + i,
                    "size": 1.0,
                    "side": "buy" if i % 2 else "sell",
                    "exchange_ts": ts,
                    "receive_ts": ts + dt.timedelta(milliseconds=3),
                    "source": "ws",
                    "seq": d * 1000 + i,
                    "trade_count": 1,
                    "index_price": None,
                    "mark_price": None,
                    "iv": None,
                    "liquidation": None,
                    "date": ts.date(),
                }
            )
    return writes.conform(pl.DataFrame(rows, schema=writes.polars_schema(SILVER_TRADES)), SILVER_TRADES)


def test_fast_append_writes_readable_files_with_exact_stats(lake) -> None:
    df = _trades(5, day_offsets=(0, 1))
    assert writes.append(Handles(lake), SILVER_TRADES, df) == 10
    assert writes.append(Handles(lake), SILVER_TRADES, _trades(3, day_offsets=(2,))) == 3  # into the existing table
    back = writer.read(lake, SILVER_TRADES).sort("trade_id")
    expected = pl.concat([df, _trades(3, day_offsets=(2,))]).sort("trade_id")
    assert back.select(expected.columns).equals(expected)
    fs = Handles(lake).files(SILVER_TRADES)
    assert fs.rows == 13 and fs.actions.height == 3  # one file per (venue, date) partition
    day0 = fs.actions.filter(pl.col("partition.date") == T0.date())
    # microsecond-exact: a range starting 1 us after the last trade of day 0 must not meet its file
    assert day0["min.exchange_ts"][0] == T0 and day0["max.exchange_ts"][0] == T0 + dt.timedelta(
        seconds=4, microseconds=28
    )
    last = T0 + dt.timedelta(seconds=4, microseconds=28)
    assert (
        files.overlapping(fs, "exchange_ts", last + dt.timedelta(microseconds=1), last + dt.timedelta(hours=1))
        .actions.filter(pl.col("partition.date") == T0.date())
        .height
        == 0
    )


def test_a_lazy_batch_lands_like_the_rows_with_the_same_string_ranges(lake, tmp_path) -> None:
    """promote hands the new trades over as a lazy filter over the batch: they land like the materialized
    rows, with the same statistics; strings past 64 bytes cut as delta-rs cuts them (tests/lake/test_fast_append.py)."""
    long = {0: "!" * 70, 2: "~" * 70}  # the smallest and the largest id, both longer than the footer keeps
    df = _trades(6).with_columns(trade_id=pl.col("seq").replace_strict(long, default="") + pl.col("trade_id"))
    keep = pl.Series([True, False, True, True, False, True])
    eager, streamed = lake, resolve_lake(str(tmp_path / "other"))
    assert writes.append(Handles(eager), SILVER_TRADES, df.filter(keep)) == 4
    assert writes.append(Handles(streamed), SILVER_TRADES, df.lazy().filter(keep)) == 4
    assert writes.append(Handles(streamed), SILVER_TRADES, df.lazy().filter(pl.lit(False))) == 0  # nothing, no commit
    a, b = (Handles(x).files(SILVER_TRADES).actions for x in (eager, streamed))
    stats = [c for c in a.columns if c.startswith(("min.", "max.", "null_count.", "num_records"))]
    assert a.select(stats).equals(b.select(stats)) and b["num_records"].to_list() == [4]
    assert b["min.trade_id"][0] == "!" * 64 and b["max.trade_id"][0] == "~" * 63 + "\x7f"  # bounds of the ids
    assert (
        writer.read(streamed, SILVER_TRADES).sort("trade_id").equals(writer.read(eager, SILVER_TRADES).sort("trade_id"))
    )


def test_the_one_pass_screen_agrees_with_pandera() -> None:
    now = T0 + dt.timedelta(days=1)
    schema = bronze_contracts.trades_schema(now)
    good = _trades(20)
    assert surely_passes(schema, good)
    bad_rows = [
        good.with_columns(price=pl.when(pl.col("seq") == 3).then(-1.0).otherwise(pl.col("price"))),
        good.with_columns(side=pl.when(pl.col("seq") == 3).then(pl.lit("hold")).otherwise(pl.col("side"))),
        good.with_columns(venue=pl.when(pl.col("seq") == 3).then(None).otherwise(pl.col("venue"))),
        good.with_columns(
            exchange_ts=pl.when(pl.col("seq") == 3)
            .then(pl.lit(now + dt.timedelta(hours=1)))
            .otherwise(pl.col("exchange_ts"))
        ),
        good.with_columns(seq=pl.col("seq").cast(pl.Int32)),  # dtype drift
        good.with_columns(extra=pl.lit(1)),  # strict
        good.drop("liquidation"),
    ]
    for bad in bad_rows:
        assert not surely_passes(schema, bad)
    # and pandera still reports the rows by rule, as before
    res = check(schema, bad_rows[0], "bronze/trades", run_id="r", detected=now, fail_share=1.0)
    assert [f.rule for f in res.failures] == ["price:greater_than(0)"] and res.good.height == 19
    # silver candles: the unique key is part of the screen
    bars = pl.DataFrame(
        {
            "venue": ["okx"] * 2,
            "market": ["swap"] * 2,
            "instrument": ["X"] * 2,
            "timeframe": ["1m"] * 2,
            "open_time": [T0.replace(microsecond=0, second=0)] * 2,
            "close_time": [T0.replace(microsecond=0, second=0) + dt.timedelta(minutes=1)] * 2,
            "open": [1.0] * 2,
            "high": [1.0] * 2,
            "low": [1.0] * 2,
            "close": [1.0] * 2,
            "volume": [1.0] * 2,
            "quote_volume": [1.0] * 2,
            "trade_count": [1] * 2,
            "vwap": [1.0] * 2,
            "buy_volume": [0.0] * 2,
            "sell_volume": [1.0] * 2,
            "source": ["trades"] * 2,
            "date": [T0.date()] * 2,
        }
    )
    candles = SilverCandles.to_schema()
    assert surely_passes(candles, bars.head(1)) and not surely_passes(candles, bars)


def test_dedupe_keeps_the_first_received_copy_and_every_other_row() -> None:
    df = _trades(6)
    rest = df.filter(pl.col("seq").is_in([1, 4])).with_columns(
        source=pl.lit("rest"), receive_ts=pl.col("receive_ts") - dt.timedelta(seconds=1)
    )
    batch = pl.concat([df, rest, rest])  # a key seen three times too
    out = batch.filter(dedupe(batch))
    assert out.height == 6 and out["trade_id"].n_unique() == 6
    assert sorted(out.filter(pl.col("source") == "rest")["seq"].to_list()) == [1, 4]  # received first
    assert dedupe(df).all()


def test_the_dedupe_decides_the_copies_agree_rule_as_the_contract_does(lake) -> None:
    """new_rows finds the keys seen twice once and decides trade_id_consistent on the way; its verdict is
    the contract's own, and a "no" sends the batch to pandera, which names the failing rows."""
    now = T0 + dt.timedelta(days=1)
    schema = bronze_contracts.trades_schema(now)
    df = _trades(8)
    copies = df.filter(pl.col("seq").is_in([2, 5])).with_columns(source=pl.lit("rest"))
    agreeing = pl.concat([df, copies])
    disagreeing = pl.concat(
        [df, copies.with_columns(price=pl.col("price") + pl.when(pl.col("seq") == 5).then(1.0).otherwise(0.0))]
    )
    tables = Handles(lake)
    for batch, agree in ((agreeing, True), (disagreeing, False)):
        found = new_rows(tables, batch)
        contract = check(schema, batch, "bronze/trades", run_id="r", detected=now, fail_share=1.0)
        assert found.consistent is agree
        assert ("trade_id_consistent" not in [f.rule for f in contract.failures]) is agree
        assert found.keep.sum() == 8  # one row per key either way: which copy stays is the dedupe's rule
        verdict = {bronze_contracts.TRADE_ID_CONSISTENT: lambda f=found: f.consistent}
        assert surely_passes(schema, batch, verdict) is agree
        decided = check(schema, batch, "bronze/trades", run_id="r", detected=now, fail_share=1.0, decided=verdict)
        assert decided.good.equals(contract.good) and decided.quarantine.equals(contract.quarantine)
    assert [f.failed_rows for f in decided.failures if f.rule == "trade_id_consistent"] == [2]
    # a verdict of "no" is never taken on trust: pandera runs, and finds every row of this batch fine
    told_no = check(
        schema,
        agreeing,
        "bronze/trades",
        run_id="r",
        detected=now,
        fail_share=1.0,
        decided={bronze_contracts.TRADE_ID_CONSISTENT: lambda: False},
    )
    assert told_no.failures == [] and told_no.good.height == agreeing.height
