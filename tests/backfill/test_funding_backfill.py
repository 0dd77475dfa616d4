"""backfill --kind funding against the simulator over loopback (429 and 5xx injected): every settlement the
simulator made in the window is in bronze/funding exactly once with its interval, a stopped job resumes, a
re-run writes nothing; the OKX REST body from the real-data folder parses through the venue's row builder."""

from __future__ import annotations

import json
import time

import polars as pl
import pytest

from pipeline.backfill import make_plan, run_backfill
from pipeline.backfill.funding import catch_up_items, with_intervals
from pipeline.errors import ConfigError, FrameError
from pipeline.lake import writer
from pipeline.lake.tables import BACKFILL_JOBS, BRONZE_FUNDING, SILVER_FUNDING
from pipeline.silver import run_silver
from pipeline.venues import okx
from tests.backfill.backfillkit import FAST_RETRY

pytestmark = pytest.mark.timeout(120)
DAY, HOUR = 86_400_000, 3_600_000
SWAPS = ["BTC-USDT-SWAP", "ETH-USDT-SWAP", "SOL-USDT-SWAP"]


def settlements(sim, inst: str, start_ms: int, end_ms: int) -> list:
    """Ground truth: every settlement of ``inst`` with start_ms <= funding_time < end_ms, oldest first."""
    book = sim.call(lambda: sim.market.derivatives.book("okx", inst))
    return [s for s in sim.call(lambda: book.settlements(start_ms, end_ms)) if s.funding_time < end_ms]


def bronze(lake, inst: str) -> pl.DataFrame:
    df = writer.read(lake, BRONZE_FUNDING).filter(pl.col("instrument") == inst)
    return df.sort("funding_time")


def ms(col: pl.Series) -> list[int]:
    return [int(t.timestamp() * 1000) for t in col]


def test_every_okx_settlement_in_the_window_lands_once_with_its_interval(sim, lake) -> None:
    now = int(time.time() * 1000)
    start, end = now - 40 * DAY, now - 2 * HOUR
    plan = make_plan("okx", SWAPS, "funding", start, end)
    assert plan.chunk_secs == 30 * 86_400 and plan.total_chunks() <= 3 * 3  # 40 days on a 30-day grid
    result = run_backfill(lake, plan, rest_url=sim.base_http_url, retry=FAST_RETRY)
    assert result.rest.retries > 0  # the faults were met and retried
    intervals = set()
    for inst in SWAPS:
        want = settlements(sim, inst, start, end)
        got = bronze(lake, inst)
        assert len(want) >= 39 * 3 and got.height == len(want)  # 40 days less 2 h: 119 or 120 8-hourly
        assert ms(got["funding_time"]) == [s.funding_time for s in want]
        assert got["realized_rate"].to_list() == pytest.approx([s.rate for s in want], abs=1e-12)
        assert got["interval_hours"].to_list() == [s.interval_ms / HOUR for s in want]  # the first one's too
        assert set(got["source"]) == {"rest"} and set(got["venue"]) == {"okx"}
        intervals |= set(got["interval_hours"].to_list())
    assert {8.0, 4.0} <= intervals  # 8-hour swaps, a 4-hour one, and ETH's switch from 8 h to 4 h
    assert result.rows == sum(len(settlements(sim, i, start, end)) for i in SWAPS)

    again = run_backfill(lake, plan, rest_url=sim.base_http_url, retry=FAST_RETRY)
    assert again.rows == 0 and again.chunks_skipped == plan.total_chunks()
    # an overlapping job (another window: another job id) writes only what bronze lacks
    wider = make_plan("okx", SWAPS[:1], "funding", start - 5 * DAY, end)
    more = run_backfill(lake, wider, rest_url=sim.base_http_url, retry=FAST_RETRY)
    assert more.rows == len(settlements(sim, SWAPS[0], start - 5 * DAY, start))
    assert bronze(lake, SWAPS[0]).select("funding_time").is_unique().all()

    # silver: one settled row per settlement, equal to the venue's
    report = run_silver(lake, now_ms=now)
    assert report.ok and not report.quarantined
    s = writer.read(lake, SILVER_FUNDING).filter(pl.col("instrument") == SWAPS[1]).sort("funding_time")
    want = settlements(sim, SWAPS[1], start, end)
    assert ms(s["funding_time"]) == [w.funding_time for w in want]
    assert s["funding_rate"].to_list() == pytest.approx([w.rate for w in want], abs=1e-12)
    assert s["interval_hours"].to_list() == [w.interval_ms / HOUR for w in want]


def test_a_stopped_funding_job_resumes_without_writing_a_row_twice(sim, lake) -> None:
    now = int(time.time() * 1000)
    plan = make_plan("okx", SWAPS[2:], "funding", now - 80 * DAY, now - HOUR, chunk_secs=10 * 86_400)

    class Stop(Exception):
        pass

    def stop_after_two(p) -> None:  # noqa: ANN001 - BackfillProgress
        if p.done_chunks == 2:
            raise Stop

    with pytest.raises(Stop):
        run_backfill(lake, plan, rest_url=sim.base_http_url, retry=FAST_RETRY, progress=stop_after_two)
    assert writer.read(lake, BACKFILL_JOBS).height == 2
    resumed = run_backfill(lake, plan, rest_url=sim.base_http_url, retry=FAST_RETRY)
    assert resumed.chunks_skipped == 2 and resumed.chunks_run == plan.total_chunks() - 2
    want = settlements(sim, SWAPS[2], now - 80 * DAY, now - HOUR)
    got = bronze(lake, SWAPS[2])
    assert ms(got["funding_time"]) == [s.funding_time for s in want]  # each once, none missing


def test_catch_up_starts_after_the_last_stored_settlement(sim, lake) -> None:
    now = int(time.time() * 1000)
    items = catch_up_items(lake, "okx", ["BTC-USDT", "BTC-USDT-SWAP"], now, lookback_ms=3 * DAY)
    assert items == [("BTC-USDT-SWAP", now - 3 * DAY, now)]  # spot has no funding
    run_backfill(lake, make_plan("okx", ["BTC-USDT-SWAP"], "funding", now - 3 * DAY, now), rest_url=sim.base_http_url,
                 retry=FAST_RETRY)  # fmt: skip
    last = max(ms(bronze(lake, "BTC-USDT-SWAP")["funding_time"]))
    assert catch_up_items(lake, "okx", ["BTC-USDT-SWAP"], now) == [("BTC-USDT-SWAP", last + 1, now)]


def test_only_swaps_and_perpetuals_are_backfilled_for_funding() -> None:
    with pytest.raises(ConfigError, match=r"BTC-USDT \(spot\)"):
        make_plan("okx", ["BTC-USDT-SWAP", "BTC-USDT"], "funding", "-1d")
    with pytest.raises(ConfigError, match=r"ETH-27DEC26-3000-C \(option\)"):
        make_plan("deribit", ["ETH-27DEC26-3000-C"], "funding", "-1d")
    with pytest.raises(ConfigError, match="funding history"):
        make_plan("okx", ["BTC-USDT-SWAP"], "funding", "-120d")
    assert make_plan("deribit", ["ETH-PERPETUAL"], "funding", "-120d").kind == "funding"


def test_the_real_okx_funding_history_body_parses_through_the_row_builder(realdata) -> None:
    line = (realdata / "okx-funding" / "nautilus-funding-rate-history.rest.log").read_text().splitlines()[0]
    url, rest = line.split(" -> ", 1)
    receive_secs, body = rest.split(": ", 1)
    assert "funding-rate-history" in url
    receive_us = int(float(receive_secs) * 1_000_000)
    rows = [okx.funding_row(item, receive_us) for item in json.loads(body)["data"]]
    rows = with_intervals(rows, 0, 2**62)
    assert rows == [
        ("okx", "BTC-USDT-SWAP", 1704038400000, -0.0000236017, -0.00002, None, receive_us, "rest"),
        ("okx", "BTC-USDT-SWAP", 1704067200000, 0.0001515032, 0.00015, 8.0, receive_us, "rest"),
    ]
    assert BRONZE_FUNDING.from_rows is not None and BRONZE_FUNDING.from_rows(rows).num_rows == 2
    with pytest.raises(FrameError, match="fundingRate is not a number"):
        okx.funding_row({**json.loads(body)["data"][0], "fundingRate": "n/a"}, receive_us)


def test_deribit_hourly_history_lands_once_with_interest_1h_as_the_rate(sim, lake) -> None:
    now = int(time.time() * 1000)
    start, end = now - 40 * DAY, now - HOUR  # two Deribit windows of 744 hours
    run_backfill(lake, make_plan("deribit", ["ETH-PERPETUAL"], "funding", start, end), rest_url=sim.base_http_url,
                 retry=FAST_RETRY)  # fmt: skip
    book = sim.call(lambda: sim.market.derivatives.book("deribit", "ETH-PERPETUAL"))
    want = [s for s in sim.call(lambda: book.settlements(start, end)) if s.funding_time < end]
    got = bronze(lake, "ETH-PERPETUAL")
    assert len(want) >= 40 * 24 - 1 and ms(got["funding_time"]) == [s.funding_time for s in want]
    assert got["funding_rate"].to_list() == pytest.approx([s.rate for s in want], abs=1e-15)
    assert set(got["interval_hours"]) == {1.0} and got["realized_rate"].null_count() == got.height


def test_refresh_and_the_daily_universe_bring_the_swaps_funding_up_to_date(sim, lake) -> None:
    from pipeline import refresh
    from pipeline.universe import UniverseFilters, refresh_universe

    now = int(time.time() * 1000)
    first = refresh(["BTC-USDT", "BTC-USDT-SWAP"], venue="okx", lake=lake, rest_url=sim.base_http_url,
                    lookback_secs=60, candles=False, silver=False, gold=False, now_ms=now, retry=FAST_RETRY)  # fmt: skip
    (funding,) = [b for b in first.backfills if b.kind == "funding"]
    assert funding.instruments == ["BTC-USDT-SWAP"]  # the spot pair has no funding
    want = settlements(sim, "BTC-USDT-SWAP", now - 90 * DAY + HOUR, now)  # the venue's history window
    assert ms(bronze(lake, "BTC-USDT-SWAP")["funding_time"]) == [s.funding_time for s in want]
    again = refresh(["BTC-USDT-SWAP"], venue="okx", lake=lake, rest_url=sim.base_http_url, lookback_secs=60,
                    candles=False, silver=False, gold=False, now_ms=now + 1000, retry=FAST_RETRY)  # fmt: skip
    assert sum(b.rows for b in again.backfills if b.kind == "funding") == 0

    filters = UniverseFilters(top_n=3, okx_markets=("spot", "swap"))
    (change,) = refresh_universe(lake, ["okx"], filters=filters, rest_url=sim.base_http_url, funding=True,
                                 retry=FAST_RETRY)  # fmt: skip
    swaps = [n for n in change.selected if n.endswith("-SWAP")]
    assert swaps and bronze(lake, "BTC-USDT-SWAP")["funding_time"].is_unique().all()
    for inst in swaps:
        assert bronze(lake, inst).height >= 90 * 3 - 1  # the whole history window, 8 h or shorter intervals


def test_streamed_and_backfilled_settlements_meet_in_silver_exactly_once(tmp_path, lake) -> None:
    """An hour of funding per second: the stream sees a few settlements happen, the backfill fetches the same
    window over REST, and silver holds every settlement the simulator made once, at the venue's rate."""
    import asyncio

    from pipeline.config import StreamConfig, VenueStreamConfig
    from pipeline.ingest.stream import run_stream
    from pipeline.lake.tables import BRONZE_DERIVATIVES
    from pipeline.simulator import SimConfig, SimulatorThread
    from tests.ingest.streamkit import FAST

    insts = ("BTC-USDT-SWAP", "SOL-USDT-SWAP")  # every 8 and 4 (scaled) hours
    config = StreamConfig("funding", FAST, {"okx": VenueStreamConfig("okx", "sim", insts, (), ("funding",))})
    sim_config = SimConfig(port=0, seed=5, okx_instruments=6, deribit_options=2, funding_interval_scale=1 / 3600)
    with SimulatorThread(sim_config) as sim:
        began = sim.call(lambda: sim.market.now_ms)
        asyncio.run(run_stream(lake, config, sim_ws_url=f"ws://127.0.0.1:{sim.port}", seconds=8,
                               spool_dir=tmp_path / "spool", handle_signals=False))  # fmt: skip
        now = sim.call(lambda: sim.market.now_ms)
        streamed = writer.read(lake, BRONZE_DERIVATIVES).filter(pl.col("channel") == "funding-rate")
        assert set(streamed["instrument"]) == set(insts)
        later = now + 60_000  # a clock past every funding time the stream announced
        assert run_silver(lake, now_ms=later, lateness_secs=0).ok
        from_stream = writer.read(lake, SILVER_FUNDING)
        truth = {(i, s.funding_time): s for i in insts for s in settlements(sim, i, began - 60_000, later)}
        assert from_stream.height >= 2 and set(from_stream["source"]) == {"stream"}
        for r in from_stream.iter_rows(named=True):  # a prediction settles at a real settlement time
            assert (r["instrument"], int(r["funding_time"].timestamp() * 1000)) in truth

        start = began - 60_000
        plan = make_plan("okx", list(insts), "funding", start, now, chunk_secs=86_400)
        run_backfill(lake, plan, rest_url=sim.base_http_url, retry=FAST_RETRY)
        run_silver(lake, now_ms=later, lateness_secs=0)
        silver = writer.read(lake, SILVER_FUNDING).sort("instrument", "funding_time")
        assert silver.select("instrument", "funding_time").is_unique().all()
        for inst in insts:
            want = settlements(sim, inst, start, now)
            got = silver.filter((pl.col("instrument") == inst) & (pl.col("funding_time") < dt_ms(now)))
            assert len(want) >= 3 and ms(got["funding_time"]) == [s.funding_time for s in want]
            assert got["funding_rate"].to_list() == pytest.approx([s.rate for s in want], abs=1e-12)
            assert set(got["source"]) == {"rest"}  # the history wins over every prediction
            assert got["interval_hours"].to_list() == pytest.approx([s.interval_ms / HOUR for s in want])
        after = silver.filter(pl.col("funding_time") >= dt_ms(now))  # announced by the stream, after the backfill
        assert set(after["source"]) <= {"stream"}
        assert all(
            (r["instrument"], int(r["funding_time"].timestamp() * 1000)) in truth for r in after.iter_rows(named=True)
        )
        again = run_silver(lake, now_ms=later, lateness_secs=0)
        assert again.written.get("silver/funding", 0) == 0


def dt_ms(value: int):  # noqa: ANN201 - a datetime
    import datetime as dt

    return dt.datetime.fromtimestamp(value / 1000, dt.UTC)


def test_the_cli_backfills_the_universes_swaps_and_refuses_a_spot_pair(sim, lake, capsys) -> None:
    from pipeline.cli import main
    from pipeline.universe import UniverseFilters, current_universe, refresh_universe

    refresh_universe(lake, ["okx"], filters=UniverseFilters(top_n=4), rest_url=sim.base_http_url, retry=FAST_RETRY)
    universe = current_universe(lake, "okx")
    swaps = sorted(n for n in universe if n.endswith("-SWAP"))
    assert swaps and len(swaps) < len(universe)  # spot pairs in it too
    common = ["--lake", lake.root, "backfill", "--venue", "okx", "--kind", "funding", "--start=-3d", "--quiet"]
    assert main([*common, "--instruments", "universe", "--rest-url", sim.base_http_url]) == 0
    assert sorted(set(writer.read(lake, BRONZE_FUNDING)["instrument"])) == swaps
    assert "funding for" in capsys.readouterr().out

    before = writer.read(lake, BRONZE_FUNDING).height
    assert main([*common, "--instruments", "BTC-USDT,BTC-USDT-SWAP", "--rest-url", sim.base_http_url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "BTC-USDT (spot)" in err and "swaps/perpetuals" in err
    assert writer.read(lake, BRONZE_FUNDING).height == before
