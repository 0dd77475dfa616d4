"""Operations against a real Prefect server (triggers on): prefect.yaml deploys with its schedules, the
automations are idempotent, a contract failure reaches a local webhook, and a user cancel of the stream
run (process worker, simulator) flushes its buffers and raises no failure alert while a real failure does."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest
import yaml

from flows.ops import procs
from flows.ops.alert_receiver import read_alerts
from flows.ops.deploy import PREFECT_FILE, REPO, deploy_all, ensure_work_pool
from tests.waits import wait_until

pytestmark = pytest.mark.slow

EXPECTED_CRONS = {
    "silver": "*/5 * * * *",
    "fill-gaps": "2-59/15 * * * *",
    "gold-hourly": "10 * * * *",
    "gold-daily": "20 0 * * *",
    "backtest-hourly": "25 * * * *",
    "backtest-daily": "50 0 * * *",
    "universe": "0 0 * * *",
    "maintenance": "30 3 * * *",
    "health": "*/5 * * * *",
}


@pytest.fixture(scope="module")
def deployed(ops_server, client_settings) -> dict[str, object]:
    asyncio.run(ensure_work_pool())
    deploy_all(ops_server.env)

    async def read() -> dict[str, object]:
        from prefect.client.orchestration import get_client

        async with get_client() as client:
            return {d.name: d for d in await client.read_deployments()}

    return asyncio.run(read())


def test_every_entrypoint_in_prefect_yaml_resolves_to_a_flow() -> None:
    from prefect.flows import Flow, load_flow_from_entrypoint

    spec = yaml.safe_load(PREFECT_FILE.read_text())
    for d in spec["deployments"]:
        path, func = d["entrypoint"].split(":")
        loaded = load_flow_from_entrypoint(f"{REPO / path}:{func}")
        assert isinstance(loaded, Flow), d["name"]


def test_deployments_apply_with_utc_schedules_pool_and_limits(deployed) -> None:
    names = set(deployed)
    assert names >= set(EXPECTED_CRONS) | {"stream", "backfill"}
    for name, cron in EXPECTED_CRONS.items():
        (schedule,) = deployed[name].schedules
        assert schedule.schedule.cron == cron and schedule.schedule.timezone == "UTC", name
        assert deployed[name].work_pool_name == "cryptolake"
    assert not deployed["stream"].schedules and not deployed["backfill"].schedules
    # The stream has no deployment limit: each run holds its shard's own slot (flows/slots.py, tests/ops/test_workers.py).
    assert deployed["stream"].global_concurrency_limit is None
    assert deployed["stream"].parameters == {"lease_secs": 120}
    assert deployed["gold-daily"].parameters == {"full": True}
    assert deployed["backtest-hourly"].parameters == {"overrides": {"freq": "60min"}}


def test_automations_are_idempotent_and_a_contract_failure_reaches_the_webhook(
    ops_server, client_settings, receiver
) -> None:
    from prefect.client.orchestration import get_client

    from flows.alerts import emit_contract_failure
    from flows.ops.automations import PREFIX, install

    first = asyncio.run(install(webhook_url=receiver.url))
    second = asyncio.run(install(webhook_url=receiver.url))
    assert first == second and len(first) == 7

    async def names() -> list[str]:
        async with get_client() as client:
            return [a.name for a in await client.read_automations() if a.name.startswith(PREFIX)]

    listed = asyncio.run(names())
    assert sorted(listed) == sorted(set(listed)) and len(listed) == 7

    time.sleep(1.0)  # the triggers service picks up automation changes asynchronously
    emit_contract_failure(
        table="silver/trades", rule="price > 0", failed_rows=3, total_rows=100, sample=[{"price": -1.0}]
    )
    alerts = wait_until(
        lambda: [a for a in read_alerts(receiver.log) if "contract failed" in a["alert"]["subject"]],
        30,
        "the contract alert",
    )
    assert "silver/trades" in alerts[0]["alert"]["subject"]
    assert "price > 0" in alerts[0]["alert"]["body"] and "3 of 100" in alerts[0]["alert"]["body"]


def test_crash_alert_skips_the_spurious_crash_of_a_cancel(ops_server, client_settings, receiver) -> None:
    """The engine reports a cancel's SIGTERM as Crashed "Execution was aborted by a termination signal."
    (PR #22717); a real crash has another message. Same event name, only the real one may alert."""
    from uuid import uuid4

    from prefect.events import emit_event

    from flows.ops.automations import install

    asyncio.run(install(webhook_url=receiver.url))
    runs = {"cancel": uuid4(), "real": uuid4()}
    messages = {
        "cancel": "Execution was aborted by a termination signal.",
        "real": "Flow run infrastructure exited with non-zero status code -9.",
    }
    for kind, run_id in runs.items():
        emit_event("prefect.flow-run.Crashed", resource={
            "prefect.resource.id": f"prefect.flow-run.{run_id}", "prefect.resource.name": f"{kind}-run",
            "prefect.state-message": messages[kind], "prefect.state-name": "Crashed", "prefect.state-type": "CRASHED",
        })  # fmt: skip
    wait_until(
        lambda: [a for a in read_alerts(receiver.log) if "crashed" in a["alert"]["subject"]], 30, "the crash alert"
    )
    time.sleep(2.0)  # time for a (wrong) second alert to arrive
    crash_alerts = [a["alert"] for a in read_alerts(receiver.log) if "crashed" in a["alert"]["subject"]]
    assert len(crash_alerts) == 1 and "non-zero status code -9" in crash_alerts[0]["body"], crash_alerts


def _buffered(worker_log: Path) -> int:
    """The most rows the stream's stats lines have shown in its buffer so far."""
    return max(
        map(int, re.findall(r"stream stats: .* buffer=(\d+)/", worker_log.read_text(errors="replace"))), default=0
    )


def _write_config(path: Path) -> Path:
    path.write_text(
        '[stream]\nname = "opstest"\nflush_interval_secs = 600.0\nstats_interval_secs = 1.0\n'
        '[stream.okx]\nurl = "sim"\ninstruments = ["BTC-USDT", "ETH-USDT-SWAP"]\nchannels = ["trades"]\n'
    )
    return path


def test_user_cancel_flushes_the_stream_and_raises_no_failure_alert(
    ops_server, client_settings, receiver, deployed, lake, tmp_path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.states import Cancelling

    from pipeline.simulator import SimulatorThread
    from tests.ingest.streamkit import bronze_key, bronze_trades, ground_truth, sim_config

    asyncio.run(__import__("flows.ops.automations", fromlist=["install"]).install(webhook_url=receiver.url))
    env = {**ops_server.env, "CRYPTOLAKE_LAKE": lake.root}
    worker = procs.start([procs.PREFECT, "worker", "start", "--pool", "cryptolake", "--type", "process"], env=env,
                         log=tmp_path / "worker.log", cwd=REPO)  # fmt: skip
    config = _write_config(tmp_path / "stream.toml")
    try:
        with SimulatorThread(sim_config()) as sim:
            stream = run_deployment("stream/stream", timeout=0, parameters={"config_path": str(config), "sim_ws_url": f"ws://127.0.0.1:{sim.port}",
                                    "venues": ["okx"]})  # fmt: skip

            async def state(run_id):  # noqa: ANN001, ANN202
                async with get_client() as client:
                    return (await client.read_flow_run(run_id)).state

            wait_until(lambda: asyncio.run(state(stream.id)).is_running(), 90, "the stream run to start", every=1.0)
            # The collector connects and buffers (flush interval 600 s: nothing committed yet); its stats lines
            # reach the worker's output.
            wait_until(lambda: _buffered(tmp_path / "worker.log") >= 100, 60, "100 rows in the stream's buffer")
            assert bronze_trades(lake, "okx", "BTC-USDT").height == 0

            async def cancel() -> None:
                async with get_client() as client:
                    await client.set_flow_run_state(stream.id, Cancelling(), force=True)

            asyncio.run(cancel())
            final = wait_until(
                lambda: (s := asyncio.run(state(stream.id))).is_final() and s, 90, "the stream run to end", every=1.0
            )
            for instrument in ("BTC-USDT", "ETH-USDT-SWAP"):
                df = bronze_trades(lake, "okx", instrument)
                assert df.height > 10, instrument
                first = int(df["exchange_ts"].min().timestamp() * 1000)
                last = int(df["exchange_ts"].max().timestamp() * 1000)
                assert set(bronze_key(df, "okx").to_list()) == set(ground_truth(sim, "okx", instrument, first, last))

        # Positive control: a run that really fails does raise an alert, through the same automations.
        failing = run_deployment("backfill/backfill", timeout=0, parameters={"venue": "nowhere"})
        wait_until(
            lambda: [a for a in read_alerts(receiver.log) if failing.name in a["alert"]["subject"]],
            90,
            "the failure alert",
        )
        time.sleep(2.0)
        about_stream = [
            a for a in read_alerts(receiver.log) if stream.name in a["alert"]["subject"] + a["alert"]["body"]
        ]

        assert not about_stream, (final, about_stream)
    finally:
        procs.stop(worker)
