"""Several writer processes on the same tables of an S3 lake at once, on the server whose conditional put is
atomic (SeaweedFS, see test_conditional_put): two collectors with different names on different instruments
append to the same bronze tables, silver runs again and again, maintenance compacts, vacuums and
checkpoints beside them. Afterwards every flush is in exactly one commit (its Delta application
transaction), bronze and silver equal the simulator's truth, and every table reads.

The run lasts until silver and maintenance have each run ``MIN_RUNS`` times beside the collectors (about 20 s);
``CRYPTOLAKE_OBJECTSTORE_SECS`` makes it last at least that long (a soak).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from pipeline.chaos.kit import StreamProcess, reconcile, spool_files, trade_instruments, write_config
from pipeline.lake import writer
from pipeline.lake.location import Lake
from pipeline.lake.maintenance import all_tables
from pipeline.lake.tables import BRONZE_TABLES, BRONZE_TRADES, SILVER_TRADES
from pipeline.silver import run_silver
from pipeline.simulator import SimConfig, SimulatorThread
from tests.objectstore.kit import SeaweedServer
from tests.waits import wait_until

MIN_RUNS = 6  # of silver and of maintenance, each a child process, all beside the two collectors
SECONDS = float(os.environ.get("CRYPTOLAKE_OBJECTSTORE_SECS", "0"))  # set it to soak longer
RACE_LOST = re.compile(r"lost a commit race")


class CommandLoop:
    """``cryptolake --lake LAKE ARGS`` run again and again in child processes until stopped (bounded by
    ``stop``); every exit code and every line of output kept."""

    def __init__(self, lake: Lake, log: Path, *args: str) -> None:
        self.cmd = [sys.executable, "-m", "pipeline.cli", "--lake", lake.root, *args]
        self.log = log
        self.codes: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self.log.open("ab") as out:
            while not self._stop.is_set():
                self.codes.append(
                    subprocess.run(self.cmd, stdout=out, stderr=subprocess.STDOUT, timeout=300).returncode
                )
                self._stop.wait(1.0)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(320)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def commit_transactions(seaweed: SeaweedServer, lake: Lake, key: str) -> Counter[tuple[str, int]]:
    """(app_id, version) of every application transaction in the table's log, counted over its commits."""
    bucket, _, prefix = lake.root.removeprefix("s3://").partition("/")
    client = seaweed.client()
    found: Counter[tuple[str, int]] = Counter()
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/{key}/_delta_log/")
    for page in pages:
        for obj in page.get("Contents", []):
            if not obj["Key"].endswith(".json"):
                continue
            body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode()
            for line in body.splitlines():
                action = json.loads(line) if line.strip() else {}
                if "txn" in action:
                    found[(action["txn"]["appId"], int(action["txn"]["version"]))] += 1
    return found


def test_collectors_silver_and_maintenance_at_once(seaweed: SeaweedServer, seaweed_lake: Lake, tmp_path: Path) -> None:
    lake = seaweed_lake
    with SimulatorThread(SimConfig(port=0, seed=31, okx_instruments=4, deribit_options=2,
                                   trade_rate_per_instrument_per_s=8.0)) as sim:  # fmt: skip
        everything = trade_instruments(sim, okx_limit=4, options=1)
        shards = {
            "shard-a": {"okx": everything["okx"][:2], "deribit": everything["deribit"][:1]},
            "shard-b": {"okx": everything["okx"][2:], "deribit": everything["deribit"][1:]},
        }
        streams = {}
        for name, inst in shards.items():
            config = write_config(tmp_path / f"{name}.toml", inst, name=name)
            streams[name] = StreamProcess(lake, sim, config, tmp_path / f"spool-{name}", tmp_path / f"{name}.log")
        silver = CommandLoop(lake, tmp_path / "silver.log", "silver")
        maintain = CommandLoop(
            lake, tmp_path / "maintain.log", "maintain", "--min-files", "2", "--retention-hours", "1"
        )
        try:
            for proc in streams.values():
                proc.start()
            for proc in streams.values():
                proc.wait_connected(2 * len(streams))  # the simulator's count: one connection per venue each
            silver.start()
            maintain.start()
            started = time.monotonic()
            wait_until(
                lambda: (
                    min(len(silver.codes), len(maintain.codes)) >= MIN_RUNS and time.monotonic() - started >= SECONDS
                ),
                SECONDS + 300,
                f"{MIN_RUNS} silver and {MIN_RUNS} maintenance runs",
            )
            ran = time.monotonic() - started
            silver.stop()
            maintain.stop()
            time.sleep(1.5)  # the last frames in flight
            for name, proc in streams.items():
                assert proc.stop() == 0, f"{name}: {proc.tail()}"
        finally:
            for proc in streams.values():
                proc.ensure_dead()
            silver.stop()
            maintain.stop()

        assert silver.codes and maintain.codes, "the silver and maintenance loops never ran"
        assert set(silver.codes) == {0}, silver.text()[-3000:]
        assert set(maintain.codes) == {0}, maintain.text()[-3000:]
        for name in streams:
            assert spool_files(tmp_path / f"spool-{name}") == 0, f"{name} left flushes in its spool"

        # Every flush of each collector committed exactly once to each table it wrote.
        flushes: Counter[str] = Counter()
        for spec in BRONZE_TABLES:
            txns = commit_transactions(seaweed, lake, spec.key)
            doubled = {t: n for t, n in txns.items() if n > 1}
            assert not doubled, f"{spec.key}: flushes committed more than once: {doubled}"
            if spec is BRONZE_TRADES:
                flushes.update(app for app, _ in txns)
                assert {app for app, _ in txns} == {f"cryptolake-stream-{n}" for n in shards}, txns.keys()
                assert len(txns) > 20, f"only {len(txns)} flushes reached {spec.key}"

        run_silver(lake)
        for name, inst in shards.items():
            bronze = reconcile(lake, sim, inst, BRONZE_TRADES)
            assert bronze.exact and bronze.rows > 100, f"{name} bronze: {bronze.problems} ({bronze.rows} rows)"
            silver_rows = reconcile(lake, sim, inst, SILVER_TRADES)
            assert silver_rows.exact, f"{name} silver: {silver_rows.problems}"

    for spec in all_tables():  # none left unreadable
        table = writer.open_table(lake, spec)
        if table is not None:
            writer.read(lake, spec)
    retries = {name: len(RACE_LOST.findall(loop.text())) for name, loop in (("silver", silver), ("maintain", maintain))}
    compactions = sum(int(n) for n in re.findall(r"compacted (\d+) partitions", maintain.text()))
    print(f"\nconcurrent writers for {ran:.0f} s: flushes committed to bronze/trades {dict(flushes)}, "
          f"{len(silver.codes)} silver runs, {len(maintain.codes)} "
          f"maintenance runs ({compactions} partitions compacted); commit races lost and retried: {retries}")  # fmt: skip
