"""instruments = "universe": the stream follows silver/instruments while running, without a restart."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

from pipeline.config import StreamConfig, VenueStreamConfig
from pipeline.errors import ConfigError
from pipeline.ingest.stream import run_stream
from pipeline.simulator import SimulatorThread
from pipeline.universe import UniverseFilters, current_universe, refresh_universe
from tests.ingest.streamkit import FAST, bronze_trades, sim_config


def _config() -> StreamConfig:
    settings = replace(FAST, universe_poll_secs=0.3)
    return StreamConfig("test", settings, {"okx": VenueStreamConfig("okx", "sim", "universe", (), ("trades",))})


def _select(lake, rest_url: str, top_n: int) -> list[str]:
    refresh_universe(lake, ["okx"], filters=UniverseFilters(top_n=top_n, okx_markets=("swap",)), rest_url=rest_url)
    return current_universe(lake, "okx")


def test_stream_subscribes_joiners_and_unsubscribes_leavers_live(lake, tmp_path: Path) -> None:
    with SimulatorThread(sim_config().with_changes(okx_instruments=10)) as sim:
        rest_url = f"http://127.0.0.1:{sim.port}"
        first = _select(lake, rest_url, 2)
        marks: dict[str, float] = {}

        async def main():
            stop = asyncio.Event()
            stream = asyncio.create_task(run_stream(lake, _config(), sim_ws_url=f"ws://127.0.0.1:{sim.port}", stop=stop,
                                                    spool_dir=tmp_path / "spool", handle_signals=False))  # fmt: skip
            await asyncio.sleep(2.0)
            marks["grown"] = time.time()
            grown = await asyncio.to_thread(_select, lake, rest_url, 4)
            await asyncio.sleep(2.5)
            marks["shrunk"] = time.time()
            shrunk = await asyncio.to_thread(_select, lake, rest_url, 1)
            await asyncio.sleep(2.5)
            stop.set()
            return await stream, grown, shrunk

        run, grown, shrunk = asyncio.run(main())
    assert len(first) == 2 and len(grown) == 4 and len(shrunk) == 1 and set(first) <= set(grown)
    assert run.stats.reconnects == 0
    for joiner in set(grown) - set(first):
        got = bronze_trades(lake, "okx", joiner)
        assert got.height > 0, f"{joiner} joined the universe but was never streamed"
        assert got["receive_ts"].min().timestamp() >= marks["grown"]
    for leaver in set(grown) - set(shrunk):
        got = bronze_trades(lake, "okx", leaver)
        late = got.filter(pl.col("receive_ts").dt.epoch("ms") > int((marks["shrunk"] + 1.5) * 1000))
        assert late.height == 0, f"{leaver} left the universe but kept streaming"
    assert bronze_trades(lake, "okx", shrunk[0])["receive_ts"].max().timestamp() > marks["shrunk"] + 1.5


def test_universe_without_rows_is_a_config_error(lake, tmp_path: Path) -> None:
    with SimulatorThread(sim_config()) as sim, pytest.raises(ConfigError) as err:
        asyncio.run(
            run_stream(
                lake,
                _config(),
                sim_ws_url=f"ws://127.0.0.1:{sim.port}",
                seconds=1,
                spool_dir=tmp_path / "s",
                handle_signals=False,
            )
        )
    assert "cryptolake universe" in str(err.value)
