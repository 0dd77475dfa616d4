"""`make demo`: everything the project can do so far, end to end, on the embedded simulator."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from pipeline.config import load_config
from pipeline.ingest.importer import import_capture
from pipeline.ingest.stream import run_stream
from pipeline.lake import writer
from pipeline.lake.location import Lake
from pipeline.lake.summary import print_summary
from pipeline.lake.tables import BRONZE_TRADES

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
CAPTURES = (
    ("okx", "okx/cryptofeed-2022-05-public.ws.log"),
    ("okx", "okx/okcoin-v5-2023-05-candles.ws.log"),
    ("okx", "okx/ccxt-2026-08.jsonl"),
    ("deribit", "deribit/cryptofeed-2021-07-options.ws.log"),
    ("deribit", "deribit/ccxt-2026-08.jsonl"),
)


def _step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def run_demo(lake: Lake, *, seconds: float = 20.0) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from pipeline.simulator import SimConfig, SimulatorThread

    _step("1. exchange simulator (OKX v5 + Deribit protocols) on 127.0.0.1")
    sim = SimulatorThread(SimConfig(port=0))
    port = sim.start()
    print(f"   listening on ws://127.0.0.1:{port}  (REST on http://127.0.0.1:{port})")
    try:
        _step(f"2. stream OKX spot+swaps and Deribit ETH options into bronze for {seconds:.0f} s")
        before = writer.count_rows(lake, BRONZE_TRADES)
        started = time.monotonic()
        run = asyncio.run(run_stream(lake, load_config(), sim_ws_url=f"ws://127.0.0.1:{port}", seconds=seconds))
        s = run.stats
        for venue, names in run.instruments.items():
            print(f"   {venue}: {len(names)} instruments")
        print(
            f"   {s.frames:,} frames -> {s.trades:,} trades, {s.quotes:,} quotes, {s.rejects} rejects, {s.gaps} gaps "
            f"in {s.commits} commits over {run.connections} connections ({time.monotonic() - started:.1f} s)"
        )
        added = writer.count_rows(lake, BRONZE_TRADES) - before
        print(f"   bronze/trades grew by {added:,} rows (the stream counted {s.trades:,})")
    finally:
        sim.stop()

    _step("3. import recorded real traffic (../shared/realdata) through the same parsers")
    if not REALDATA.is_dir():
        print(f"   skipped: {REALDATA} not found")
    for venue, rel in CAPTURES:
        path = REALDATA / rel
        if not path.is_file():
            continue
        r = import_capture(lake, path, venue)
        state = "already imported" if r.already_imported else f"{r.trades} trades, {r.quotes} quotes, {r.rejects} rejects"
        print(f"   {rel}: {state}")

    _step("4. the lake")
    print_summary(lake)
    return 0
