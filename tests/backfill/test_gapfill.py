"""Gaps made by a faulty stream (the real collector, dropped connections) end up filled over REST, with
429 and 5xx faults on the REST side; gaps that cannot be filled are marked with the reason."""

from __future__ import annotations

import asyncio
import time

import polars as pl
import pytest

from pipeline.backfill import fill_gaps
from pipeline.ingest.gaps import gap_row
from pipeline.ingest.stream import run_stream
from pipeline.lake import writer
from pipeline.lake.tables import BRONZE_GAPS, BRONZE_TRADES
from pipeline.simulator import SimConfig, SimulatorThread
from tests.backfill.backfillkit import FAST_RETRY, bronze, set_faults, truth
from tests.ingest.streamkit import FAST, stream_config

pytestmark = pytest.mark.timeout(120)
OKX, DERIBIT = ("BTC-USDT", "ETH-USDT-SWAP"), ("ETH-PERPETUAL",)


def _key(venue: str, df: pl.DataFrame) -> set[str]:
    return set(df["seq"].cast(pl.Utf8)) if venue == "deribit" else set(df["trade_id"])


def _truth_keys(venue: str, trades: list) -> set[str]:
    return {str(t.seq) if venue == "deribit" else str(t.trade_id) for t in trades}


def test_gaps_from_dropped_connections_are_filled_and_bronze_holds_every_trade(lake, tmp_path) -> None:
    config = SimConfig(port=0, seed=11, okx_instruments=6, deribit_options=4, trade_rate_per_instrument_per_s=25,
                       faults={"drop_every_s": 1.5})  # fmt: skip
    with SimulatorThread(config) as sim:
        asyncio.run(run_stream(lake, stream_config(FAST, OKX, DERIBIT), sim_ws_url=f"ws://127.0.0.1:{sim.port}",
                               seconds=5.0, spool_dir=tmp_path / "spool", handle_signals=False))  # fmt: skip
        gaps = writer.read(lake, BRONZE_GAPS)
        assert gaps.height > 0 and set(gaps["status"]) == {"open"}
        missing_before = {}
        windows = {}
        for venue, inst in [("okx", i) for i in OKX] + [("deribit", i) for i in DERIBIT]:
            ws = bronze(lake, venue, inst)
            lo, hi = (int(ws["exchange_ts"].min().timestamp() * 1000), int(ws["exchange_ts"].max().timestamp() * 1000))
            windows[(venue, inst)] = (lo, hi)
            missing_before[(venue, inst)] = _truth_keys(venue, truth(sim, venue, inst, lo, hi + 1)) - _key(venue, ws)
        assert sum(map(len, missing_before.values())) > 0, "the drops lost no trades: the test proves nothing"

        set_faults(sim, drop_every_s=0.0, rest_429_rate=0.1, rest_5xx_rate=0.1)
        result = fill_gaps(lake, rest_url=sim.base_http_url, retry=FAST_RETRY)
        assert result.gaps == gaps["gap_id"].n_unique() and result.filled == result.gaps and result.unfillable == 0
        assert sum(s.retries for s in result.rest.values()) > 0

        for (venue, inst), (lo, hi) in windows.items():
            after = bronze(lake, venue, inst)
            want = _truth_keys(venue, truth(sim, venue, inst, lo, hi + 1))
            assert want <= _key(venue, after), f"{venue} {inst}: {len(want - _key(venue, after))} trades still missing"
            rest_rows = after.filter(pl.col("source") == "rest")
            assert _key(venue, rest_rows) >= missing_before[(venue, inst)]
            assert after.filter(pl.col("source") == "rest")["trade_id"].is_unique().all()

    marked = writer.read(lake, BRONZE_GAPS)
    assert set(marked["status"]) == {"filled"} and marked["detail"].str.contains("filled").all()
    total = writer.count_rows(lake, BRONZE_TRADES)
    again = fill_gaps(lake, rest_url="http://127.0.0.1:9")  # nothing open: no request at all (port 9 is closed)
    assert again.gaps == 0 and writer.count_rows(lake, BRONZE_TRADES) == total


def test_unfillable_gaps_are_marked_with_the_reason(sim, lake) -> None:
    now = int(time.time() * 1000)
    old = now - 100 * 86_400_000
    rows = [
        gap_row("okx", "BTC-USDT", "quotes", now - 60_000, now - 30_000, None, None, "books5 went quiet"),
        gap_row("okx", "BTC-USDT", "reconnect", old, old + 5_000, None, None, "connection was down"),
        gap_row("deribit", "ETH-PERPETUAL", "seq", now - 9_000_000, now - 8_000_000, 10**9, 10**9 + 5, "5 missing"),
    ]
    writer.append_rows(lake, BRONZE_GAPS, rows)
    result = fill_gaps(lake, rest_url=sim.base_http_url, retry=FAST_RETRY)
    assert result.unfillable == 3 and result.trades == 0
    detail = dict(
        zip(*writer.read(lake, BRONZE_GAPS).select("kind", "detail").to_dict(as_series=False).values(), strict=True)
    )
    assert "quotes have no history" in detail["quotes"]
    assert "older than okx's trade history (90 days)" in detail["reconnect"]
    assert "returned none of the missing trades" in detail["seq"]
    assert set(writer.read(lake, BRONZE_GAPS)["status"]) == {"unfillable"}
