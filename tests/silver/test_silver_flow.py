"""The silver flow under a real Prefect server: a table-level contract failure fails the run and leaves a
markdown artifact naming the rule; a clean run completes and reports what it wrote."""

from __future__ import annotations

import asyncio

import pytest

from pipeline.lake import writer
from pipeline.lake.tables import BRONZE_TRADES, SILVER_QUARANTINE
from tests.silver_rows import T0_MS, trade


async def _artifact(key: str):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async with get_client() as client:
        return await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))


def test_silver_flow_fails_on_a_table_level_failure_and_publishes_an_artifact(lake, prefect_harness) -> None:
    from flows.silver import silver_flow

    good = [trade("BTC-USDT-SWAP", 100 + i, T0_MS + i * 1000, 100.0, 1.0) for i in range(8)]
    bad = [trade("BTC-USDT-SWAP", 900 + i, T0_MS + 60_000 + i, -2.0, 1.0) for i in range(4)]
    writer.append_rows(lake, BRONZE_TRADES, good + bad)
    state = silver_flow(lake=lake.root, now_ms=T0_MS + 3_600_000, fail_share=0.1, return_state=True)
    assert state.is_failed()
    with pytest.raises(Exception, match="failing_share"):
        state.result()
    # This run's artifact: the Prefect harness is shared by the session, and other tests' runs use the same key.
    run_id = state.state_details.flow_run_id
    artifacts = [a for a in asyncio.run(_artifact("silver-contract-failures")) if a.flow_run_id == run_id]
    assert len(artifacts) == 1, artifacts
    assert "price:greater_than(0)" in artifacts[0].data and "failing_share" in artifacts[0].data
    assert writer.read(lake, SILVER_QUARANTINE).height == 4

    # With a tolerant threshold the same rows go through; the run completes.
    written = silver_flow(lake=lake.root, now_ms=T0_MS + 3_600_000, fail_share=0.5)
    assert written["silver/trades"] == len(good)
