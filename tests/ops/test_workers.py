"""Many workers: two process workers on one pool and one lake, the stream as three shards (a real Prefect server
started here, the simulator over loopback).

Shown: the shards' runs land on both workers; a second run of a held shard waits and then refuses (its slot,
a global concurrency limit of 1, stays taken); a SIGKILLed collector's slot stays held until its lease
expires, and the restart automation's new run of that shard (only that shard) takes it then; afterwards
bronze holds every trade of each shard's instruments once (the killed one's unflushed window is a recorded
gap), each shard committing under its own application-transaction id.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml

from flows.ops import procs
from flows.ops.deploy import PREFECT_FILE, REPO, deploy_all, ensure_work_pool, merge_parameters
from flows.ops.up import worker_argv
from flows.slots import MIN_LEASE_SECS, RENEWALS_PER_LEASE, slot_name
from pipeline.lake import writer
from pipeline.lake.location import Lake
from pipeline.lake.tables import BRONZE_TRADES
from tests.ingest.streamkit import bronze_key, bronze_trades, covered_by_gap, gaps_for, ground_truth, sim_config
from tests.ops.conftest import OpsServer
from tests.waits import wait_until

pytestmark = pytest.mark.slow

CONFIG = """
[stream]
name = "w"
flush_interval_secs = 1.0
stats_interval_secs = 5.0
[stream.okx]
url = "sim"
instruments = ["BTC-USDT", "ETH-USDT-SWAP"]
channels = ["trades"]
[stream.deribit]
url = "sim"
instruments = ["ETH-PERPETUAL"]
channels = ["trades"]
[[stream.shards]]
name = "okx-btc"
venue = "okx"
instruments = ["BTC-USDT"]
[[stream.shards]]
name = "okx-eth"
venue = "okx"
instruments = ["ETH-USDT-SWAP"]
[[stream.shards]]
name = "deribit"
venue = "deribit"
"""
SHARDS = {"okx-btc": ("okx", "BTC-USDT"), "okx-eth": ("okx", "ETH-USDT-SWAP"), "deribit": ("deribit", "ETH-PERPETUAL")}
KILLED = "okx-btc"
WAIT = 5.0  # wait_for_slot_secs of the two runs of KILLED: the one that does not get the slot refuses after it


def stream_only_prefect_file(folder: Path) -> Path:
    """deployments/prefect.yaml with only its stream deployment (the others are tested in test_prefect_ops)."""
    spec = yaml.safe_load(PREFECT_FILE.read_text())
    spec["deployments"] = [d for d in spec["deployments"] if d["name"] == "stream"]
    path = folder / "prefect.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def worker_of(pid: int, workers: dict[int, str]) -> str | None:
    """The worker whose process tree holds ``pid`` (a flow run's infrastructure pid), walking up the parents."""
    while pid > 1:
        if pid in workers:
            return workers[pid]
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return None
        pid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
    return None


class Api:
    """The few Prefect client calls the test makes, run synchronously."""

    def __init__(self) -> None:
        from prefect.client.orchestration import get_client

        self.get_client = get_client

    def _run(self, coro: Any) -> Any:
        return asyncio.run(coro)

    def run(self, run_id: UUID) -> Any:
        async def read() -> Any:
            async with self.get_client() as client:
                return await client.read_flow_run(run_id)

        return self._run(read())

    def stream_runs(self) -> list[Any]:
        async def read() -> list[Any]:
            async with self.get_client() as client:
                return await client.read_flow_runs()

        return [r for r in self._run(read()) if r.deployment_id is not None]

    def active_slots(self, name: str) -> int:
        from prefect.exceptions import ObjectNotFound

        async def read() -> int:
            async with self.get_client() as client:
                try:
                    return (await client.read_global_concurrency_limit_by_name(name)).active_slots
                except ObjectNotFound:  # a shard's run creates its limit when it first asks: nobody holds it yet
                    return 0

        return int(self._run(read()))

    def log_entries(self, run_id: UUID) -> list[Any]:
        from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

        async def read() -> list[Any]:
            async with self.get_client() as client:
                return await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))

        return list(self._run(read()))

    def logs(self, run_id: UUID) -> str:
        return "\n".join(entry.message for entry in self.log_entries(run_id))

    def log_time(self, run_id: UUID, text: str) -> Any:
        """When the run first logged a line containing ``text`` (the server's timestamp), or None."""
        return min((e.timestamp for e in self.log_entries(run_id) if text in e.message), default=None)

    def cancel(self, run_id: UUID) -> None:
        from prefect.states import Cancelling

        async def cancel() -> None:
            async with self.get_client() as client:
                await client.set_flow_run_state(run_id, Cancelling(), force=True)

        self._run(cancel())


def test_shards_spread_over_two_workers_once_each_and_a_dead_collectors_slot_frees_after_its_lease(
    ops_server: OpsServer, lake: Lake, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.events.worker import EventsWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.ops.automations import apply, restart_automations
    from pipeline.simulator import SimulatorThread

    config = tmp_path / "stream.toml"
    config.write_text(CONFIG)
    server = ops_server.env
    env = {**server, "CRYPTOLAKE_LAKE": lake.root}
    EventsWorker.drain_all(timeout=10)  # an emitter started earlier in the session points at another server
    workers: dict[int, str] = {}
    started: list[Any] = []
    api = Api()
    with temporary_settings({PREFECT_API_URL: server["PREFECT_API_URL"]}), SimulatorThread(sim_config()) as sim:
        asyncio.run(ensure_work_pool())
        try:
            for name in ("w1", "w2"):  # started first: they come up while the deployment is applied
                # --limit 2: three shards cannot all land on one worker
                proc = procs.start(
                    worker_argv(name) + ["--limit", "2"], env=env, log=tmp_path / f"{name}.log", cwd=REPO
                )
                started.append(proc)
                workers[proc.pid] = name
            deploy_all(server, stream_only_prefect_file(tmp_path))
            # What `make up` sets after deploying (machine-specific), plus the server's shortest lease.
            params = {
                "config_path": str(config),
                "sim_ws_url": f"ws://127.0.0.1:{sim.port}",
                "lease_secs": MIN_LEASE_SECS,
            }
            asyncio.run(merge_parameters("stream/stream", params))

            async def automations() -> None:
                async with get_client() as client:
                    dep = await client.read_deployment_by_name("stream/stream")
                await apply(restart_automations(dep.id, "stream"))

            asyncio.run(automations())
            # Two runs of one shard among the four: whichever takes the slot first holds it, the other waits
            # WAIT seconds and refuses. Four runs on two workers of two each: the three holders use both.
            first_two = [run_deployment("stream/stream", timeout=0, parameters={"shard": KILLED, "wait_for_slot_secs": WAIT}) for _ in range(2)]  # fmt: skip
            runs = {
                s: run_deployment("stream/stream", timeout=0, parameters={"shard": s}) for s in SHARDS if s != KILLED
            }
            slots = {s: slot_name(f"w-{s}") for s in SHARDS}

            # 1. Every shard runs and holds its slot; the second run of KILLED ends Cancelled with the reason.
            def ended() -> Any:
                return next((r for r in first_two if api.run(r.id).state.is_final()), None)

            second = wait_until(ended, 180, "one of the two runs of a shard to refuse")
            final = api.run(second.id).state
            assert final.is_cancelled() and "stayed held by another collector" in final.message, final
            runs[KILLED] = next(r for r in first_two if r.id != second.id)
            assert api.active_slots(slots[KILLED]) == 1
            wait_until(
                lambda: all(api.active_slots(slots[s]) == 1 for s in SHARDS), 120, "every shard to hold its slot"
            )
            assert all(api.run(r.id).state.is_running() for r in runs.values())
            second_logs = wait_until(lambda: api.logs(second.id), 20, "the refused run's logs")
            assert "waiting for " + slots[KILLED] in second_logs and "holding" not in second_logs
            placed = {s: worker_of(int(api.run(r.id).infrastructure_pid), workers) for s, r in runs.items()}
            assert set(placed.values()) == {"w1", "w2"}, placed

            # 2. SIGKILL the holder: its slot stays held (the lease runs on) until the lease expires.
            victim = int(api.run(runs[KILLED].id).infrastructure_pid)
            killed_at_us = time.time_ns() // 1000
            os.kill(victim, signal.SIGKILL)
            wait_until(lambda: api.run(runs[KILLED].id).state.is_crashed(), 30, "the killed run to be Crashed")
            known = {r.id for r in runs.values()} | {second.id}

            def restarted() -> Any:
                return next((r for r in api.stream_runs() if r.id not in known), None)

            assert api.active_slots(slots[KILLED]) == 1  # the crash did not free it: the dead lease still holds it
            again = wait_until(restarted, 60, "the restart automation's new run")
            assert again.parameters.get("shard") == KILLED  # that shard, not the world
            assert [r.id for r in api.stream_runs() if r.id not in known] == [again.id]  # and only it
            held = wait_until(lambda: api.log_time(again.id, "holding " + slots[KILLED]), 150, "the lease to expire")
            resumed_at_us = int(held.timestamp() * 1e6)
            # The dead lease was renewed at most a renewal period before the kill (late by at most 0.75 of one
            # more), so the slot was free no sooner than that before its full term: on a slow machine the new
            # run may arrive after that (and then holds at once), which is why this is a time bound, not a log.
            earliest_free_us = killed_at_us + int(1e6 * MIN_LEASE_SECS * (1 - 1.75 / RENEWALS_PER_LEASE))
            assert resumed_at_us >= earliest_free_us, "the new run took the slot before the dead lease expired"

            # 3. The new collector captures; then cancel everything (each flushes) and check the lake.
            def captured_after_restart() -> bool:
                df = bronze_trades(lake, *SHARDS[KILLED])
                return df.height > 0 and int(df["receive_ts"].max().timestamp() * 1e6) > resumed_at_us

            wait_until(captured_after_restart, 60, "the restarted shard to commit")
            live = [r.id for r in runs.values() if r.id != runs[KILLED].id] + [again.id]
            for run_id in live:
                api.cancel(run_id)
            # A collector releases its slot once its last flush is committed (the process exits later).
            wait_until(lambda: all(api.active_slots(slots[s]) == 0 for s in SHARDS), 90, "every collector to flush")
        finally:
            for proc in started:
                procs.stop(proc)
            EventsWorker.drain_all(timeout=10)
            for name in workers.values():  # shown by pytest when the test fails
                print(f"--- {name}.log\n" + "\n".join((tmp_path / f"{name}.log").read_text().splitlines()[-60:]))

        for shard, (venue, instrument) in SHARDS.items():
            df = bronze_trades(lake, venue, instrument)
            keys = bronze_key(df, venue).to_list()
            assert len(keys) == len(set(keys)), f"{shard}: a trade landed twice"
            first = int(df["exchange_ts"].min().timestamp() * 1000)
            last = int(df["exchange_ts"].max().timestamp() * 1000)
            truth = ground_truth(sim, venue, instrument, first, last)
            assert set(keys) <= set(truth), shard
            missing = {k: ts for k, ts in truth.items() if k not in set(keys)}
            if shard != KILLED:
                assert not missing, f"{shard}: {len(missing)} trades missing"
                continue
            # The killed collector's unflushed window is lost, and recorded as a restart gap; nothing else is.
            gaps = gaps_for(lake, venue, instrument)
            assert (gaps["kind"] == "restart").any() and "crashed" in " ".join(gaps["detail"].to_list())
            assert all(covered_by_gap(gaps, ts, k) for k, ts in missing.items())
            before = df.filter(df["receive_ts"].dt.epoch("us") < killed_at_us).height
            after = df.filter(df["receive_ts"].dt.epoch("us") >= resumed_at_us).height
            assert before > 0 and after > 0  # both collectors of the shard wrote
        for shard in SHARDS:  # each shard commits under its own exactly-once id
            assert (writer.committed_version(lake, BRONZE_TRADES, f"cryptolake-stream-w-{shard}") or 0) > 0, shard
        assert writer.count_rows(lake, BRONZE_TRADES) == sum(bronze_trades(lake, *vi).height for vi in SHARDS.values())
