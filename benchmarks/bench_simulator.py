"""Frames per second the simulator sustains to ONE websockets client on loopback (target >= 20,000).

The simulator runs in its own process (as in production use: ``cryptolake sim``), so the client does not
share its GIL. The burst fault drives the rate: extra OKX trades at ``--rate`` trades/s, one trade per
frame, spread over every OKX instrument; the client subscribes to ``trades`` of all of them and counts
frames for ``--seconds`` after a warm-up.

    .venv/bin/python benchmarks/bench_simulator.py [--rate 40000] [--seconds 5]
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=40_000, help="burst trades/s (one frame each)")
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
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
