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
import re
import subprocess
import sys
import time
import urllib.request

import websockets

SERVER = """
import sys
from pipeline.simulator.config import SimConfig
from pipeline.simulator.server import run_simulator
run_simulator(SimConfig(port=0, seed=7, ws_connections_per_s=0, max_buffered_frames=2_000_000))
"""


def start_server() -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    deadline = time.time() + 60
    while time.time() < deadline:
        line = proc.stdout.readline()
        m = re.search(r"on 127\.0\.0\.1:(\d+)", line)
        if m:
            return proc, int(m.group(1))
    proc.kill()
    raise RuntimeError("simulator did not start")


def post(port: int, path: str, body: dict) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def get(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.loads(r.read())


async def measure(port: int, rate: float, seconds: float) -> tuple[int, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v5/public/instruments?instType=SPOT") as r:
        ids = [row["instId"] for row in json.loads(r.read())["data"]]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v5/public/instruments?instType=SWAP") as r:
        ids += [row["instId"] for row in json.loads(r.read())["data"]]
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws/v5/public", compression=None,
                                  max_queue=None, ping_interval=None) as ws:
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
    print(f"simulator: {fps:,.0f} frames/s to one client (target >= 20,000)"
          f" [{n:,} frames in {elapsed:.2f} s, burst {args.rate:,.0f}/s, "
          f"burst trades {state['counters'].get('burst_trades', 0):,}]")
    sys.exit(0 if fps >= 20_000 else 1)


if __name__ == "__main__":
    main()
