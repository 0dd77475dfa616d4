"""Parameter validation: every bad parameter is a ConfigError naming it, raised before any request."""

from __future__ import annotations

import time

import pytest

from pipeline.backfill import make_plan, run_backfill
from pipeline.backfill.plan import parse_time_ms
from pipeline.cli import main
from pipeline.errors import ConfigError
from tests.backfill.backfillkit import FAST_RETRY

NOW = 1_790_000_000_000  # fixed clock: plans are pure functions of their parameters


@pytest.mark.parametrize(
    ("kwargs", "key", "words"),
    [
        (dict(venue="binance"), "venue", "unknown venue"),
        (dict(kind="quotes"), "kind", "unknown kind"),
        (dict(kind="candles", timeframe="2h"), "timeframe", "okx has no '2h' candles"),
        (
            dict(venue="deribit", instruments=["ETH-PERPETUAL"], kind="candles", timeframe="3d"),
            "timeframe",
            "deribit has no",
        ),
        (dict(start="2026-09-01", end="2026-08-01"), "start/end", "is not before end"),
        (dict(start="-1h", end="-2h"), "start/end", "is not before end"),
        (dict(start="yesterday-ish"), "start", "is not a time"),
        (dict(instruments=["BTC/USDT"]), "instruments", "not okx instrument names: BTC/USDT"),
        (dict(instruments=["ETH-USDT", "../etc"]), "instruments", "../etc"),
        (dict(instruments=[]), "instruments", "names no instruments"),
        (dict(start="-100d"), "start", "only the last 90 days of trades"),
        (dict(chunk_secs=7), "chunk_secs", "divisor or multiple of a day"),
        (dict(kind="candles", timeframe="1h", chunk_secs=600), "chunk_secs", "not a whole number of 1h bars"),
    ],
)
def test_bad_parameters_are_config_errors(kwargs: dict, key: str, words: str) -> None:
    params = dict(venue="okx", instruments=["BTC-USDT"], kind="trades", start="-2h", end="now") | kwargs
    with pytest.raises(ConfigError) as err:
        make_plan(
            params.pop("venue"),
            params.pop("instruments"),
            params.pop("kind"),
            params.pop("start"),
            params.pop("end"),
            now_ms=NOW,
            **params,
        )
    assert err.value.key == key and words in str(err.value), str(err.value)


def test_plan_cuts_windows_on_the_utc_grid_and_has_a_stable_job_id() -> None:
    start = NOW - NOW % 86_400_000 - 3_600_000  # 23:00 the day before
    plan = make_plan(
        "okx", ["BTC-USDT", "ETH-USDT"], "trades", start, start + 2 * 3_600_000, chunk_secs=3_600, now_ms=NOW
    )
    chunks = plan.chunks("BTC-USDT")
    assert [(c.number, c.start_ms - start, c.end_ms - start) for c in chunks] == [
        (0, 0, 3_600_000),
        (1, 3_600_000, 7_200_000),
    ]
    assert plan.total_chunks() == 4
    again = make_plan(
        "okx", ["BTC-USDT", "ETH-USDT"], "trades", start, start + 2 * 3_600_000, chunk_secs=3_600, now_ms=NOW
    )
    assert again.job_id == plan.job_id and plan.app_id("BTC-USDT") != plan.app_id("ETH-USDT")
    other = make_plan("okx", ["BTC-USDT"], "trades", start, start + 2 * 3_600_000, chunk_secs=3_600, now_ms=NOW)
    assert other.job_id != plan.job_id


def test_end_in_the_future_is_clamped_to_now_and_candle_starts_to_whole_bars() -> None:
    plan = make_plan(
        "deribit", ["ETH-PERPETUAL"], "candles", NOW - 5_000_123, NOW + 86_400_000, timeframe="1h", now_ms=NOW
    )
    ((_, start, end),) = plan.items
    assert end == NOW and start % 3_600_000 == 0 and start <= NOW - 5_000_123


def test_times_parse_iso_relative_and_epoch() -> None:
    assert parse_time_ms("2026-05-01", "start") == 1_777_593_600_000
    assert parse_time_ms("2026-05-01T01:00Z", "start") == 1_777_593_600_000 + 3_600_000
    assert parse_time_ms("-2h", "start", now_ms=NOW) == NOW - 7_200_000
    assert parse_time_ms(123, "start") == 123


def test_unknown_instrument_fails_after_one_listing_call_and_no_data_request(sim, lake) -> None:
    before = sim.call(lambda: dict(sim.ctx.counters))
    plan = make_plan("okx", ["BTC-USDT", "DOGE-EUR"], "trades", "-5m", "now")
    with pytest.raises(ConfigError, match="okx does not list DOGE-EUR"):
        run_backfill(lake, plan, rest_url=sim.base_http_url, retry=FAST_RETRY)
    after = sim.call(lambda: dict(sim.ctx.counters))
    # only public/instruments was asked (retries of it included); never history-trades
    listing_calls = after.get("rest_requests.okx", 0) - before.get("rest_requests.okx", 0)
    faults = sum(after.get(k, 0) - before.get(k, 0) for k in ("rest_429", "rest_5xx", "rest_429_rate_limited"))
    assert listing_calls == 1 + faults
    assert not (lake.local_path("bronze", "trades")).exists()


def test_cli_reports_bad_parameters_with_exit_code_2(lake, capsys) -> None:
    code = main(
        [
            "--lake",
            lake.root,
            "backfill",
            "--venue",
            "okx",
            "--instruments",
            "BTC-USDT",
            "--start",
            "now",
            "--end=-1h",
            "--quiet",
        ]
    )
    assert code == 2
    assert "start/end" in capsys.readouterr().err


def test_now_is_the_wall_clock() -> None:
    assert abs(parse_time_ms("now", "end") - time.time() * 1000) < 5_000
