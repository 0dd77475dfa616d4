"""The real recordings in ../shared/realdata pass the bronze contracts, and silver runs clean on them."""

from __future__ import annotations

import datetime as dt

from contracts.bronze import candles_schema, quotes_schema, trades_schema
from pipeline.ingest.importer import import_capture
from pipeline.lake import writer
from pipeline.lake.tables import (
    BRONZE_CANDLES,
    BRONZE_QUOTES,
    BRONZE_TRADES,
    SILVER_CANDLES,
    SILVER_QUOTE_BARS,
    SILVER_TRADES,
)
from pipeline.silver import run_silver
from pipeline.silver.validate import check

CAPTURES = {
    "okx": ("cryptofeed-2022-05-public.ws.log", "okcoin-v5-2023-05-candles.ws.log", "ccxt-2026-08.jsonl"),
    "deribit": ("cryptofeed-2021-07-options.ws.log", "ccxt-2026-08.jsonl"),
}


def test_real_recordings_pass_the_bronze_contracts_and_flow_through_silver(lake, realdata) -> None:
    for venue, names in CAPTURES.items():
        for name in names:
            import_capture(lake, realdata / venue / name, venue)
    now = dt.datetime.now(dt.UTC)
    counts = {}
    for spec, schema in (
        (BRONZE_TRADES, trades_schema(now)),
        (BRONZE_QUOTES, quotes_schema(now)),
        (BRONZE_CANDLES, candles_schema(now)),
    ):
        df = writer.read(lake, spec)
        res = check(schema, df, spec.key, run_id="t", detected=now, fail_share=0.0)
        assert res.failures == [], (spec.key, res.failures[:3])
        counts[spec.key] = df.height
    assert all(n > 0 for n in counts.values()), counts

    report = run_silver(lake, lateness_secs=0)
    assert report.ok and report.quarantined == {}
    silver_trades = writer.read(lake, SILVER_TRADES)
    keys = silver_trades.select("venue", "instrument", "trade_id")
    assert (
        silver_trades.height
        == keys.unique().height
        == writer.read(lake, BRONZE_TRADES).select(keys.columns).unique().height
    )
    candles = writer.read(lake, SILVER_CANDLES)
    assert set(candles["venue"]) == {"okx", "deribit"} and set(candles["source"]) >= {"trades"}
    bars = writer.read(lake, SILVER_QUOTE_BARS)
    assert bars.height > 0 and (bars["quote_count"] >= 1).all()
