"""Maintenance: compaction, vacuum and checkpoints, including while the stream keeps appending."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

from pipeline.errors import ConfigError
from pipeline.lake import writer
from pipeline.lake.maintenance import maintain_lake, maintain_table
from pipeline.lake.tables import BRONZE_TRADES
from pipeline.simulator import SimulatorThread
from tests.ingest.streamkit import bronze_key, bronze_trades, ground_truth, sim_config

INSTRUMENTS = ("BTC-USDT", "ETH-USDT-SWAP")


def _files(lake) -> int:  # noqa: ANN001
    table = writer.open_table(lake, BRONZE_TRADES)
    return 0 if table is None else len(table.file_uris())


def test_compaction_merges_small_files_and_keeps_every_row(lake) -> None:
    from datetime import UTC, datetime

    ts = datetime(2024, 1, 1, tzinfo=UTC)
    for i in range(6):
        rows = {f.name: [None] * 10 for f in BRONZE_TRADES.schema}
        rows.update(venue=["okx"] * 10, instrument=["X"] * 10, trade_id=[f"{i}-{j}" for j in range(10)], exchange_ts=[ts] * 10,
                    receive_ts=[ts] * 10, date=[ts.date()] * 10)  # fmt: skip
        writer.append(
            lake,
            BRONZE_TRADES,
            pa.table({k: pa.array(v, type=BRONZE_TRADES.schema.field(k).type) for k, v in rows.items()}),
        )
    assert _files(lake) == 6
    (report,) = maintain_lake(lake, tables=["bronze/trades"], min_files=4, retention_hours=1)
    assert (report.files_before, report.files_after, report.files_removed, report.files_added) == (6, 1, 6, 1)
    assert report.checkpoint_version is not None and not report.errors
    assert any((Path(lake.root) / "bronze/trades/_delta_log").glob("*.checkpoint.parquet"))
    assert writer.count_rows(lake, BRONZE_TRADES) == 60
    assert sorted(writer.read(lake, BRONZE_TRADES)["trade_id"].to_list()) == sorted(
        f"{i}-{j}" for i in range(6) for j in range(10)
    )
    with pytest.raises(ConfigError):
        maintain_table(lake, BRONZE_TRADES, retention_hours=0)


def test_maintenance_while_streaming_loses_no_commit(lake, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "pipeline.cli", "--lake", lake.root, "stream", "--venue", "okx", "--instruments", ",".join(INSTRUMENTS),
           "--url", "sim", "--spool-dir", str(tmp_path / "spool"), "--flush-secs", "0.3"]  # fmt: skip
    with SimulatorThread(sim_config()) as sim:
        proc = subprocess.Popen(
            [*cmd, "--sim-url", f"ws://127.0.0.1:{sim.port}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        compacted = passes = 0
        try:
            deadline = time.monotonic() + 30
            while _files(lake) < 3 and time.monotonic() < deadline:
                time.sleep(0.2)
            end = time.monotonic() + 8
            while time.monotonic() < end:  # compact over and over while flushes keep landing
                report = maintain_table(lake, BRONZE_TRADES, min_files=2, retention_hours=1)
                assert report is not None and not report.errors, report
                compacted += report.files_removed
                passes += 1
                time.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
        assert proc.returncode == 0, out
        committed = int(re.search(r"stopped: \d+ frames, (\d+) trades", out).group(1))  # type: ignore[union-attr]
        assert passes >= 5 and compacted >= 5
        assert writer.count_rows(lake, BRONZE_TRADES) == committed > 100
        for instrument in INSTRUMENTS:
            df = bronze_trades(lake, "okx", instrument)
            keys = bronze_key(df, "okx").to_list()
            assert len(keys) == len(set(keys)), "a compaction duplicated rows"
            first, last = (
                int(df["exchange_ts"].min().timestamp() * 1000),
                int(df["exchange_ts"].max().timestamp() * 1000),
            )
            assert set(keys) == set(ground_truth(sim, "okx", instrument, first, last))


def test_a_compaction_that_loses_the_race_to_a_merge_is_retried(lake) -> None:
    """A merge that rewrites files of the partition being compacted makes the OPTIMIZE commit fail ("a
    concurrent transaction deleted data this operation read"); it is run again on a fresh snapshot."""
    import threading

    from pipeline.lake.maintenance import DEFAULT_TARGET_SIZE, TableMaintenance, compact_partition
    from pipeline.lake.merge import merge
    from pipeline.lake.tables import TableSpec

    schema = pa.schema([("part", pa.string()), ("k", pa.string()), ("v", pa.int64())])
    for round_no in range(
        8
    ):  # a round in which the merges happen to miss the compaction's window proves nothing: again
        spec = TableSpec("silver", f"churn{round_no}", schema, ("part",))  # 20 small files to compact each round
        for i in range(20):
            writer.append(
                lake,
                spec,
                pa.table({"part": ["a"] * 50, "k": [f"{i}-{j}" for j in range(50)], "v": [0] * 50}, schema=schema),
            )
        report = TableMaintenance(spec.key)
        done = threading.Event()

        def churn(spec: TableSpec = spec, report: TableMaintenance = report, done: threading.Event = done) -> None:
            n = 0
            while not done.is_set() and not report.conflicts_retried:  # after one lost race, let the retry land
                merge(
                    lake, spec, pa.table({"part": ["a"], "k": [f"{n % 20}-0"], "v": [n]}, schema=schema), ("part", "k")
                )
                n += 1

        thread = threading.Thread(target=churn)
        thread.start()
        time.sleep(0.02)
        compact_partition(lake, spec, {"part": "a"}, DEFAULT_TARGET_SIZE, report)
        done.set()
        thread.join()
        assert not report.errors, report.errors
        assert writer.count_rows(lake, spec) == 1000
        if report.conflicts_retried:
            break
    assert report.conflicts_retried >= 1 and report.files_removed >= 2, report
