"""`make up` / `cryptolake up`: everything on one machine, under one supervisor.

Starts, in order: a Prefect server on 127.0.0.1 (SQLite and PREFECT_HOME under ``<lake>/_ops/prefect``),
the local alert receiver (``<lake>/_ops/alerts.log``), the simulator when a venue's url is "sim", the
process work pool, the deployments of deployments/prefect.yaml, the automations, ``--workers`` workers, and
one stream run per shard (pipeline/shards.py), which land on whichever worker polls first. Workers on other
machines may join the same pool (README: "More workers"). Ctrl-C (or SIGTERM) stops it all in reverse: the
stream runs are cancelled first and awaited (each process flushes every buffer on the SIGTERM its worker
sends), then the workers, the simulator, the receiver and the server, each by PID. Children run in their own sessions, so the terminal's
Ctrl-C reaches only this supervisor, which then decides the order.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Cancelling

from flows.ops import procs
from flows.ops.automations import apply, install, restart_automations
from flows.ops.deploy import REPO, deploy_all, ensure_work_pool, merge_parameters, sim_parameters
from flows.slots import free_stale_slots
from pipeline.config import SIM, StreamConfig, load_config
from pipeline.ingest.spool import Spool
from pipeline.ingest.stream import default_spool_dir
from pipeline.lake.location import Lake, resolve_lake

ACTIVE = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.CANCELLING]


# The pages an operator opens first: what ran, what the runs reported, what alerts.
FIRST_PAGES = (("runs", "/runs"), ("artifacts", "/artifacts"), ("automations", "/automations"))


def ready_text(api_url: str, alerts_log: Path) -> str:
    """What `make up` prints once everything runs: the UI's address and its first pages as full URLs."""
    ui = api_url.removesuffix("/").removesuffix("/api")
    pages = "".join(f"  {name + ':':<13}{ui}{path}\n" for name, path in FIRST_PAGES)
    return f"\ncryptolake is up. Prefect UI: {ui}\n{pages}  {'alerts:':<13}{alerts_log}\nCtrl-C stops everything.\n"


def ops_dir(lake: Lake) -> Path:
    """``<lake>/_ops`` for a local lake (Delta readers skip ``_`` folders); a user folder for object stores."""
    if lake.is_local:
        return Path(lake.root.removeprefix("file://")) / "_ops"
    return Path.home() / ".cryptolake" / "ops" / hashlib.sha1(lake.root.encode()).hexdigest()[:12]


class Supervisor:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.lake = resolve_lake(args.lake)
        self.ops = ops_dir(self.lake)
        self.home = self.ops / "prefect"
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.stopping = False
        self.env = procs.prefect_env(self.home, args.port)
        self.env.update(
            CRYPTOLAKE_LAKE=self.lake.root,
            PREFECT_WORKER_QUERY_SECONDS="5",
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY="30",
        )
        if args.config:
            self.env["CRYPTOLAKE_CONFIG"] = str(Path(args.config).resolve())
        self.api = self.env["PREFECT_API_URL"]

    def _signal(self, signum: int, frame: FrameType | None) -> None:
        del frame
        if not self.stopping:
            print(f"\n{signal.Signals(signum).name}: stopping (the stream flushes first)...", flush=True)
        self.stopping = True

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        proc = procs.start(argv, env=self.env, log=self.ops / "logs" / f"{name}.log", cwd=REPO)
        self.children.append((name, proc))
        return proc

    def start(self) -> None:
        a = self.args
        for port in (a.port, a.alerts_port):
            if procs.port_in_use(port):
                raise SystemExit(
                    f"port {port} on 127.0.0.1 is in use (another `make up`?); pick another with --port/--alerts-port"
                )
        print(f"lake {self.lake.root}; Prefect home {self.home}; logs {self.ops / 'logs'}", flush=True)
        server = procs.start_server(self.home, a.port, env=self.env)
        self.children.append(("server", server))
        receiver = self.spawn("alerts", [sys.executable, "-m", "flows.ops.alert_receiver", "--port", str(a.alerts_port),
                                         "--log", str(self.ops / "alerts.log")])  # fmt: skip
        procs.wait_http(f"http://127.0.0.1:{a.alerts_port}/health", timeout=30, proc=receiver)
        config = load_config(a.config)
        sim = any(v.url == SIM for v in config.venues.values())
        if sim:
            proc = self.spawn("simulator", [sys.executable, "-m", "pipeline.cli", "sim", "--port", str(a.sim_port)])
            procs.wait_http(f"http://127.0.0.1:{a.sim_port}/sim/state", timeout=60, proc=proc)
        with temporary_settings({PREFECT_API_URL: self.api}):
            asyncio.run(ensure_work_pool())
            print("deploying deployments/prefect.yaml ...", flush=True)
            deploy_all(self.env)
            if sim:
                for name, params in sim_parameters(a.sim_port).items():
                    asyncio.run(merge_parameters(name, params))
            webhook = (
                a.webhook or os.environ.get("CRYPTOLAKE_ALERT_WEBHOOK") or f"http://127.0.0.1:{a.alerts_port}/alerts"
            )
            asyncio.run(self._automations(webhook, os.environ.get("CRYPTOLAKE_ALERT_BLOCK")))
            asyncio.run(self._clear_orphans())
            for i in range(1, a.workers + 1):
                self.spawn(f"worker-{i}", worker_argv(f"cryptolake-local-{i}"))
            if not a.no_stream:
                warn_unsharded_spool(self.lake, config)
                for shard in config.shard_list():
                    run = run_deployment("stream/stream", timeout=0, parameters={"shard": shard.name})
                    assert isinstance(run, FlowRun)  # called from sync code: the run itself, not a coroutine
                    print(f"stream run {run.name} submitted (shard {shard.name})", flush=True)
        print(ready_text(self.api, self.ops / "alerts.log"), flush=True)

    async def _automations(self, webhook: str, block: str | None) -> None:
        await install(webhook_url=None if block else webhook, block=block)
        async with get_client() as client:
            dep = await client.read_deployment_by_name("stream/stream")
        await apply(restart_automations(dep.id, "stream"))

    async def _clear_orphans(self) -> None:
        """Stream runs a previous session left active (supervisor killed): their processes died with that
        session, and left Running they would be marked Crashed by the zombie automation and restarted beside
        the runs started now (a second run per shard, waiting for the slot). This server was just started by
        us and no worker polls it yet: close them, and free the shard slots they held (the server keeps
        leases in memory, so it restarted knowing none: a slot still counted as taken would never expire)."""
        from prefect.states import Cancelled

        flt = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=ACTIVE)))
        deps = DeploymentFilter(name=DeploymentFilterName(any_=["stream"]))
        async with get_client() as client:
            for run in await client.read_flow_runs(flow_run_filter=flt, deployment_filter=deps):
                print(f"closing stream run {run.name} left over from a previous session", flush=True)
                await client.set_flow_run_state(
                    run.id, Cancelled(message="left over by a previous `make up`"), force=True
                )
            for name in await free_stale_slots(client):
                print(f"freed {name}, held when the previous session stopped", flush=True)

    def watch(self) -> None:
        while not self.stopping:
            for name, proc in self.children:
                if proc.poll() is not None:
                    print(f"{name} exited with {proc.returncode} (log: {self.ops / 'logs'}); stopping", flush=True)
                    self.stopping = True
            time.sleep(1.0)

    async def _cancel_streams(self, timeout: float) -> None:
        """Cancel every active stream run and wait until each is final (its process has flushed)."""
        flt = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=ACTIVE)))
        deps = DeploymentFilter(name=DeploymentFilterName(any_=["stream"]))
        async with get_client() as client:
            runs = await client.read_flow_runs(flow_run_filter=flt, deployment_filter=deps)
            for run in runs:
                print(f"cancelling stream run {run.name} ...", flush=True)
                await client.set_flow_run_state(run.id, Cancelling(), force=True)
            deadline = time.monotonic() + timeout
            pending = {r.id for r in runs}
            while pending and time.monotonic() < deadline:
                await asyncio.sleep(1.0)
                for run_id in list(pending):
                    state = (await client.read_flow_run(run_id)).state
                    if state is None or state.is_final():
                        print(f"stream run ended: {state.name if state else '?'}", flush=True)
                        pending.discard(run_id)
            if pending:
                print(
                    f"{len(pending)} stream run(s) still not final after {timeout:.0f} s; stopping the worker anyway",
                    flush=True,
                )

    def shutdown(self) -> None:
        names = dict(self.children)
        workers = [p for n, p in self.children if n.startswith("worker")]
        if workers and all(w.poll() is None for w in workers) and names["server"].poll() is None:
            with temporary_settings({PREFECT_API_URL: self.api}):
                try:
                    asyncio.run(self._cancel_streams(timeout=90))
                except Exception as exc:  # noqa: BLE001 - shutting down anyway; say why
                    print(f"could not cancel the stream run cleanly: {exc}", flush=True)
        for name, proc in reversed(self.children):  # worker, simulator, receiver, server
            code = procs.stop(
                proc,
                sig=signal.SIGINT if name == "server" else signal.SIGTERM,
                timeout=60 if name.startswith("worker") else 20,
            )
            print(f"stopped {name} (pid {proc.pid}, exit {code})", flush=True)


def worker_argv(name: str, pool: str = "cryptolake") -> list[str]:
    """A process worker of the pool: what `make up` starts ``--workers`` times, and any other machine once."""
    return [procs.PREFECT, "worker", "start", "--pool", pool, "--type", "process", "--name", name]


def warn_unsharded_spool(lake: Lake, config: StreamConfig) -> None:
    """Flushes spooled under the unsharded collector name (before shards, or by `cryptolake stream`) are
    replayed only by a collector of that name: say so rather than leave them unnoticed."""
    spool = default_spool_dir(lake, config.name)
    if spool.is_dir() and any(Spool(spool).pending()):
        print(
            f"warning: {spool} holds flushes the lake refused, spooled under the collector name {config.name!r};"
            f" the shards write as {config.name}-<shard> and never replay them. Stop (Ctrl-C), replay them with"
            " `cryptolake stream --seconds 5` (same --lake and --config), then start again",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="cryptolake up", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--lake")
    p.add_argument("--port", type=int, default=4200)
    p.add_argument("--sim-port", type=int, default=8765)
    p.add_argument("--alerts-port", type=int, default=8799)
    p.add_argument("--config")
    p.add_argument("--webhook")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--no-stream", action="store_true")
    sup = Supervisor(p.parse_args(argv))
    signal.signal(signal.SIGINT, sup._signal)
    signal.signal(signal.SIGTERM, sup._signal)
    try:
        sup.start()
        sup.watch()
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # noqa: BLE001 - report, then stop whatever did start
        print(f"cryptolake up failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        sup.shutdown()
        return 1
    sup.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
