"""The stream flow under a real Prefect server (test harness): it captures, records its run and artifact."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prefect.client.orchestration import get_client

from pipeline.lake import writer
from pipeline.lake.tables import BRONZE_TRADES
from pipeline.simulator import SimulatorThread
from tests.ingest.streamkit import sim_config


def test_stream_flow_captures_and_publishes_an_artifact(prefect_harness, lake, tmp_path: Path, monkeypatch) -> None:
    from flows.stream import stream_flow

    monkeypatch.setenv("CRYPTOLAKE_LAKE", lake.root)
    with SimulatorThread(sim_config()) as sim:
        state = asyncio.run(
            stream_flow(venues=["okx"], seconds=3.0, sim_ws_url=f"ws://127.0.0.1:{sim.port}", return_state=True)
        )
    assert state.is_completed()
    counters = state.result()
    assert counters["trades"] > 0 and counters["trades"] == writer.count_rows(lake, BRONZE_TRADES)

    async def artifact_markdown() -> str:
        async with get_client() as client:
            artifact = await client.read_latest_artifacts()
            return next(a.data for a in artifact if a.key == "stream-default")

    markdown = asyncio.run(artifact_markdown())
    assert "| trades |" in markdown and "okx" in markdown
