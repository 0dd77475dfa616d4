"""The demo's pipeline against moto's S3 server (a separate process on 127.0.0.1) gives the same lake, row for
row, as against a local folder: import of the real captures, universe, backfill and fill-gaps from the
simulator, silver, gold (published to a local --gold-dir: Qlib reads local files); then the CLI's tables,
status and maintain on the S3 lake, and a short stream into both lakes at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from pipeline.chaos.kit import StreamProcess, reconcile, trade_instruments, write_config
from pipeline.demo import CAPTURES
from pipeline.lake import writer
from pipeline.lake.location import Lake, resolve_lake
from pipeline.lake.tables import BRONZE_TRADES, SILVER_TRADES
from pipeline.realdata import realdata_dir
from pipeline.silver import run_silver
from pipeline.simulator import SimConfig, SimulatorThread
from tests.objectstore.kit import MotoServer
from tests.objectstore.steps import Steps, differences, gold_files, table_rows


@dataclass
class LakePair:
    local: Lake
    s3: Lake
    local_gold: Path
    s3_gold: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def pair(moto: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LakePair]:
    if not realdata_dir().is_dir():
        pytest.skip(f"real recordings not found at {realdata_dir()}")
    tmp = tmp_path_factory.mktemp("pipeline-s3")
    local = resolve_lake(str(tmp / "lake"))
    s3 = moto.lake()
    # Every step gets the same 'now', ten minutes back: the simulator's recent minutes are still being drawn.
    now_ms = (time.time_ns() // 60_000_000_000) * 60_000 - 600_000
    with SimulatorThread(SimConfig(port=0, seed=5)) as sim:
        steps = Steps(sim.base_http_url, now_ms, realdata_dir())
        steps.run(local, tmp / "lake" / "gold")
        steps.run(s3, tmp / "gold-s3")
    yield LakePair(local, s3, tmp / "lake" / "gold", tmp / "gold-s3", {**os.environ, **moto.env()})


def test_every_table_is_the_same_row_for_row(pair: LakePair) -> None:
    local, s3 = table_rows(pair.local), table_rows(pair.s3)
    for key in (
        "bronze/trades",
        "bronze/quotes",
        "bronze/candles",
        "silver/trades",
        "silver/candles",
        "silver/instruments",
    ):
        assert s3.get(key, pl.DataFrame()).height > 0, f"{key} is empty on S3: the comparison would prove nothing"
    assert differences(local, s3) == []


def test_gold_from_the_s3_lake_is_byte_identical(pair: LakePair) -> None:
    local, s3 = gold_files(pair.local_gold), gold_files(pair.s3_gold)
    assert len(s3) > 50 and any(k.endswith(".day.bin") for k in s3), sorted(s3)[:5]
    assert local == s3


def _cli(pair: LakePair, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "--lake", pair.s3.root, *args],
                          env=pair.env, capture_output=True, text=True, timeout=120)  # fmt: skip


def test_cli_tables_status_maintain_and_gold_on_s3(pair: LakePair) -> None:
    tables = _cli(pair, "tables")
    assert tables.returncode == 0, tables.stderr
    trades = writer.count_rows(pair.local, BRONZE_TRADES)
    assert any(line.split()[:2] == ["bronze/trades", f"{trades:,}"] for line in tables.stdout.splitlines()), (
        tables.stdout
    )

    status = _cli(pair, "status", "--json", "--max-commit-age-min", "0")
    assert status.returncode == 0, status.stdout + status.stderr
    assert json.loads(status.stdout)["root"] == pair.s3.root

    before = table_rows(pair.s3)
    maintain = _cli(pair, "maintain", "--min-files", "2", "--retention-hours", "1")
    assert maintain.returncode == 0, maintain.stdout + maintain.stderr
    assert "checkpoint v" in maintain.stdout and "ERRORS" not in maintain.stdout
    assert differences(before, table_rows(pair.s3)) == []  # compaction and checkpoints change no row

    again = _cli(pair, "import", str(realdata_dir() / CAPTURES[0][1]), "--venue", CAPTURES[0][0])
    assert again.returncode == 0 and "already imported" in again.stdout, again.stdout + again.stderr

    gold_dir = pair.s3_gold.parent / "gold-cli"
    gold = _cli(pair, "gold", "--gold-dir", str(gold_dir), "--full")
    assert gold.returncode == 0, gold.stdout + gold.stderr
    assert gold_files(gold_dir) == gold_files(pair.local_gold)

    refused = _cli(pair, "gold")  # Qlib reads local files: an object-store lake needs --gold-dir
    assert refused.returncode != 0 and "--gold-dir" in refused.stderr + refused.stdout
    assert "Traceback" not in refused.stderr


def test_short_stream_into_s3_and_local_at_once(
    moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two collectors on the same simulator, one per lake: each bronze matches the simulator's truth exactly,
    and both hold the same trades over the window both saw (receive_ts aside)."""
    for key, value in moto.env().items():
        monkeypatch.setenv(key, value)
    lakes = {"local": resolve_lake(str(tmp_path / "lake")), "s3": moto.lake()}
    with SimulatorThread(SimConfig(port=0, seed=8, okx_instruments=3, deribit_options=2,
                                   trade_rate_per_instrument_per_s=8.0)) as sim:  # fmt: skip
        instruments = trade_instruments(sim, okx_limit=3, options=1)
        procs = {}
        for name, lake in lakes.items():
            config = write_config(tmp_path / f"{name}.toml", instruments, name=f"stream-{name}")
            procs[name] = StreamProcess(lake, sim, config, tmp_path / f"spool-{name}", tmp_path / f"{name}.log")
        try:
            for proc in procs.values():
                proc.start()
            for proc in procs.values():
                proc.wait_connected(2 * len(instruments))
            time.sleep(8.0)
            for name, proc in procs.items():
                assert proc.stop() == 0, f"{name}: {proc.tail()}"
        finally:
            for proc in procs.values():
                proc.ensure_dead()
        for name, lake in lakes.items():
            bronze = reconcile(lake, sim, instruments, BRONZE_TRADES)
            assert bronze.exact and bronze.rows > 50, f"{name}: {bronze.problems} ({bronze.rows} rows)"
            run_silver(lake)
            silver = reconcile(lake, sim, instruments, SILVER_TRADES)
            assert silver.exact, f"{name} silver: {silver.problems}"
    frames = {name: writer.read(lake, BRONZE_TRADES).filter(pl.col("source") == "ws") for name, lake in lakes.items()}
    # The window both saw, per instrument, open at both ends: each instrument's trades come in order over one
    # connection, but the two venues' connections (and two trades of one millisecond) end a collector's capture
    # at different points, so a window over all instruments at once could hold a trade only one lake received.
    keys = ["venue", "instrument"]
    span = [
        f.group_by(keys).agg(lo=pl.col("exchange_ts").min(), hi=pl.col("exchange_ts").max()) for f in frames.values()
    ]
    both = (
        span[0]
        .join(span[1], on=keys)
        .select(*keys, lo=pl.max_horizontal("lo", "lo_right"), hi=pl.min_horizontal("hi", "hi_right"))
    )
    common = {
        name: f.join(both, on=keys)
        .filter(pl.col("exchange_ts").is_between(pl.col("lo"), pl.col("hi"), closed="none"))
        .drop("receive_ts", "lo", "hi")
        .sort("venue", "instrument", "trade_id")
        for name, f in frames.items()
    }
    assert common["s3"].height > 20
    assert common["local"].equals(common["s3"])
