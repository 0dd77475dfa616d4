"""The artifacts an operator reads in the Prefect UI, read back through the Prefect client after real flow
runs on a small lake: their content matches the lake, and every one says what it is (a description)."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from pipeline.lake import writer
from pipeline.lake.tables import BRONZE_TRADES, SILVER_QUARANTINE, SILVER_TRADES
from tests.gold.gold_synthetic import candles, write
from tests.silver_rows import T0_MS, trade

_KEY = re.compile(r"^[a-z0-9-]+$")  # what Prefect accepts as an artifact key


def _artifacts(flow_run_id) -> dict:  # noqa: ANN001
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async def fetch():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
            )

    arts = asyncio.run(fetch())
    for a in arts:
        assert a.key and _KEY.match(a.key), a.key
        assert a.description and a.description.strip(), f"artifact {a.key} has no description"
    return {a.key: a for a in arts}


def test_every_silver_run_writes_a_data_quality_table(prefect_harness, lake) -> None:
    from flows.silver import silver_flow

    good = [trade("BTC-USDT-SWAP", 100 + i, T0_MS + i * 1000, 100.0, 1.0) for i in range(10)]
    bad = [trade("BTC-USDT-SWAP", 110, T0_MS + 10_000, -2.0, 1.0)]  # next in sequence, bad price
    writer.append_rows(lake, BRONZE_TRADES, good + bad)
    writer.append_rows(lake, BRONZE_TRADES, good[:3])  # the same trades again (a replay): dropped as duplicates
    state = silver_flow(lake=lake.root, now_ms=T0_MS + 3_600_000, fail_share=0.2, return_state=True)
    assert state.is_completed()

    arts = _artifacts(state.state_details.flow_run_id)
    # a row-level failure: both the failures (markdown) and the quality table
    assert set(arts) == {"silver-data-quality", "silver-contract-failures"}
    rows = {r["table"]: r for r in json.loads(arts["silver-data-quality"].data)}
    assert set(rows) == {
        "bronze/trades",
        "bronze/candles",
        "bronze/quotes",
        "bronze/derivatives",
        "bronze/liquidations",
    }
    t = rows["bronze/trades"]
    quarantine = writer.read(lake, SILVER_QUARANTINE)
    assert t["rows_read"] == writer.count_rows(lake, BRONZE_TRADES) == 14
    assert t["quarantined"] == quarantine.height == 1
    assert t["quarantined_by_rule"] == f"{quarantine['rule'][0]}: 1" and "price" in t["quarantined_by_rule"]
    assert t["good"] == 13 and t["duplicates_dropped"] == 3
    assert writer.count_rows(lake, SILVER_TRADES) == t["good"] - t["duplicates_dropped"]
    bronze = writer.open_table(lake, BRONZE_TRADES)
    assert bronze is not None and t["watermark"] == bronze.version() and t["status"] == "ok"
    assert rows["bronze/quotes"]["rows_read"] == 0 and rows["bronze/quotes"]["status"] == "ok"

    # A run with nothing new still writes the table (the UI shows the trend), without failures.
    again = silver_flow(lake=lake.root, now_ms=T0_MS + 3_600_000, fail_share=0.2, return_state=True)
    arts = _artifacts(again.state_details.flow_run_id)
    assert set(arts) == {"silver-data-quality"}
    assert all(r["rows_read"] == 0 for r in json.loads(arts["silver-data-quality"].data))


def test_gold_publish_table_and_backtest_metrics_and_link(prefect_harness, lake, tmp_path) -> None:
    from flows.backtest import backtest_flow
    from flows.gold import gold_flow

    gold_dir = tmp_path / "gold"
    write(
        lake,
        candles("UP", "1d", range(40), drift=0.01, seed=1),
        candles("BTC-USDT-SWAP", "1d", range(40), seed=2),
        candles("FLAT", "1d", range(40), seed=3),
    )
    state = gold_flow(lake=lake.root, gold_dir=str(gold_dir), freqs=["day"], return_state=True)
    assert state.is_completed()
    (row,) = json.loads(_artifacts(state.state_details.flow_run_id)["gold-publish"].data)
    assert row["dataset"] == "okx-swap" and row["mode"] == "full" and row["bars_written"] == 120
    assert row["instruments"] == 3 and row["calendars"] == "day: 40"
    assert row["read_back"] == "equals silver" and row["read_back_bars"] > 0 and row["read_back_instruments"] > 0
    assert row["provider_uri"] == str(gold_dir.resolve() / "qlib" / "okx-swap")

    bt = backtest_flow(
        lake=lake.root, gold_dir=str(gold_dir), overrides={"signal": "$close/Ref($close,5)-1"}, return_state=True
    )
    assert bt.is_completed()
    out = bt.result()
    arts = _artifacts(bt.state_details.flow_run_id)
    assert set(arts) == {"backtest-metrics", "backtest-report"}
    assert f"| steps | {out['metrics']['steps']:,.6g} |" in arts["backtest-metrics"].data
    assert f"{out['report_dir']}/report.html" in arts["backtest-report"].data


def test_a_stream_named_outside_prefects_key_alphabet_still_gets_its_artifact(prefect_harness, lake, tmp_path) -> None:
    from flows.stream import stream_flow
    from pipeline.simulator import SimulatorThread
    from tests.ingest.streamkit import sim_config

    async def run(ws_url: str) -> Any:
        return await stream_flow(
            lake=lake.root, venues=["okx"], seconds=1.5, name="Main_Stream", sim_ws_url=ws_url, return_state=True
        )

    with SimulatorThread(sim_config()) as sim:
        state = asyncio.run(run(f"ws://127.0.0.1:{sim.port}"))
    assert state.is_completed()
    arts = _artifacts(state.state_details.flow_run_id)
    assert set(arts) == {"stream-main-stream"} and "Main_Stream" in arts["stream-main-stream"].description
