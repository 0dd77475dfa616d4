"""Shared fixtures. Everything real: Delta tables in tmp folders, sockets on 127.0.0.1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.lake.location import Lake, resolve_lake
from pipeline.realdata import realdata_dir


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return resolve_lake(str(tmp_path / "lake"))


@pytest.fixture
def realdata() -> Path:
    path = realdata_dir()
    if not path.is_dir():
        pytest.skip(f"real recordings not found at {path} (set CRYPTOLAKE_REALDATA)")
    return path


# Prefect services the tests never need; disabling them makes the harness start in ~7 s instead of ~9 s
# (field notes). Tests that need triggers (automations) start their own server with them on.
_QUIET_SERVICES = (
    "SCHEDULER",
    "LATE_RUNS",
    "FOREMAN",
    "CANCELLATION_CLEANUP",
    "PAUSE_EXPIRATIONS",
    "REPOSSESSOR",
    "DB_VACUUM",
)


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory):
    """One Prefect test server (SQLite) for the whole session; flows called inside it are recorded there."""
    home = tmp_path_factory.mktemp("prefect-home")
    saved = {k: os.environ.get(k) for k in ("PREFECT_HOME", "PREFECT_SERVER_ANALYTICS_ENABLED")}
    os.environ["PREFECT_HOME"] = str(home)
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    for name in _QUIET_SERVICES:
        os.environ[f"PREFECT_SERVER_SERVICES_{name}_ENABLED"] = "false"
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
