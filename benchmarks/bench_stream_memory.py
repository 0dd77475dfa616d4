"""Resident memory of the collector streaming 50 instruments at ~2,000 frames/s for 10 minutes.

Target (issue 3): below 250 MB and flat (less than 10 % growth between minute 2 and the end). The simulator
runs in its own process, so only the collector's memory is measured (psutil RSS of this process).

``--books`` (issue #15): 50 OKX instruments with ``books`` + trades and 120 Deribit options with
``book.{inst}.100ms`` (every book message verified on arrival, kept in bronze/book_deltas); the simulator's
trade burst (``--burst`` OKX trade frames/s) brings the whole stream to >= 10,000 frames/s. Target: peak RSS
below 400 MB, growth below 10 %.

    .venv/bin/python benchmarks/bench_stream_memory.py [--minutes 10] [--trade-rate 30] [--books [--burst 8500]]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline.ingest.memory import configure_allocators  # noqa: E402

configure_allocators()  # as `cryptolake stream` does, before pyarrow, polars and deltalake load

from simproc import get_json, post_json, start_sim_process  # noqa: E402

from pipeline.config import StreamConfig, VenueStreamConfig  # noqa: E402
from pipeline.ingest.stream import run_stream  # noqa: E402
from pipeline.lake.location import resolve_lake  # noqa: E402
from pipeline.stream_settings import StreamSettings  # noqa: E402

BOOK_OPTIONS = 120


async def soak(
    port: int, minutes: float, sample_secs: float, books: bool = False
) -> tuple[list[tuple[float, float]], Any]:
    names = [
        row["instId"]
        for t in ("SPOT", "SWAP")
        for row in get_json(port, f"/api/v5/public/instruments?instType={t}")["data"]
    ]
    venues = {"okx": VenueStreamConfig("okx", "sim", tuple(names[:50]), (), ("trades", "quotes"))}
    if books:
        venues["okx"] = VenueStreamConfig("okx", "sim", tuple(names[:50]), (), ("trades", "book"))
        options = [
            row["instrument_name"]
            for currency in ("ETH", "BTC")
            for row in get_json(port, f"/api/v2/public/get_instruments?currency={currency}&kind=option")["result"]
        ]
        venues["deribit"] = VenueStreamConfig("deribit", "sim", tuple(options[:BOOK_OPTIONS]), (), ("option_book",))
    config = StreamConfig(name="bench", settings=StreamSettings(stats_interval_secs=60), venues=venues)
    lake = resolve_lake(tempfile.mkdtemp(prefix="bench-soak-"))
    process = psutil.Process(os.getpid())
    samples: list[tuple[float, float]] = []
    stop = asyncio.Event()

    async def sampler() -> None:
        start = time.monotonic()
        while not stop.is_set():
            samples.append((time.monotonic() - start, process.memory_info().rss / 2**20))
            await asyncio.sleep(sample_secs)

    task = asyncio.create_task(sampler())
    run = await run_stream(
        lake, config, sim_ws_url=f"ws://127.0.0.1:{port}", seconds=minutes * 60, stop=stop, handle_signals=False
    )
    stop.set()
    await task
    return samples, run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument(
        "--trade-rate",
        type=float,
        default=30.0,
        help="simulator trades/s per instrument (30: ~2,000 frames/s in all, the issue's rate)",
    )
    ap.add_argument("--sample-secs", type=float, default=10.0)
    ap.add_argument("--books", action="store_true", help="OKX books + trades and 120 Deribit option books (issue #15)")
    ap.add_argument(
        "--burst",
        type=float,
        default=8500.0,
        help="--books: extra OKX trade frames/s (the simulator's burst fault) on top of the books' ~1,700 and the "
        "trades' ~1,500, for >= 10,000 frames/s in all (a higher --trade-rate costs the simulator far more)",
    )
    args = ap.parse_args()
    proc, port = start_sim_process(
        okx_instruments=50,
        deribit_options=BOOK_OPTIONS if args.books else 0,
        trade_rate_per_instrument_per_s=args.trade_rate,
    )
    try:
        if args.books:
            post_json(port, "/sim/faults", {"burst_frames_per_s": args.burst, "burst_for_s": args.minutes * 60 + 60})
        samples, run = asyncio.run(soak(port, args.minutes, args.sample_secs, args.books))
    finally:
        proc.terminate()
        proc.wait(15)
    seconds = args.minutes * 60
    s = run.stats
    at2 = next((rss for t, rss in samples if t >= min(120, seconds / 5)), samples[0][1])
    end = samples[-1][1]
    peak = max(rss for _, rss in samples)
    growth = (end - at2) / at2 * 100
    target = 400 if args.books else 250
    what = (
        f"50 OKX instruments (books + trades), {BOOK_OPTIONS} Deribit option books"
        if args.books
        else "50 OKX instruments"
    )
    print(
        f"stream soak: {what}, {seconds / 60:.1f} min, {s.frames / seconds:,.0f} frames/s, {s.trades / seconds:,.0f} trades/s, {s.commits} commits"
    )
    if args.books:
        print(
            f"  book messages: {s.book_messages / seconds:,.0f}/s, {s.book_messages:,} verified, {s.book_breaks} breaks, "
            f"{s.book_resyncs} resyncs (the simulator injects no fault here)"
        )
    print(
        f"  RSS at minute {min(120, seconds / 5) / 60:.1f}: {at2:.0f} MB, at end: {end:.0f} MB, peak: {peak:.0f} MB (target < {target} MB)"
    )
    print(f"  growth from minute 2 to end: {growth:+.1f} % (target < 10 %)")
    print("  samples (s, MB): " + " ".join(f"{t:.0f}:{rss:.0f}" for t, rss in samples))
    name = "stream_books_rss_mb" if args.books else "stream_rss_mb"
    print(
        f"RESULT {name} {peak:.0f} | baseline target_rss_mb {target} | growth_pct {growth:.1f} (target < 10) | frames_per_s {s.frames / seconds:.0f}"
    )
    return 0


if __name__ == "__main__":
    from versions import versions_line  # benchmarks/ is on sys.path when a script runs

    print(f"versions: {versions_line()}", flush=True)
    raise SystemExit(main())
