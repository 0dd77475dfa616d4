"""The object store goes away mid-stream: the SeaweedFS process is stopped by PID while the collector keeps
streaming, then started again on the same data. Flushes go to the local spool meanwhile and are replayed in
order once the store answers: bronze equals the simulator's truth, nothing lost, nothing doubled.

SeaweedFS, not moto: moto keeps its objects in memory, so a stopped moto comes back empty."""

from __future__ import annotations

import os
import time
from pathlib import Path

from pipeline.chaos.kit import StreamProcess, reconcile, spool_files, trade_instruments, write_config
from pipeline.lake import writer
from pipeline.lake.location import Lake
from pipeline.lake.tables import BRONZE_TRADES
from pipeline.simulator import SimConfig, SimulatorThread
from tests.objectstore.kit import SeaweedServer
from tests.waits import wait_until

# The 60 s runs the same code path three times longer; the suite keeps it short (set the variable to soak).
OUTAGE_SECS = float(os.environ.get("CRYPTOLAKE_OBJECTSTORE_OUTAGE_SECS", "12"))


def alive(proc: StreamProcess) -> bool:
    assert proc.proc is not None and proc.proc.poll() is None, f"the stream died: {proc.tail()}"
    return True


def restart_replay_and_stop(seaweed: SeaweedServer, lake: Lake, proc: StreamProcess, spool: Path) -> None:
    """The store comes back: the spool is replayed at the next flushes, then a flush commits straight to the
    lake again; then the stream stops (flushing its buffers)."""
    seaweed.restart()
    wait_until(lambda: alive(proc) and spool_files(spool) == 0, 60, "the spool to be replayed")
    replayed = writer.count_rows(lake, BRONZE_TRADES)
    wait_until(lambda: writer.count_rows(lake, BRONZE_TRADES) > replayed, 30, "a commit after the replay")
    assert proc.stop() == 0, proc.tail()


def test_stream_spools_while_the_store_is_down_and_replays_it(
    seaweed: SeaweedServer, seaweed_lake: Lake, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    with SimulatorThread(SimConfig(port=0, seed=21, okx_instruments=3, deribit_options=2,
                                   trade_rate_per_instrument_per_s=8.0)) as sim:  # fmt: skip
        instruments = trade_instruments(sim, okx_limit=3, options=1)
        proc = StreamProcess(seaweed_lake, sim, write_config(tmp_path / "s.toml", instruments, name="outage"),
                             spool, tmp_path / "stream.log")  # fmt: skip
        peak = 0
        try:
            proc.start()
            proc.wait_connected(len(instruments))
            before = wait_until(
                lambda: writer.count_rows(seaweed_lake, BRONZE_TRADES),
                30,
                "a commit before the outage",
                detail=proc.tail,
            )
            seaweed.stop()
            t0 = time.monotonic()
            while time.monotonic() - t0 < OUTAGE_SECS:
                peak = max(peak, spool_files(spool))
                alive(proc)
                time.sleep(0.5)
            restart_replay_and_stop(seaweed, seaweed_lake, proc, spool)
        finally:
            proc.ensure_dead()
            if not seaweed.running:
                seaweed.restart()
        assert peak > 0, "nothing was spooled while the store was down: the test proved nothing"
        assert spool_files(spool) == 0, f"spool files never replayed: {sorted(spool.rglob('*.arrow'))[:5]}"
        bronze = reconcile(seaweed_lake, sim, instruments, BRONZE_TRADES)
        assert bronze.exact, bronze.problems
        assert bronze.rows > before
    print(f"\nstore down {OUTAGE_SECS:.0f} s: {peak} spool files at most, all replayed; bronze {bronze.rows} rows = "
          f"truth {bronze.truth}, {bronze.missing} missing, {bronze.duplicated} duplicated")  # fmt: skip


def test_a_stream_started_while_the_store_is_down_spools_from_the_first_flush(
    seaweed: SeaweedServer, seaweed_lake: Lake, tmp_path: Path
) -> None:
    """The store is unreachable before the collector starts, so it cannot read which flush ids it committed: it
    numbers its flushes from the clock (above any id counted from 1), spools, and replays once the store is
    back: bronze equals the truth."""
    spool = tmp_path / "spool"
    with SimulatorThread(SimConfig(port=0, seed=22, okx_instruments=3, deribit_options=2,
                                   trade_rate_per_instrument_per_s=8.0)) as sim:  # fmt: skip
        instruments = trade_instruments(sim, okx_limit=3, options=1)
        proc = StreamProcess(seaweed_lake, sim, write_config(tmp_path / "s.toml", instruments, name="cold"),
                             spool, tmp_path / "stream.log")  # fmt: skip
        peak, ids = 0, set()
        started_us = time.time_ns() // 1_000
        try:
            seaweed.stop()
            proc.start()
            proc.wait_connected(len(instruments))

            def two_flushes_spooled() -> bool:  # each fails after ~2.5 s of retries
                nonlocal peak, ids
                alive(proc)
                peak = max(peak, spool_files(spool))
                ids |= {int(p.name) for p in spool.glob("*") if p.is_dir() and p.name.isdigit()}
                return len(ids) >= 2

            wait_until(two_flushes_spooled, 60, "two flushes in the spool", detail=proc.tail)
            restart_replay_and_stop(seaweed, seaweed_lake, proc, spool)
        finally:
            proc.ensure_dead()
            if not seaweed.running:
                seaweed.restart()
        assert peak > 0, "nothing was spooled while the store was down: the test proved nothing"
        assert ids and min(ids) > started_us, sorted(ids)[:3]  # numbered from the clock, not from 1
        assert spool_files(spool) == 0, f"spool files never replayed: {sorted(spool.rglob('*.arrow'))[:5]}"
        bronze = reconcile(seaweed_lake, sim, instruments, BRONZE_TRADES)
        assert bronze.exact, bronze.problems
        assert bronze.rows > 0
