"""The backfill, gap-filling and universe flows under a real Prefect server (test harness)."""

from __future__ import annotations

import asyncio
import time

import pytest
from prefect.client.orchestration import get_client

from pipeline.ingest.gaps import gap_row
from pipeline.lake import writer
from pipeline.lake.tables import BRONZE_DERIVATIVES, BRONZE_GAPS, BRONZE_TRADES, SILVER_INSTRUMENTS
from tests.backfill.backfillkit import truth, window

pytestmark = pytest.mark.timeout(180)


def _artifacts() -> dict[str, object]:
    async def go() -> dict[str, object]:
        async with get_client() as client:
            return {a.key: a.data for a in await client.read_latest_artifacts() if a.key}

    return asyncio.run(go())


def test_flows_backfill_fill_gaps_and_refresh_the_universe(prefect_harness, sim, lake) -> None:
    from flows.backfill import backfill_flow
    from flows.gaps import fill_gaps_flow
    from flows.universe import universe_flow

    t0, start = window(sim)
    state = backfill_flow(venue="okx", instruments=["BTC-USDT", "ETH-USDT"], start=str(t0), end=str(start),
                          lake=lake.root, rest_url=sim.base_http_url, chunk_secs=300, return_state=True)  # fmt: skip
    assert state.is_completed(), state.message
    totals = state.result()
    expected = sum(len(truth(sim, "okx", i, t0, start)) for i in ("BTC-USDT", "ETH-USDT"))
    assert totals["rows"] == expected == writer.count_rows(lake, BRONZE_TRADES)

    # open interest through the same flow: its period defaults to 5m (the candles' 1m would be refused)
    oi_end = int(time.time() * 1000) // 300_000 * 300_000
    oi = backfill_flow(venue="okx", instruments=["BTC-USDT-SWAP"], kind="open-interest", start=str(oi_end - 7_200_000),
                       end=str(oi_end), lake=lake.root, rest_url=sim.base_http_url, return_state=True)  # fmt: skip
    assert oi.is_completed(), oi.message
    want = sim.call(lambda: sim.market.derivatives.open_interest_history("okx", "BTC-USDT-SWAP", "5m",
                                                                          oi_end - 7_200_000, oi_end))  # fmt: skip
    assert len(want) > 0 and oi.result()["rows"] == len(want) == writer.count_rows(lake, BRONZE_DERIVATIVES)

    bad = backfill_flow(
        venue="okx", instruments=["BTC-USDT"], start="now", end="-1h", lake=lake.root, return_state=True
    )
    assert bad.is_failed() and "start/end" in str(bad.message)

    now = int(time.time() * 1000)
    writer.append_rows(
        lake, BRONZE_GAPS, [gap_row("okx", "ETH-USDT", "quotes", now - 9_000, now - 5_000, None, None, "quiet")]
    )
    gaps = fill_gaps_flow(lake=lake.root, rest_url=sim.base_http_url, return_state=True)
    assert gaps.is_completed() and gaps.result()["unfillable"] == 1

    uni = universe_flow(lake=lake.root, top_n=3, rest_url=sim.base_http_url, return_state=True)
    assert uni.is_completed() and uni.result() == {"okx": 3, "deribit": 3}
    assert writer.count_rows(lake, SILVER_INSTRUMENTS) == 6

    artifacts = _artifacts()
    progress = [v for k, v in artifacts.items() if k.startswith("backfill-") and not k.endswith("summary")]
    assert 100.0 in progress
    assert any(k.startswith("backfill-") and k.endswith("summary") for k in artifacts)
    assert "fill-gaps" in artifacts and "universe" in artifacts
