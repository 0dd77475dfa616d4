"""The simulator in its own process for benchmarks (as in production: `cryptolake sim`), so the measured
client does not share its GIL or its memory."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request

_SERVER = """
from pipeline.simulator.config import SimConfig
from pipeline.simulator.server import run_simulator
run_simulator(SimConfig(**{kwargs}))
"""


def start_sim_process(**config: object) -> tuple[subprocess.Popen, int]:
    """Start ``run_simulator(SimConfig(port=0, **config))`` in a child process; returns (process, port)."""
    kwargs = dict(port=0, ws_connections_per_s=0, **config)
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVER.format(kwargs=repr(kwargs))], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    deadline = time.time() + 60
    while time.time() < deadline:
        line = proc.stdout.readline()
        match = re.search(r"on 127\.0\.0\.1:(\d+)", line)
        if match:
            return proc, int(match.group(1))
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError("simulator did not start")


def get_json(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return json.loads(response.read())


def post_json(port: int, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())
