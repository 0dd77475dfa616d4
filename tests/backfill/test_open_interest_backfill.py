"""backfill --kind open-interest: the OKX row builder, then the whole job against the simulator over loopback
(429 and 5xx injected): every point of the window lands once with the simulator's values, a stopped job
resumes, a re-run writes nothing, another period writes only the points bronze lacks, ccxt's own
fetch_open_interest_history reads the same numbers; Deribit, spot and options are refused by name. Counts come
from the simulator's ground truth, never from the clock."""

from __future__ import annotations

import time
from collections.abc import Iterator

import ccxt
import polars as pl
import pytest

from pipeline.backfill import make_plan, run_backfill
from pipeline.backfill.open_interest import CHANNEL
from pipeline.errors import ConfigError, FrameError
from pipeline.lake import writer
from pipeline.lake.tables import BACKFILL_JOBS, BRONZE_DERIVATIVES
from pipeline.simulator import SimConfig, SimulatorThread
from pipeline.simulator.market import Market
from pipeline.venues import okx
from tests.backfill.backfillkit import FAST_RETRY, Stop, set_faults, stop_after

pytestmark = pytest.mark.timeout(120)
DAY, HOUR, MINUTE = 86_400_000, 3_600_000, 60_000
SWAPS = ["BTC-USDT-SWAP", "ETH-USDT-SWAP"]


@pytest.fixture(scope="module")
def faulty(sim: SimulatorThread) -> Iterator[SimulatorThread]:
    """The module's simulator failing 3 requests in 10 (429 or 5xx): enough that every run meets a retry."""
    set_faults(sim, rest_429_rate=0.15, rest_5xx_rate=0.15)
    yield sim


def truth(sim: SimulatorThread, inst: str, period: str, start_ms: int, end_ms: int) -> list[tuple[int, float]]:
    d = sim.market.derivatives
    return sim.call(lambda: d.open_interest_history("okx", inst, period, start_ms, end_ms))


def bronze(lake, inst: str) -> pl.DataFrame:  # noqa: ANN001 - Lake
    df = writer.read(lake, BRONZE_DERIVATIVES)
    return df.filter((pl.col("instrument") == inst) & (pl.col("channel") == CHANNEL)).sort("exchange_ts")


def ms(col: pl.Series) -> list[int]:
    return [int(t.timestamp() * 1000) for t in col]


def test_an_okx_open_interest_history_item_becomes_a_bronze_derivatives_row() -> None:
    item = ["1790550000000", "2800476.45", "28006.5419", "2360916466.88"]  # ccxt's documented example
    row = okx.open_interest_history_row(item, "BTC-USDT-SWAP", 5)
    assert row[:7] == ("okx", "swap", "BTC-USDT-SWAP", "open-interest-history", 1790550000000, 5, "rest")
    assert row[11:14] == (2800476.45, 28006.5419, 2360916466.88) and row[-1] is None
    assert BRONZE_DERIVATIVES.from_rows is not None and BRONZE_DERIVATIVES.from_rows([row]).num_rows == 1
    assert okx.open_interest_history_row([*item, "7"], "BTC-USDT-SWAP", 5)[-1] == '{"4":"7"}'
    with pytest.raises(FrameError, match="oi is not a number"):
        okx.open_interest_history_row([item[0], "x", *item[2:]], "BTC-USDT-SWAP", 5)
    with pytest.raises(FrameError, match="not an array"):
        okx.open_interest_history_row({"ts": item[0]}, "BTC-USDT-SWAP", 5)


def test_every_point_of_the_window_lands_once_with_the_simulators_values(faulty, lake) -> None:
    sim, now = faulty, int(time.time() * 1000)
    start, end = now - 2 * DAY, now - HOUR
    plan = make_plan("okx", SWAPS, "open-interest", start, end)  # 5m by default
    assert plan.timeframe == "5m" and plan.chunk_secs == 8 * 3600  # 96 points: one request a chunk
    result = run_backfill(lake, plan, rest_url=sim.base_http_url, retry=FAST_RETRY)
    assert result.rest.retries > 0 and "5m open-interest for 2 instruments" in result.summary()
    for inst in SWAPS:
        want = truth(sim, inst, "5m", start, end)
        got = bronze(lake, inst)
        assert len(want) > 500 and ms(got["exchange_ts"]) == [t for t, _ in want]  # each point once, in order
        assert got["open_interest"].to_list() == [v for _, v in want]
        ct_val = sim.call(lambda i=inst: sim.market.instrument("okx", i).contract_value) or 1.0
        marks = sim.call(lambda i=inst, w=want: [sim.market.derivatives.mark_at("okx", i, t) for t, _ in w])
        assert got["open_interest_ccy"].to_list() == pytest.approx([v * ct_val for _, v in want], abs=1e-8)
        usd = [v * ct_val * m for (_, v), m in zip(want, marks, strict=True)]
        assert got["open_interest_usd"].to_list() == pytest.approx(usd, abs=0.006)
        assert set(got["source"]) == {"rest"} and set(got["market"]) == {"swap"}
        assert got["funding_rate"].null_count() == got["mark_price"].null_count() == got.height
    assert result.rows == sum(len(truth(sim, i, "5m", start, end)) for i in SWAPS)

    again = run_backfill(lake, plan, rest_url=sim.base_http_url, retry=FAST_RETRY)
    assert again.rows == 0 and again.chunks_skipped == plan.total_chunks()
    # hourly points over a wider window: those on the 5m grid already held are not written twice
    wider = make_plan("okx", SWAPS[:1], "open-interest", now - 6 * DAY, end, timeframe="1H")
    more = run_backfill(lake, wider, rest_url=sim.base_http_url, retry=FAST_RETRY)
    hourly = truth(sim, SWAPS[0], "1H", now - 6 * DAY, end)
    assert more.rows == len([t for t, _ in hourly if t < start]) > 0
    merged = bronze(lake, SWAPS[0])
    assert merged["exchange_ts"].is_unique().all()
    held = dict(zip(ms(merged["exchange_ts"]), merged["open_interest"].to_list(), strict=True))
    assert all(held[t] == v for t, v in hourly)  # one value per instant whatever the period


def test_a_stopped_open_interest_job_resumes_without_writing_a_point_twice(faulty, lake) -> None:
    sim, now = faulty, int(time.time() * 1000)
    start, end = now - 20 * DAY, now - HOUR
    plan = make_plan("okx", SWAPS[1:], "open-interest", start, end, timeframe="1H")
    assert plan.chunk_secs == 4 * 86_400 and plan.total_chunks() >= 5
    with pytest.raises(Stop):
        run_backfill(lake, plan, rest_url=sim.base_http_url, retry=FAST_RETRY, progress=stop_after(2))
    assert writer.read(lake, BACKFILL_JOBS).height == 2
    resumed = run_backfill(lake, plan, rest_url=sim.base_http_url, retry=FAST_RETRY)
    assert resumed.chunks_skipped == 2 and resumed.chunks_run == plan.total_chunks() - 2
    want = truth(sim, SWAPS[1], "1H", start, end)
    got = bronze(lake, SWAPS[1])
    assert ms(got["exchange_ts"]) == [t for t, _ in want] and got["open_interest"].to_list() == [v for _, v in want]


def test_a_chunk_longer_than_a_page_is_read_page_by_page(faulty, lake) -> None:
    sim, now = faulty, int(time.time() * 1000)
    start, end = now - 3 * DAY, now - 2 * HOUR
    plan = make_plan("okx", SWAPS[:1], "open-interest", start, end, chunk_secs=86_400)  # 288 points a day
    result = run_backfill(lake, plan, rest_url=sim.base_http_url, retry=FAST_RETRY)
    want = truth(sim, SWAPS[0], "5m", start, end)  # one page a chunk would keep only each day's newest 100
    assert ms(bronze(lake, SWAPS[0])["exchange_ts"]) == [t for t, _ in want] and result.rows == len(want)


def test_ccxt_fetch_open_interest_history_reads_the_numbers_bronze_holds(faulty, lake) -> None:
    sim, now = faulty, int(time.time() * 1000)
    start = now - 3 * DAY
    run_backfill(lake, make_plan("okx", SWAPS[:1], "open-interest", start, now - HOUR, timeframe="1H"),
                 rest_url=sim.base_http_url, retry=FAST_RETRY)  # fmt: skip
    rows = bronze(lake, SWAPS[0])
    held = dict(zip(ms(rows["exchange_ts"]), rows.iter_rows(named=True), strict=True))
    set_faults(sim, rest_429_rate=0.0, rest_5xx_rate=0.0)  # ccxt's own client does not retry
    try:
        ex = ccxt.okx()
        ex.urls["api"] = {"rest": sim.base_http_url}
        since = min(held) + 5 * HOUR
        got = ex.fetch_open_interest_history("BTC/USDT:USDT", "1h", since=since, limit=24)
    finally:
        set_faults(sim, rest_429_rate=0.15, rest_5xx_rate=0.15)
    assert [g["timestamp"] for g in got] == list(range(since, since + 24 * HOUR, HOUR))  # held points are on the hour
    for g in got:
        row = held[g["timestamp"]]
        assert (g["openInterestAmount"], g["baseVolume"], g["openInterestValue"]) == (
            row["open_interest"],
            row["open_interest_ccy"],
            row["open_interest_usd"],
        )


def test_deribit_spot_options_bad_periods_and_too_early_starts_are_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r"deribit serves no open-interest history.*--venue okx"):
        make_plan("deribit", ["ETH-PERPETUAL"], "open-interest", "-1d")
    with pytest.raises(ConfigError, match=r"BTC-USDT \(spot\).*BTC-USD-261225-100000-C \(option\)"):
        make_plan("okx", ["BTC-USDT-SWAP", "BTC-USDT", "BTC-USD-261225-100000-C"], "open-interest", "-1d")
    with pytest.raises(ConfigError, match=r"period.*'7m'.*5m, 15m, 30m, 1H"):
        make_plan("okx", ["BTC-USDT-SWAP"], "open-interest", "-1d", timeframe="7m")
    with pytest.raises(ConfigError, match=r"latest 1440 5m open-interest points.*1H: 60 days"):
        make_plan("okx", ["BTC-USDT-SWAP"], "open-interest", "-6d")
    assert make_plan("okx", ["BTC-USD-261225"], "open-interest", "-6d", timeframe="1H").chunk_secs == 4 * 86_400
    assert make_plan("okx", ["BTC-USDT-SWAP"], "open-interest", "-900d", timeframe="1D").chunk_secs == 96 * 86_400


def test_the_cli_backfills_open_interest_and_refuses_deribit_and_a_stray_period(faulty, lake, capsys) -> None:
    from pipeline.cli import main

    common = ["--lake", lake.root, "backfill", "--kind", "open-interest", "--start=-2d", "--quiet"]
    ok = [*common, "--venue", "okx", "--instruments", "SOL-USDT-SWAP", "--period", "1H"]
    assert main([*ok, "--rest-url", faulty.base_http_url]) == 0
    assert "1H open-interest for 1 instruments" in capsys.readouterr().out
    assert bronze(lake, "SOL-USDT-SWAP").height >= 47  # two days of hours, whatever the hour
    assert main([*common, "--venue", "deribit", "--instruments", "ETH-PERPETUAL"]) == 2
    err = capsys.readouterr().err
    assert "kind" in err and "deribit serves no open-interest history" in err and "--venue okx" in err
    candles = ["--lake", lake.root, "backfill", "--venue", "okx", "--instruments", "BTC-USDT", "--start=-1h"]
    assert main([*candles, "--kind", "candles", "--period", "1H"]) == 2
    assert "--period is for --kind open-interest" in capsys.readouterr().err


def test_the_simulators_history_is_seeded_before_the_start_and_snapshots_the_live_value_after() -> None:
    start = 1_790_000_100_000 // (5 * MINUTE) * 5 * MINUTE + 2 * MINUTE  # two minutes past a 5-minute grid time
    config = SimConfig(port=0, seed=3, okx_instruments=3, deribit_options=1, trade_history_minutes=1)
    market = Market(config, start_ms=start)
    d = market.derivatives
    before = d.open_interest_history("okx", "BTC-USDT-SWAP", "5m", start - 2 * HOUR, start + HOUR)
    assert [t for t, _ in before] == list(range(start - 2 * HOUR + 3 * MINUTE, start, 5 * MINUTE))  # none after now
    again = Market(config, start_ms=start).derivatives  # a pure function of the seed: the same history
    assert again.open_interest_history("okx", "BTC-USDT-SWAP", "5m", start - 2 * HOUR, start) == before
    assert len({v for _, v in before}) > 20  # it moves
    for step in range(1, 16 * 60 + 1):  # 16 minutes in 1-second steps: three grid times pass
        market.advance(start + step * 1000)
    live = d.open_interest_history("okx", "BTC-USDT-SWAP", "5m", start, start + HOUR)
    assert [t for t, _ in live] == [start + 3 * MINUTE, start + 8 * MINUTE, start + 13 * MINUTE]
    # a snapshot is the value in force as the step reaching the grid time began: the log agrees
    assert [v for _, v in live] == [d.open_interest("okx", "BTC-USDT-SWAP", t - 1) for t, _ in live]
