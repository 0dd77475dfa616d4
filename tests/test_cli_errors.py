"""What a user sees when the CLI meets a closed port or a lake it cannot read or write: one line naming
the problem (exit code 2), never a traceback or a deltalake exception. The real `cryptolake` command runs
in a subprocess against the simulator on 127.0.0.1 and Delta tables on disk."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.simulator import SimConfig, SimulatorThread

LOG = Path("silver/instruments/_delta_log")


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(
        SimConfig(port=0, seed=7, okx_instruments=6, deribit_options=8, trade_history_minutes=10)
    ) as s:
        yield s


def cryptolake(*args: str) -> tuple[int, str, str, float]:
    env = {k: v for k, v in os.environ.items() if k != "RUST_BACKTRACE"}  # as a user's shell has it
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )
    return done.returncode, done.stdout, done.stderr, time.monotonic() - started


def closed_port() -> int:
    with socket.socket() as s:  # bound, then closed: nothing listens there any more
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def assert_one_line_error(rc: int, err: str, prefix: str) -> None:
    assert rc == 2, err
    assert err.startswith(prefix), err
    assert "Traceback" not in err and "deltalake" not in err and "_internal" not in err, err
    assert err.count("\n") == 1, err  # one line, what the user acts on


@pytest.mark.parametrize("command", [
    ["universe", "--venue", "okx"],
    ["backfill", "--venue", "okx", "--instruments", "BTC-USDT", "--start=-1h", "--quiet"],
])  # fmt: skip
def test_a_closed_rest_port_fails_at_once_naming_the_url_and_the_option(tmp_path: Path, command: list[str]) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    rc, _, err, secs = cryptolake("--lake", str(tmp_path / "lake"), *command, "--rest-url", url)
    assert_one_line_error(
        rc,
        err,
        f"cryptolake {command[0]}: error: okx REST at {url} refused the connection: nothing is listening there. Check --rest-url",
    )
    assert secs < 15, secs  # not ~45 s of backing off from a port that stays closed


def test_universe_into_a_lake_that_cannot_be_created(sim: SimulatorThread, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    rc, _, err, _ = cryptolake(
        "--lake", str(tmp_path / "a-file" / "lake"), "universe", "--venue", "okx", "--rest-url", sim.base_http_url
    )
    # refused before any request: no command can create a lake under a file (pipeline.lake.location)
    assert rc == 2 and err.startswith("cryptolake universe: error: configuration error in --lake"), err
    assert "cannot be created" in err and "is a file" in err and "Traceback" not in err, err


def test_universe_over_a_damaged_table_log(sim: SimulatorThread, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    rc, out, err, _ = cryptolake("--lake", str(lake), "universe", "--venue", "okx", "--rest-url", sim.base_http_url)
    assert rc == 0 and "okx: 6 selected" in out, err
    (lake / LOG / "00000000000000000000.json").write_text('{"commitInfo": ')  # cut off mid-write
    rc, _, err, _ = cryptolake("--lake", str(lake), "universe", "--venue", "okx", "--rest-url", sim.base_http_url)
    assert_one_line_error(rc, err, "cryptolake universe: error: silver/instruments cannot be opened: DeltaError: ")


def test_universe_whose_merge_commit_cannot_be_written(sim: SimulatorThread, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    rc, _, err, _ = cryptolake("--lake", str(lake), "universe", "--venue", "okx", "--rest-url", sim.base_http_url)
    assert rc == 0, err
    (
        lake / LOG / "00000000000000000001.json"
    ).mkdir()  # the next log version is taken by something that is not a commit
    rc, _, err, _ = cryptolake("--lake", str(lake), "universe", "--venue", "okx", "--rest-url", sim.base_http_url)
    # Each lost race is announced as it is retried (operators count them), then the one-line error.
    *retries, last = err.splitlines()
    assert retries == [
        f"merge into silver/instruments lost a commit race (attempt {n} of 5); retrying on a fresh snapshot"
        for n in range(1, 5)
    ], err
    assert_one_line_error(
        rc,
        last + "\n",
        "cryptolake universe: error: merge into silver/instruments failed: its Delta commit was refused 5 time(s) in a row",
    )
    assert err.rstrip().endswith("nothing was written"), err
