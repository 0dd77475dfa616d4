"""A dedicated Prefect server for the ops tests (one per module: test_workers' runs and leases must not meet
test_prefect_ops' automations and runs on one SQLite database): the shared harness runs without the triggers
service, and automations need it. Stream helpers come from tests/ingest/streamkit.py."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from flows.ops import procs


@dataclass
class OpsServer:
    url: str
    env: dict[str, str]
    home: Path


@pytest.fixture(scope="module")
def ops_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpsServer]:
    """A server as `make up` runs it (triggers on), with a 1 s repossessor so an expired lease frees its slot
    promptly, and short Retry-After answers for a held slot."""
    home = tmp_path_factory.mktemp("ops-prefect")
    port = procs.free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    base.update(
        PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED="true",
        # No scheduled runs: the worker must run only what a test starts.
        PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false",
        PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED="false",
        PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS="1",
        PREFECT_SERVER_CONCURRENCY_MAXIMUM_CONCURRENCY_SLOT_WAIT_SECONDS="2",
        PREFECT_WORKER_QUERY_SECONDS="1",
        PREFECT_LOGGING_LEVEL="INFO",
    )
    proc = procs.start_server(home, port, env=base)
    env = procs.prefect_env(home, port, base)
    try:
        yield OpsServer(f"http://127.0.0.1:{port}/api", env, home)
    finally:
        procs.stop(proc)


@pytest.fixture(scope="module")
def client_settings(ops_server: OpsServer) -> Iterator[None]:
    """Point this process's Prefect client (and its event emitter) at the ops server."""
    from prefect.events.worker import EventsWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    # Event workers are process-wide singletons: one started earlier in the session (against the shared
    # test harness) would keep sending this module's events there. Stop them so the next emit starts one
    # against the ops server.
    EventsWorker.drain_all(timeout=10)
    with temporary_settings({PREFECT_API_URL: ops_server.url}):
        yield
        # Deliver and stop this process's event emitter while its server is still up; otherwise it keeps
        # retrying a dead server and slows down the rest of the session's teardown.
        EventsWorker.drain_all(timeout=10)


@dataclass
class Receiver:
    url: str
    log: Path


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    from flows.ops.alert_receiver import make_server

    log = tmp_path_factory.mktemp("alerts") / "alerts.log"
    server = make_server(log)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Receiver(f"http://127.0.0.1:{server.server_address[1]}/alerts", log)
    finally:
        server.shutdown()
        server.server_close()
