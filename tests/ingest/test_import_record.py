"""`cryptolake import` lands every recorded row once; `stream --record` files re-import to the same trades."""

from __future__ import annotations

import asyncio
from pathlib import Path

import polars as pl
import pytest

from pipeline.cli import main
from pipeline.ingest.replay import replay_capture
from pipeline.ingest.stream import run_stream
from pipeline.lake import writer
from pipeline.lake.location import resolve_lake
from pipeline.lake.tables import BRONZE_CANDLES, BRONZE_QUOTES, BRONZE_REJECTS, BRONZE_TRADES
from pipeline.simulator import SimulatorThread
from tests.ingest.streamkit import sim_config, stream_config

RECORDINGS = [
    ("okx", "okx/cryptofeed-2022-05-public.ws.log"),
    ("okx", "okx/okcoin-v5-2023-05-candles.ws.log"),
    ("okx", "okx/ccxt-2026-08.jsonl"),
    ("deribit", "deribit/cryptofeed-2021-07-options.ws.log"),
    ("deribit", "deribit/ccxt-2026-08.jsonl"),
]


@pytest.mark.parametrize(("venue", "rel"), RECORDINGS, ids=[r for _, r in RECORDINGS])
def test_import_lands_every_parsed_row_once(lake, realdata: Path, venue: str, rel: str, capsys) -> None:
    path = realdata / rel
    expected = replay_capture(path, venue)
    assert main(["--lake", lake.root, "import", str(path), "--venue", venue]) == 0
    assert main(["--lake", lake.root, "import", str(path), "--venue", venue]) == 0  # a second import is a no-op
    assert "already imported" in capsys.readouterr().out
    trades = writer.read(lake, BRONZE_TRADES)
    assert trades.height == len(expected.batch.trades)
    assert set(trades["source"].unique().to_list()) <= {"capture"}
    assert writer.count_rows(lake, BRONZE_QUOTES) == len(expected.batch.quotes)
    assert writer.count_rows(lake, BRONZE_CANDLES) == len(expected.batch.candles)
    assert sorted(trades["trade_id"].to_list()) == sorted(r[3] for r in expected.batch.trades)


def test_import_errors_are_clear(lake, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as stop:  # refused while parsing the arguments (pipeline.checks.PathArg)
        main(["--lake", lake.root, "import", str(tmp_path / "missing.log"), "--venue", "okx"])
    assert stop.value.code == 2 and "does not exist" in capsys.readouterr().err


def test_recorded_stream_reimports_to_the_same_trades(lake, tmp_path: Path) -> None:
    record = tmp_path / "record"
    with SimulatorThread(sim_config(malformed_rate=0.02)) as sim:
        asyncio.run(
            run_stream(lake, stream_config(), sim_ws_url=f"ws://127.0.0.1:{sim.port}", seconds=2.5,
                       record_dir=record, spool_dir=tmp_path / "spool", handle_signals=False)
        )  # fmt: skip
    files = sorted(record.iterdir())
    assert len(files) >= 2  # one file per connection (OKX, Deribit)
    replayed = resolve_lake(str(tmp_path / "replayed"))
    for file in files:
        venue = "deribit" if "deribit" in file.name else "okx"
        assert main(["--lake", replayed.root, "import", str(file), "--venue", venue]) == 0

    def keys(target) -> set[tuple[str, str, float]]:
        df = writer.read(target, BRONZE_TRADES)
        return set(zip(df["instrument"].to_list(), df["trade_id"].to_list(), df["price"].to_list(), strict=True))

    assert keys(replayed) == keys(lake) and len(keys(lake)) > 20
    live = writer.read(lake, BRONZE_QUOTES).height
    assert writer.read(replayed, BRONZE_QUOTES).height == live
    # Malformed frames were recorded verbatim too, so they are rejected again on import.
    assert writer.count_rows(replayed, BRONZE_REJECTS) == writer.count_rows(lake, BRONZE_REJECTS) > 0
    assert writer.read(replayed, BRONZE_TRADES).filter(pl.col("source") != "capture").height == 0
