"""silver/funding from hand-built bronze rows: REST wins over the stream, a prediction settles only once its
funding time is behind the run's horizon, intervals come from the data, contract failures are quarantined,
and a re-run writes nothing."""

from __future__ import annotations

import json

import polars as pl

from pipeline.lake import writer
from pipeline.lake.tables import BRONZE_DERIVATIVES, BRONZE_FUNDING, SILVER_FUNDING, SILVER_QUARANTINE
from pipeline.silver import run_silver
from pipeline.silver.funding import DERIBIT_CAP_8H, OKX_CAPS

H = 3_600_000
T0 = 1_786_560_000_000 - 1_786_560_000_000 % (8 * H)  # a UTC 8-hour boundary in 2026
SWAP = "BTC-USDT-SWAP"


def stream(inst: str, funding_time: int, rate: float, ts: int, cap: str | None = "0.00375") -> tuple:
    raw = None if cap is None else json.dumps({"maxFundingRate": cap, "minFundingRate": f"-{cap}"})
    return ("okx", "swap", inst, "funding-rate", ts, ts * 1000 + 5, "ws", rate, None, funding_time,
            funding_time + 8 * H, None, None, None, None, None, raw)  # fmt: skip


def rest(inst: str, funding_time: int, rate: float, realized: float | None, interval: float | None = 8.0) -> tuple:
    venue = "deribit" if inst.endswith("PERPETUAL") else "okx"
    return (venue, inst, funding_time, rate, realized, interval, (funding_time + H) * 1000, "rest")


def put(lake, spec, rows: list[tuple]) -> None:
    assert spec.from_rows is not None
    writer.append(lake, spec, spec.from_rows(rows))


def silver_version(lake) -> int:
    table = writer.open_table(lake, SILVER_FUNDING)
    assert table is not None
    return table.version()


def silver(lake) -> dict[tuple[str, int], dict]:
    df = writer.read(lake, SILVER_FUNDING).sort("instrument", "funding_time")
    keys = [(r["instrument"], int(r["funding_time"].timestamp() * 1000)) for r in df.iter_rows(named=True)]
    assert len(keys) == len(set(keys))  # one row per settlement
    return dict(zip(keys, df.iter_rows(named=True), strict=True))


def test_rest_wins_a_prediction_settles_after_its_time_and_a_rerun_writes_nothing(lake) -> None:
    t1, t2 = T0 + 8 * H, T0 + 16 * H
    # predictions for t1 change until the settlement; the last one pushed is 0.0002
    put(
        lake, BRONZE_DERIVATIVES, [stream(SWAP, t1, r, t1 - 60_000 * (3 - i)) for i, r in enumerate((1e-4, 3e-4, 2e-4))]
    )
    put(lake, BRONZE_DERIVATIVES, [stream(SWAP, t2, 5e-4, t1 + 60_000)])  # the next period's, still open
    report = run_silver(lake, now_ms=t1 + 5 * 60_000)
    assert report.ok
    got = silver(lake)
    assert list(got) == [(SWAP, t1)]  # t2 has not passed
    assert got[(SWAP, t1)]["funding_rate"] == 2e-4 and got[(SWAP, t1)]["source"] == "stream"
    assert got[(SWAP, t1)]["rate_cap"] == 0.00375  # the venue's own cap, from the push's raw fields
    assert got[(SWAP, t1)]["interval_hours"] is None  # nothing before it yet

    # the REST history arrives: realizedRate wins over the prediction, and T0 gives t1 its interval
    put(lake, BRONZE_FUNDING, [rest(SWAP, T0, 1.5e-4, 1.4e-4, 8.0), rest(SWAP, t1, 2.2e-4, 2.1e-4)])
    run_silver(lake, now_ms=t1 + 10 * 60_000)
    got = silver(lake)
    assert [(k, r["funding_rate"], r["source"], r["interval_hours"]) for k, r in got.items()] == [
        ((SWAP, T0), 1.4e-4, "rest", 8.0),
        ((SWAP, t1), 2.1e-4, "rest", 8.0),
    ]
    assert got[(SWAP, t1)]["rate_cap"] == 0.00375  # the streamed cap still applies to the key

    again = run_silver(lake, now_ms=t1 + 10 * 60_000)
    assert again.written.get("silver/funding", 0) == 0
    version = silver_version(lake)

    # t2 passes: the stream's prediction becomes its settlement; a later stream push for t1 changes nothing
    put(lake, BRONZE_DERIVATIVES, [stream(SWAP, t1, 9e-4, t1 - 1)])
    run_silver(lake, now_ms=t2 + 2 * 60_000)
    got = silver(lake)
    assert got[(SWAP, t2)]["funding_rate"] == 5e-4 and got[(SWAP, t2)]["source"] == "stream"
    assert got[(SWAP, t2)]["interval_hours"] == 8.0 and got[(SWAP, t1)]["funding_rate"] == 2.1e-4
    assert silver_version(lake) == version + 1  # one append: the new settlement


def test_a_late_stream_row_settles_a_key_behind_the_horizon(lake) -> None:
    t1 = T0 + 8 * H
    run_silver(lake, now_ms=t1 + H)  # a horizon past t1 with nothing to settle
    put(lake, BRONZE_DERIVATIVES, [stream(SWAP, t1, 1e-4, t1 - 30_000)])  # a capture imported afterwards
    run_silver(lake, now_ms=t1 + 2 * H)
    assert silver(lake)[(SWAP, t1)]["funding_rate"] == 1e-4


def test_intervals_come_from_the_data_when_the_schedule_changes(lake) -> None:
    inst = "ETH-USDT-SWAP"
    times = [T0, T0 + 8 * H, T0 + 16 * H, T0 + 20 * H, T0 + 24 * H, T0 + 25 * H]  # 8 h, then 4 h, then 1 h
    put(lake, BRONZE_FUNDING, [rest(inst, t, 1e-4, None, 8.0 if i == 0 else None) for i, t in enumerate(times)])
    run_silver(lake, now_ms=T0 + 30 * H)
    got = silver(lake)
    assert [got[(inst, t)]["interval_hours"] for t in times] == [8.0, 8.0, 8.0, 4.0, 4.0, 1.0]
    assert [got[(inst, t)]["funding_rate"] for t in times] == [1e-4] * 6  # fundingRate where realizedRate is empty
    # a settlement the first backfill missed: its successor's interval is rewritten with it
    put(lake, BRONZE_FUNDING, [rest(inst, T0 + 12 * H, 2e-4, None, None)])
    report = run_silver(lake, now_ms=T0 + 31 * H)
    got = silver(lake)
    assert got[(inst, T0 + 12 * H)]["interval_hours"] == 4.0 and got[(inst, T0 + 16 * H)]["interval_hours"] == 4.0
    assert report.written["silver/funding"] == 2 and report.updated["silver/funding"] == 1


def test_contract_failures_are_quarantined_with_their_rule_and_the_rest_is_written(lake) -> None:
    t1, t2 = T0 + 8 * H, T0 + 16 * H
    put(lake, BRONZE_FUNDING, [rest(SWAP, T0, 1e-4, 1e-4), rest(SWAP, t1, 1e-4, 1e-4)])
    # over the streamed cap; off the 8-hour schedule (30 minutes late); over OKX's documented ETH cap (no stream)
    put(lake, BRONZE_DERIVATIVES, [stream(SWAP, t2, 0.01, t2 - 1000)])
    put(lake, BRONZE_FUNDING, [rest(SWAP, t2 + 8 * H + H // 2, 1e-4, 1e-4)])
    put(lake, BRONZE_FUNDING, [rest("ETH-USDT-SWAP", T0, 0.02, 0.02)])
    # Deribit: interest_1h within an eighth of the 8-hour cap passes, above it fails
    put(
        lake,
        BRONZE_FUNDING,
        [rest("ETH-PERPETUAL", T0, 1e-4, None, 1.0), rest("ETH-PERPETUAL", T0 + H, 0.001, None, 1.0)],
    )
    report = run_silver(lake, now_ms=t2 + 10 * H)
    assert report.ok  # quarantined, not fatal
    got = silver(lake)
    assert set(got) == {(SWAP, T0), (SWAP, t1), ("ETH-PERPETUAL", T0)}
    q = writer.read(lake, SILVER_QUARANTINE).filter(pl.col("table") == "silver/funding")
    rules = sorted(zip(q["instrument"].to_list(), q["rule"].to_list(), strict=True))
    assert rules == [
        ("BTC-USDT-SWAP", "funding_time_on_schedule"),
        ("BTC-USDT-SWAP", "rate_within_cap"),
        ("ETH-PERPETUAL", "rate_within_cap"),
        ("ETH-USDT-SWAP", "rate_within_cap"),
    ]
    assert json.loads(q.filter(pl.col("rule") == "rate_within_cap")["row"][0])["rate_cap"] in (
        0.00375, DERIBIT_CAP_8H / 8, OKX_CAPS["ETH"]
    )  # fmt: skip
    assert report.quarantined["silver/funding rate_within_cap"] == 3
    run_silver(lake, now_ms=t2 + 10 * H)  # quarantine rows are not added twice
    assert writer.read(lake, SILVER_QUARANTINE).filter(pl.col("table") == "silver/funding").height == 4
