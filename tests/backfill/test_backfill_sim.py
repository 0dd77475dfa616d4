"""Backfill against the simulator with 429 and 5xx faults injected: bronze equals the ground truth."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from functools import partial

import polars as pl
import pytest

from pipeline.backfill import RestClient, VenueRequestError, make_plan, run_backfill
from pipeline.backfill import okx as okx_rest
from pipeline.lake import writer
from pipeline.lake.location import resolve_lake
from pipeline.lake.tables import BACKFILL_JOBS, BRONZE_CANDLES
from tests.backfill.backfillkit import FAST_RETRY, bronze, set_faults, truth, window

pytestmark = pytest.mark.timeout(120)
MIN, HOUR = 60_000, 3_600_000


def test_okx_trades_equal_ground_truth_despite_429_and_5xx(sim, lake) -> None:
    t0, start = window(sim)
    plan = make_plan("okx", ["BTC-USDT", "ETH-USDT-SWAP"], "trades", t0, start, chunk_secs=180)
    result = run_backfill(lake, plan, rest_url=sim.base_http_url, retry=FAST_RETRY)
    assert result.rest.retries > 0 and result.rest.rate_limited + result.rest.server_errors == result.rest.retries
    for inst in ("BTC-USDT", "ETH-USDT-SWAP"):
        want = truth(sim, "okx", inst, t0, start)
        got = bronze(lake, "okx", inst)
        assert len(want) > 500
        assert got["trade_id"].to_list() == [str(t.trade_id) for t in want]
        assert got["price"].to_list() == [t.price for t in want]
        assert got["size"].to_list() == [t.size for t in want]
        assert got["side"].to_list() == [t.side for t in want]
        assert [int(ts.timestamp() * 1000) for ts in got["exchange_ts"]] == [t.ts_ms for t in want]
        assert set(got["source"]) == {"rest"} and set(got["market"]) == {"spot" if inst == "BTC-USDT" else "swap"}
    assert result.rows == sum(len(truth(sim, "okx", i, t0, start)) for i in plan.instruments)
    # the summary names the instruments it ran (it said "for 0 instruments": the workers drained the list)
    assert result.instruments == ["BTC-USDT", "ETH-USDT-SWAP"] and "for 2 instruments" in result.summary()
    jobs = writer.read(lake, BACKFILL_JOBS)
    assert jobs.height == plan.total_chunks() and jobs["rows"].sum() == result.rows

    again = run_backfill(lake, plan, rest_url=sim.base_http_url, retry=FAST_RETRY)
    assert again.rows == 0 and again.chunks_skipped == plan.total_chunks() and again.chunks_run == 0
    assert bronze(lake, "okx", "BTC-USDT").height == len(truth(sim, "okx", "BTC-USDT", t0, start))


def test_deribit_trades_equal_ground_truth_with_venue_extras(sim, lake) -> None:
    t0, start = window(sim)
    option = next(i.inst_id for i in sim.call(lambda: sim.market.instruments("deribit")) if i.market == "option")
    plan = make_plan("deribit", ["ETH-PERPETUAL", option], "trades", t0, start, chunk_secs=300)
    run_backfill(lake, plan, rest_url=sim.base_http_url, retry=FAST_RETRY)
    for inst in ("ETH-PERPETUAL", option):
        want = truth(sim, "deribit", inst, t0, start)
        got = bronze(lake, "deribit", inst).sort("seq")
        assert want and got["seq"].to_list() == [t.seq for t in want]
        assert got["price"].to_list() == [t.price for t in want]
        assert got["index_price"].to_list() == [t.index_price for t in want]
        assert got["iv"].to_list() == [t.iv for t in want]


def test_candles_equal_the_venue_bars_and_only_closed_bars_are_kept(sim, lake) -> None:
    now = int(time.time() * 1000)
    plans = [
        make_plan("okx", ["BTC-USDT-SWAP"], "candles", now - 3 * HOUR, now, timeframe="1m", chunk_secs=3_600),
        make_plan("okx", ["ETH-USDT"], "candles", now - 10 * 86_400_000, now, timeframe="1d"),
        make_plan("deribit", ["ETH-PERPETUAL"], "candles", now - 2 * 86_400_000, now, timeframe="1h"),
    ]
    for plan in plans:
        run_backfill(lake, plan, rest_url=sim.base_http_url, retry=FAST_RETRY)
    got = writer.read(lake, BRONZE_CANDLES)
    for plan, bar_ms in zip(plans, (MIN, 86_400_000, HOUR), strict=True):
        ((inst, a, b),) = plan.items
        want = sim.call(partial(sim.market.candles, plan.venue, inst, bar_ms, a, b - 1))
        want = [w for w in want if w[8] and w[0] + bar_ms <= b]  # closed bars only
        rows = got.filter((pl.col("instrument") == inst) & (pl.col("timeframe") == plan.timeframe)).sort("open_time")
        assert len(want) >= 2 and rows.height == len(want), (plan.timeframe, rows.height, len(want))
        assert [int(t.timestamp() * 1000) for t in rows["open_time"]] == [w[0] for w in want]
        assert rows["close"].to_list() == pytest.approx([w[4] for w in want], rel=1e-9)
        assert rows["high"].to_list() == pytest.approx([w[2] for w in want], rel=1e-9)
        assert rows["confirm"].all() and set(rows["source"]) == {"rest"}


def test_a_4xx_is_not_retried_but_a_5xx_is(sim) -> None:
    async def go() -> tuple[int, int, int]:
        set_faults(sim, rest_429_rate=0.0, rest_5xx_rate=0.0)
        try:
            async with RestClient(okx_rest, sim.base_http_url, retry=FAST_RETRY) as client:
                with pytest.raises(VenueRequestError, match="BadSymbol"):
                    await client.call("market/history-trades", "publicGetMarketHistoryTrades", {"instId": "NOPE-USDT"})
                four = client.stats.requests
                set_faults(sim, rest_5xx_rate=1.0)
                with pytest.raises(VenueRequestError, match="still failing after 3 attempts"):
                    client.retry = type(FAST_RETRY)(max_attempts=3, initial_backoff_secs=0.01, max_backoff_secs=0.01)
                    await client.call("market/history-trades", "publicGetMarketHistoryTrades", {"instId": "BTC-USDT"})
                return four, client.stats.requests, client.stats.server_errors
        finally:
            set_faults(sim, rest_429_rate=0.1, rest_5xx_rate=0.1)

    four, total, server_errors = asyncio.run(go())
    assert four == 1 and total == 4 and server_errors == 3


def _key(df: pl.DataFrame) -> pl.DataFrame:
    return df.select("instrument", "trade_id", "price", "size", "side", "exchange_ts", "source").sort(
        "instrument", "trade_id"
    )


def test_killed_backfill_resumes_to_the_same_table_as_an_uninterrupted_one(sim, tmp_path) -> None:
    t0, start = window(sim)
    insts = (
        ["SOL-USDT", "SOL-USDT-SWAP"]
        if sim.call(lambda: sim.market.instrument("okx", "SOL-USDT"))
        else ["ETH-USDT", "BTC-USDT-SWAP"]
    )
    killed, clean = resolve_lake(str(tmp_path / "killed")), resolve_lake(str(tmp_path / "clean"))
    args = [
        "--venue",
        "okx",
        "--instruments",
        ",".join(insts),
        "--start",
        str(t0),
        "--end",
        str(start),
        "--chunk-secs",
        "60",
    ]
    cmd = [sys.executable, "-m", "pipeline.cli", "--lake", killed.root, "backfill", *args, "--rest-url", sim.base_http_url,
           "--max-requests-per-sec", "3", "--concurrency", "1"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    try:
        deadline = time.monotonic() + 60
        done = 0
        while time.monotonic() < deadline and proc.poll() is None:
            done = writer.count_rows(killed, BACKFILL_JOBS)
            if done >= 3:
                break
            time.sleep(0.1)
        assert proc.poll() is None, (
            f"the backfill ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        )
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stderr.close()
    plan = make_plan("okx", insts, "trades", t0, start, chunk_secs=60)
    partial = writer.count_rows(killed, BACKFILL_JOBS)
    assert 3 <= partial < plan.total_chunks()

    resumed = run_backfill(killed, plan, rest_url=sim.base_http_url, retry=FAST_RETRY)
    assert resumed.chunks_skipped >= partial and resumed.chunks_run + resumed.chunks_skipped == plan.total_chunks()
    run_backfill(clean, plan, rest_url=sim.base_http_url, retry=FAST_RETRY)

    from pipeline.lake.tables import BRONZE_TRADES

    a, b = _key(writer.read(killed, BRONZE_TRADES)), _key(writer.read(clean, BRONZE_TRADES))
    assert a.height == b.height == sum(len(truth(sim, "okx", i, t0, start)) for i in insts)
    assert a.equals(b)
    assert a.select("instrument", "trade_id").is_unique().all()
    jobs = writer.read(killed, BACKFILL_JOBS)
    assert jobs.select("instrument", "chunk").is_unique().all() and jobs.height == plan.total_chunks()
