"""gold_flow and backtest_flow under the Prefect test harness (few calls: each costs 1-2 s)."""

from __future__ import annotations

import asyncio

import pytest

from tests.gold.gold_synthetic import candles, write


def _artifacts(flow_run_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async def fetch():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
            )

    return asyncio.run(fetch())


def test_gold_then_backtest_flows(prefect_harness, lake, gold_dir):
    from flows.backtest import backtest_flow
    from flows.gold import gold_flow

    write(
        lake,
        candles("UP", "1d", range(40), drift=0.01, seed=1),
        candles("BTC-USDT-SWAP", "1d", range(40), seed=2),
        candles("FLAT", "1d", range(40), seed=3),
        candles("BTC-USDT-SWAP", "1m", range(90), seed=4),
        candles("UP", "1h", range(30), seed=5),
    )
    state = gold_flow(lake=lake.root, gold_dir=str(gold_dir), return_state=True)
    assert state.is_completed()
    result = state.result()
    assert result["modes"] == {"okx-swap": "full"}
    assert result["read_back"][0]["checked_bars"] > 0
    assert (gold_dir / "qlib" / "okx-swap" / "calendars" / "60min.txt").is_file()
    assert any(a.key == "gold-publish" for a in _artifacts(state.state_details.flow_run_id))

    bt = backtest_flow(
        lake=lake.root, gold_dir=str(gold_dir), overrides={"signal": "$close/Ref($close,5)-1"}, return_state=True
    )
    assert bt.is_completed()
    out = bt.result()
    assert out["metrics"]["steps"] == 35
    arts = {a.key: a for a in _artifacts(bt.state_details.flow_run_id)}
    assert "annualized_return" in arts["backtest-metrics"].data
    # Prefect stores a link artifact as markdown "[text](uri)"
    assert out["report_dir"] in arts["backtest-report"].data and "report.html" in arts["backtest-report"].data


def test_gold_flow_fails_on_a_contract_violation(prefect_harness, lake, gold_dir):
    from flows.gold import gold_flow
    from pipeline.gold import GoldContractError

    bad = candles("BTC-USDT-SWAP", "1d", range(5))
    bad = bad.set_column(
        bad.schema.get_field_index("close"), "close", __import__("pyarrow").array([1.0, -2.0, 1.0, 1.0, 1.0])
    )
    write(lake, bad)
    state = gold_flow(lake=lake.root, gold_dir=str(gold_dir), freqs=["day"], return_state=True)
    assert state.is_failed()
    with pytest.raises(GoldContractError):
        state.result()
    assert not (gold_dir / "qlib" / "okx-swap").exists()
