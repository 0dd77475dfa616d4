"""The stream as a real process: SIGTERM flushes everything; SIGKILL loses at most the unflushed window,
and the restart records that window as a gap."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

from pipeline.simulator import SimulatorThread
from tests.ingest.streamkit import bronze_key, bronze_trades, covered_by_gap, gaps_for, ground_truth, sim_config

INSTRUMENTS = "BTC-USDT,ETH-USDT-SWAP"


def _start(lake_root: Path, port: int, spool: Path, flush_secs: float) -> subprocess.Popen:
    cmd = [
        sys.executable, "-m", "pipeline.cli", "--lake", str(lake_root), "stream", "--venue", "okx",
        "--instruments", INSTRUMENTS, "--url", "sim", "--sim-url", f"ws://127.0.0.1:{port}",
        "--spool-dir", str(spool), "--flush-secs", str(flush_secs),
    ]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_trades(lake, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if any(bronze_trades(lake, "okx", i).height for i in INSTRUMENTS.split(",")):
            return
        time.sleep(0.3)
    raise AssertionError("the stream wrote no trades in time")


def _wait_connected(sim: SimulatorThread, seconds: float) -> None:
    """Until the child's collector holds a connection at the venue (so its signal handlers are in place)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if sim.call(lambda: sim.ctx.state()["connections"].get("okx", 0)) >= 1:
            return
        time.sleep(0.2)
    raise AssertionError("the stream process never connected")


def test_sigterm_flushes_every_buffer_before_exit(lake, tmp_path: Path) -> None:
    with SimulatorThread(sim_config()) as sim:
        # A flush interval far longer than the run: everything that lands comes from the final flush.
        proc = _start(Path(lake.root), sim.port, tmp_path / "spool", flush_secs=600)
        try:
            _wait_connected(sim, 60)
            time.sleep(3.0)
            assert bronze_trades(lake, "okx", "BTC-USDT").height == 0
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
        assert proc.returncode == 0, out
        assert "stopped:" in out
        for instrument in INSTRUMENTS.split(","):
            df = bronze_trades(lake, "okx", instrument)
            assert df.height > 10
            first = int(df["exchange_ts"].min().timestamp() * 1000)
            last = int(df["exchange_ts"].max().timestamp() * 1000)
            truth = ground_truth(sim, "okx", instrument, first, last)
            assert set(bronze_key(df, "okx").to_list()) == set(truth)


def test_sigkill_loses_only_the_unflushed_window_and_the_restart_records_it(lake, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    with SimulatorThread(sim_config()) as sim:
        proc = _start(Path(lake.root), sim.port, spool, flush_secs=1.0)
        try:
            _wait_for_trades(lake, 20)
            time.sleep(1.5)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        before = {i: bronze_trades(lake, "okx", i).height for i in INSTRUMENTS.split(",")}
        time.sleep(1.0)  # the simulator keeps trading while nothing listens
        proc = _start(Path(lake.root), sim.port, spool, flush_secs=1.0)
        try:
            _wait_connected(sim, 60)
            time.sleep(3.0)
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
        assert proc.returncode == 0, out
        for instrument in INSTRUMENTS.split(","):
            df = bronze_trades(lake, "okx", instrument)
            assert df.height > before[instrument]
            gaps = gaps_for(lake, "okx", instrument)
            restart = gaps.filter(pl.col("kind") == "restart")
            assert restart.height == 1 and "crashed" in restart["detail"][0]
            first = int(df["exchange_ts"].min().timestamp() * 1000)
            last = int(df["exchange_ts"].max().timestamp() * 1000)
            truth = ground_truth(sim, "okx", instrument, first, last)
            got = set(bronze_key(df, "okx").to_list())
            missing = set(truth) - got
            assert missing, "the kill window should have lost some trades"
            assert all(covered_by_gap(gaps, truth[k], k) for k in missing)
