"""Every contract rule: a row that breaks it lands in silver/quarantine under that rule's name while the
good rows go on; table-level failures stop the table and keep its watermark."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from contracts.silver import SilverCandles
from pipeline.lake import writer
from pipeline.lake.tables import (
    BRONZE_CANDLES,
    BRONZE_QUOTES,
    BRONZE_TRADES,
    SILVER_QUARANTINE,
    SILVER_TRADES,
)
from pipeline.silver import run_silver
from pipeline.silver.validate import check
from tests.silver_rows import MIN_MS, T0_MS, candle, quote, trade

NOW_MS = T0_MS + 3_600_000
GOOD_TRADES = [trade("BTC-USDT-SWAP", 100 + i, T0_MS + i * 1000, 100.0 + i, 1.0) for i in range(20)]

TRADE_CASES = {
    "price:greater_than(0)": lambda: trade("BTC-USDT-SWAP", 1, T0_MS, -1.0, 1.0),
    "size:greater_than(0)": lambda: trade("BTC-USDT-SWAP", 1, T0_MS, 100.0, 0.0),
    "side:isin(('buy', 'sell'))": lambda: trade("BTC-USDT-SWAP", 1, T0_MS, 100.0, 1.0, "hold"),
    "market:isin(('spot', 'swap', 'future', 'option'))": lambda: trade(
        "BTC-USDT-SWAP", 1, T0_MS, 100.0, 1.0, market="perp"
    ),
    "source:isin(('ws', 'rest', 'capture'))": lambda: trade("BTC-USDT-SWAP", 1, T0_MS, 100.0, 1.0, source="ftp"),
    "exchange_ts:in_time_window": lambda: trade("BTC-USDT-SWAP", 1, NOW_MS + 3_600_000, 100.0, 1.0, seq=10_000),
    "trade_id:str_length(1, None)": lambda: (
        trade("BTC-USDT-SWAP", 1, T0_MS, 100.0, 1.0)[:3] + ("",) + trade("X", 1, T0_MS, 100.0, 1.0)[4:]
    ),
    # seq 105 sits between ids 104 and 106 but is 10 s older than trade 104: out of sequence order.
    "sequence_order": lambda: trade("BTC-USDT-SWAP", 9999, T0_MS - 6_000 + 4_000, 50.0, 1.0, seq=105),
}


@pytest.mark.parametrize("rule", list(TRADE_CASES))
def test_a_trade_breaking_a_rule_is_quarantined_under_its_name(lake, rule: str) -> None:
    bad = TRADE_CASES[rule]()
    rows = (
        GOOD_TRADES
        if rule != "sequence_order"
        else [r if r[3] != "105" else r[:10] + (106,) + r[11:] for r in GOOD_TRADES]
    )
    writer.append_rows(lake, BRONZE_TRADES, [*rows, bad])
    report = run_silver(lake, now_ms=NOW_MS, fail_share=0.5)
    assert report.ok
    q = writer.read(lake, SILVER_QUARANTINE)
    assert q["rule"].to_list() == [rule]
    row = json.loads(q["row"][0])
    assert row["trade_id"] == bad[3] and row["price"] == bad[4]
    assert q["table"][0] == "bronze/trades" and q["run_id"][0] == report.run_id
    assert writer.read(lake, SILVER_TRADES).height == len(rows)  # the good rows went on
    assert report.quarantined == {f"bronze/trades {rule}": 1}


def test_the_same_trade_id_with_different_prices_is_quarantined(lake) -> None:
    a = trade("BTC-USDT-SWAP", 7, T0_MS, 100.0, 1.0)
    b = trade("BTC-USDT-SWAP", 7, T0_MS, 101.0, 1.0, source="rest")
    same = trade("BTC-USDT-SWAP", 8, T0_MS, 100.0, 1.0)  # seen twice too, but the same trade: kept once
    writer.append_rows(lake, BRONZE_TRADES, [*GOOD_TRADES, a, b, same, same[:9] + ("rest",) + same[10:]])
    run_silver(lake, now_ms=NOW_MS, fail_share=0.5)
    q = writer.read(lake, SILVER_QUARANTINE)
    assert sorted(q["rule"].to_list()) == ["trade_id_consistent"] * 2
    assert sorted(json.loads(r)["trade_id"] for r in q["row"]) == ["7", "7"]
    ids = writer.read(lake, SILVER_TRADES)["trade_id"].to_list()
    assert "7" not in ids and ids.count("8") == 1


QUOTE_CASES = {
    "bid_below_ask": lambda: quote("ETH-C", T0_MS, 101.0, 100.0),
    "delta:less_than_or_equal_to(1)": lambda: quote("ETH-C", T0_MS, 100.0, 101.0, delta=1.5),
    "mark_iv:greater_than_or_equal_to(0)": lambda: quote("ETH-C", T0_MS, 100.0, 101.0, mark_iv=-3.0),
    "bid_px:greater_than(0)": lambda: quote("ETH-C", T0_MS, -1.0, 101.0),
    "mark_price:greater_than_or_equal_to(0)": lambda: quote("ETH-C", T0_MS, 100.0, 101.0, mark=-0.5),
    "exchange_ts:in_time_window": lambda: quote("ETH-C", 1_000_000_000_000, 100.0, 101.0),  # 2001: before listing
}
# 1 contract = 0.01 BTC; vol_ccy_quote / vol_ccy is the average price the bar implies.
CANDLE_CASES = {
    "high_covers_open_close": lambda: candle("BTC-USDT-SWAP", T0_MS, 100, 100.5, 99, 101, 1, 0.01, 1.0),
    "low_under_open_close": lambda: candle("BTC-USDT-SWAP", T0_MS, 100, 102, 100.5, 101, 1, 0.01, 1.01),
    "vol:greater_than_or_equal_to(0)": lambda: candle("BTC-USDT-SWAP", T0_MS, 100, 102, 99, 101, -1, 0.01, 1.0),
    "vol_ccy:greater_than_or_equal_to(0)": lambda: candle("BTC-USDT-SWAP", T0_MS, 100, 102, 99, 101, 1, -0.01, 1.0),
    "vwap_within_range": lambda: candle("BTC-USDT-SWAP", T0_MS, 100, 102, 99, 101, 1, 0.01, 1.5),
}


@pytest.mark.parametrize(
    ("spec", "rule", "make"),
    [
        *[(BRONZE_QUOTES, r, m) for r, m in QUOTE_CASES.items()],
        *[(BRONZE_CANDLES, r, m) for r, m in CANDLE_CASES.items()],
    ],
)
def test_quotes_and_candles_breaking_a_rule_are_quarantined(lake, spec, rule, make) -> None:
    # One good quote is an option marked at exactly 0 (worthless near expiry): valid, never quarantined.
    good = (
        [quote("ETH-C", T0_MS + i * 1000, 100.0, 101.0, delta=0.4, mark=0.0 if i == 0 else 1.0) for i in range(5)]
        if spec is BRONZE_QUOTES
        else [candle("BTC-USDT-SWAP", T0_MS + (i + 1) * MIN_MS, 100, 102, 99, 101, 1, 0.01, 1.0) for i in range(5)]
    )
    writer.append_rows(lake, spec, [*good, make()])
    report = run_silver(lake, now_ms=NOW_MS, fail_share=0.5)
    q = writer.read(lake, SILVER_QUARANTINE)
    assert q["rule"].to_list() == [rule] and q["table"][0] == spec.key
    assert report.ok


def test_silver_candle_rules_catch_broken_bars() -> None:
    t = dt.datetime(2026, 8, 12, 12, 0, tzinfo=dt.UTC)
    bar = dict(
        venue="okx",
        market="swap",
        instrument="X",
        timeframe="5m",
        open_time=t,
        close_time=t + dt.timedelta(minutes=5),
        open=100.0,
        high=102.0,
        low=99.0,
        close=101.0,
        volume=2.0,
        quote_volume=200.0,
        trade_count=2,
        vwap=100.0,
        buy_volume=1.0,
        sell_volume=1.0,
        source="trades",
        date=t.date(),
    )
    broken = [
        ({"vwap": 103.0}, "vwap_within_range"),
        ({"open_time": t + dt.timedelta(minutes=1), "close_time": t + dt.timedelta(minutes=6)}, "bar_aligned"),
        ({"close_time": t + dt.timedelta(minutes=4)}, "bar_aligned"),
        ({"high": 100.5}, "high_covers_open_close"),
    ]
    df = pl.DataFrame(
        [bar] + [{**bar, "instrument": f"X{i}", **change} for i, (change, _) in enumerate(broken)],
        schema_overrides={"open_time": pl.Datetime("us", "UTC"), "close_time": pl.Datetime("us", "UTC")},
    )
    res = check(SilverCandles.to_schema(), df, "silver/candles", run_id="t", detected=t, fail_share=1.0)
    assert res.good["instrument"].to_list() == ["X"]
    got = {(r["instrument"], r["rule"]) for r in res.quarantine.iter_rows(named=True)}
    assert got == {(f"X{i}", rule) for i, (_, rule) in enumerate(broken)}


def test_a_failing_share_over_the_threshold_fails_the_table_and_keeps_its_watermark(lake) -> None:
    bad = [trade("BTC-USDT-SWAP", 900 + i, T0_MS + 60_000, -1.0, 1.0) for i in range(5)]
    writer.append_rows(lake, BRONZE_TRADES, [*GOOD_TRADES, *bad])
    report = run_silver(lake, now_ms=NOW_MS, fail_share=0.1)
    quarantined = writer.read(lake, SILVER_QUARANTINE)
    assert quarantined.height == 5 and set(quarantined["rule"]) == {"price:greater_than(0)"}
    assert [(f.table, f.rule) for f in report.fatal] == [("bronze/trades", "failing_share")]
    assert writer.open_table(lake, SILVER_TRADES) is None  # nothing promoted
    assert "bronze/trades" not in report.watermarks
    with pytest.raises(Exception, match="failing_share"):
        report.raise_for_fatal()
    # Once the threshold allows it, the next run picks the same rows up again.
    assert run_silver(lake, now_ms=NOW_MS, fail_share=0.5).written["silver/trades"] == len(GOOD_TRADES)
    assert writer.read(lake, SILVER_QUARANTINE).height == 5  # not quarantined twice


def test_schema_drift_fails_the_table(lake) -> None:
    writer.append_rows(lake, BRONZE_TRADES, GOOD_TRADES)
    drifted = BRONZE_TRADES.from_rows(GOOD_TRADES[:1])
    drifted = drifted.append_column("price_str", pa.array(["100"]))
    write_deltalake(
        lake.table_uri("bronze", "trades"), drifted, mode="append", schema_mode="merge", partition_by=["venue", "date"]
    )
    report = run_silver(lake, now_ms=NOW_MS)
    assert report.fatal and report.fatal[0].rule.startswith("schema:")
    assert "bronze/trades" not in report.watermarks and writer.open_table(lake, SILVER_TRADES) is None
