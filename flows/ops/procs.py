"""Child processes for the supervisor and the tests: start, wait until healthy, stop by PID.

Every child is started in its own process group (so a Ctrl-C in the terminal reaches only the
supervisor, which then stops the children in order) and is stopped by its PID, never by name.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

PREFECT = str(Path(sys.executable).with_name("prefect"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def start(
    argv: Sequence[str], *, env: Mapping[str, str], log: Path, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a child with its output appended to ``log``; its own session, so terminal signals skip it."""
    log.parent.mkdir(parents=True, exist_ok=True)
    out = log.open("ab")
    try:
        return subprocess.Popen(
            list(argv), env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    finally:
        out.close()  # the child holds its own descriptor


def wait_http(url: str, *, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``url`` until it answers 200 (bounded); fail early if ``proc`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes] | None, *, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
    """Signal one child by PID, wait, then SIGKILL it if it is still there. Returns its exit code."""
    if proc is None or proc.poll() is not None:
        return None if proc is None else proc.returncode
    try:
        os.kill(proc.pid, sig)
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        return proc.wait(10)
    except ProcessLookupError:
        return proc.poll()


def prefect_env(home: Path, api_port: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a local Prefect server and its clients: PREFECT_HOME (SQLite inside) and the API URL."""
    env = dict(os.environ if base is None else base)
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_URL=f"http://127.0.0.1:{api_port}/api",
        PREFECT_SERVER_API_HOST="127.0.0.1",
        PREFECT_SERVER_API_PORT=str(api_port),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_API_URL=f"http://127.0.0.1:{api_port}/api",
    )
    return env


def start_server(
    home: Path, port: int, *, env: Mapping[str, str] | None = None, timeout: float = 90.0
) -> subprocess.Popen[bytes]:
    """`prefect server start` on 127.0.0.1:``port`` with its database under ``home``; returns once healthy."""
    home.mkdir(parents=True, exist_ok=True)
    server_env = prefect_env(home, port, env)
    proc = start(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=server_env,
        log=home / "server.log",
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/api/health", timeout=timeout, proc=proc)
    except BaseException:
        stop(proc)
        raise
    return proc
