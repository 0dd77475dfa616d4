"""A tiny local webhook receiver: every POST becomes one JSON line in the alerts log.

It is the default notification target of the automations (flows/ops/automations.py), so alerts are
visible on a machine with no Slack, mail or pager configured: ``tail -f <lake>/_ops/alerts.log``.
Binds 127.0.0.1 only. Standard library only, so it starts in a fraction of a second.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_LOCK = threading.Lock()  # one writer at a time: lines never interleave


def _handler(log_path: Path) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(min(length, 1_000_000)).decode("utf-8", "replace")
            try:
                body: Any = json.loads(raw)
            except json.JSONDecodeError:
                body = raw
            line = json.dumps(
                {"received_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "path": self.path, "alert": body}
            )
            with _LOCK, log_path.open("a", encoding="utf-8") as f:
                f.write(line + "\n")
            self.send_response(204)
            self.end_headers()

        def do_GET(self) -> None:  # noqa: N802
            # /health for supervisors and tests; nothing else is served.
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep the console quiet
            del format, args

    return Handler


def make_server(log_path: Path, port: int = 0) -> ThreadingHTTPServer:
    """A receiver bound to 127.0.0.1:``port`` (0 = any free port) appending to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.touch(exist_ok=True)
    return ThreadingHTTPServer(("127.0.0.1", port), _handler(log_path))


def read_alerts(log_path: Path) -> list[dict[str, Any]]:
    """Every alert received so far (the log's JSON lines)."""
    if not log_path.exists():
        return []
    return [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description="local alert receiver: POST bodies -> JSON lines")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args()
    server = make_server(args.log, args.port)
    print(f"alert receiver on http://127.0.0.1:{server.server_address[1]} -> {args.log}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
