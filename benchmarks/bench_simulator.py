"""Frames per second the simulator sustains to ONE websockets client on loopback (target >= 20,000).

The simulator runs in its own process (as in production use: ``cryptolake sim``), so the client does not
share its GIL. The burst fault drives the rate: extra OKX trades at ``--rate`` trades/s, one trade per
frame, spread over every OKX instrument; the client subscribes to ``trades`` of all of them and counts
frames for ``--seconds`` after a warm-up.

    .venv/bin/python benchmarks/bench_simulator.py [--rate 40000] [--seconds 5] [--book-seconds 5] [--books-only]

Second figure: order-book generation on one core, in process (``pipeline/simulator/books.py``): the level
updates per second the books of 50 OKX instruments and 121 Deribit ones produce while stepping through
``--book-seconds`` of simulated time at 2,000 events per instrument and second (trades included), beside the
same number of bare dict writes and deletes (the floor of any Python book); target >= 200,000/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from simproc import get_json as get  # noqa: E402
from simproc import post_json as post  # noqa: E402
from simproc import start_sim_process  # noqa: E402


def start_server() -> tuple[subprocess.Popen, int]:
    return start_sim_process(seed=7, max_buffered_frames=2_000_000)


async def measure(port: int, rate: float, seconds: float) -> tuple[int, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v5/public/instruments?instType=SPOT") as r:
        ids = [row["instId"] for row in json.loads(r.read())["data"]]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v5/public/instruments?instType=SWAP") as r:
        ids += [row["instId"] for row in json.loads(r.read())["data"]]
    async with websockets.connect(
        f"ws://127.0.0.1:{port}/ws/v5/public", compression=None, max_queue=None, ping_interval=None
    ) as ws:
        await ws.send(json.dumps({"op": "subscribe", "args": [{"channel": "trades", "instId": i} for i in ids]}))
        post(port, "/sim/faults", {"burst_frames_per_s": rate, "burst_for_s": seconds + 3})
        warm_until = time.perf_counter() + 1.0
        while time.perf_counter() < warm_until:  # warm-up: let the burst reach steady state
            await ws.recv()
        n = 0
        t0 = time.perf_counter()
        end = t0 + seconds
        while True:
            await ws.recv()
            n += 1
            if n & 1023 == 0 and time.perf_counter() >= end:
                break
        return n, time.perf_counter() - t0


def measure_books(sim_seconds: float) -> tuple[int, float, float]:
    """(level updates, seconds spent stepping the books, seconds for the same number of bare dict writes)."""
    from pipeline.simulator.books import BookSet
    from pipeline.simulator.config import SimConfig
    from pipeline.simulator.market import Market

    start = 1_786_540_440_000
    market = Market(SimConfig(seed=7, start_ms=start, okx_instruments=50, deribit_options=120, history_days=2))
    books = BookSet(market, 2_000.0, 7)
    for key in books.books:
        books.book(*key)  # watched: stepped with the clock (unwatched books wait until something looks at them)
    seq0 = sum(b.seq for b in books.books.values())
    spent = 0.0
    now = start
    for _ in range(int(sim_seconds * 10)):
        now += 100
        events = market.advance(now)  # the market's own work is not timed
        t = time.perf_counter()
        books.advance(now, events)
        spent += time.perf_counter() - t
    n = sum(b.seq for b in books.books.values()) - seq0
    side: dict[int, int] = {}
    t = time.perf_counter()
    for i in range(n):  # the floor: one dict write or delete per level update
        k = i & 511
        if k in side and i & 1:
            del side[k]
        else:
            side[k] = i
    bare = time.perf_counter() - t
    return n, spent, bare


def measure_unwatched(sim_seconds: float) -> tuple[int, float, float]:
    """(books, ms of CPU per simulated second with none watched, with all watched): the option universe nobody
    subscribes to costs the lazy books almost nothing."""
    from pipeline.simulator.books import BookSet
    from pipeline.simulator.config import SimConfig
    from pipeline.simulator.market import Market

    start = 1_786_540_440_000
    spent = {}
    for watch in (False, True):
        market = Market(SimConfig(seed=7, start_ms=start, okx_instruments=50, deribit_options=830, history_days=1))
        books = BookSet(market, 100.0, 7)
        if watch:
            for key in books.books:
                books.book(*key)
        now, cpu = start, 0.0
        for _ in range(int(sim_seconds * 10)):
            now += 100
            events = market.advance(now)
            t = time.process_time()
            books.advance(now, events)
            cpu += time.process_time() - t
        spent[watch] = cpu * 1000 / sim_seconds
    return len(books.books), spent[False], spent[True]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=40_000, help="burst trades/s (one frame each)")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--book-seconds", type=float, default=5.0, help="simulated seconds of order-book generation")
    ap.add_argument("--books-only", action="store_true", help="only the order-book generation figure")
    args = ap.parse_args()
    n, spent, bare = measure_books(args.book_seconds)
    ups = n / spent
    print(
        f"simulator books: {ups:,.0f} level updates/s generated on one core (target >= 200,000) "
        f"[{n:,} updates of 171 books in {spent:.2f} s; bare dict writes {n / bare:,.0f}/s]"
    )
    print(
        f"RESULT simulator_book_updates_per_s {ups:.0f} | baseline target_book_updates_per_s 200000 "
        f"| bare_dict_writes_per_s {n / bare:.0f} | met {ups >= 200_000}"
    )
    count, lazy, eager = measure_unwatched(args.book_seconds)
    print(f"simulator books, {count} of them (830 options): {lazy:.1f} ms CPU per simulated second with none "
          f"watched, {eager:.1f} with every book watched")  # fmt: skip
    if args.books_only:
        return
    proc, port = start_server()
    try:
        n, elapsed = asyncio.run(measure(port, args.rate, args.seconds))
        state = get(port, "/sim/state")
    finally:
        proc.terminate()
        proc.wait(10)
    fps = n / elapsed
    print(
        f"simulator: {fps:,.0f} frames/s to one client (target >= 20,000)"
        f" [{n:,} frames in {elapsed:.2f} s, burst {args.rate:,.0f}/s, "
        f"burst trades {state['counters'].get('burst_trades', 0):,}]"
    )
    print(f"RESULT simulator_frames_per_s {fps:.0f} | baseline target_frames_per_s 20000 | met {fps >= 20_000}")


if __name__ == "__main__":
    from versions import versions_line  # benchmarks/ is on sys.path when a script runs

    print(f"versions: {versions_line()}", flush=True)
    main()
