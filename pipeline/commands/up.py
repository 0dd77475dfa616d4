"""`cryptolake up`: run everything on one machine under a Prefect server (see flows/ops/up.py).

The supervisor lives in ``flows.ops.up`` because it talks to Prefect; ``pipeline`` imports no Prefect, so
this command only hands over to it in a fresh interpreter."""

from __future__ import annotations

import argparse
import os
import sys

from pipeline.checks import Number, PathArg, http_url
from pipeline.config import load_config
from pipeline.lake.location import writable_lake

HELP = "start a Prefect server, worker, deployments, automations, simulator and the stream; Ctrl-C stops it all"
DESCRIPTION = (
    "Start, on 127.0.0.1: a Prefect server (SQLite and PREFECT_HOME under <lake>/_ops/prefect), an alert receiver "
    "writing <lake>/_ops/alerts.log, the simulator (unless every venue is real), the process work pool and "
    "--workers workers, the deployments of deployments/prefect.yaml, the automations, and one stream run per shard. "
    "Ctrl-C cancels the stream runs (they flush first) and stops every child in order."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--port",
        type=Number(integer=True, minimum=1, maximum=65535),
        default=4200,
        help="Prefect server port on 127.0.0.1 (default 4200)",
    )
    p.add_argument(
        "--sim-port",
        type=Number(integer=True, minimum=1, maximum=65535),
        default=8765,
        help="simulator port (default 8765)",
    )
    p.add_argument(
        "--alerts-port",
        type=Number(integer=True, minimum=1, maximum=65535),
        default=8799,
        help="local alert receiver port (default 8799)",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        type=PathArg("file"),
        help="stream configuration (default: $CRYPTOLAKE_CONFIG or config/cryptolake.toml)",
    )
    p.add_argument(
        "--webhook",
        metavar="URL",
        type=http_url,
        help="send alerts to this webhook too (default: $CRYPTOLAKE_ALERT_WEBHOOK)",
    )
    p.add_argument(
        "--workers",
        type=Number(integer=True, minimum=1, maximum=64),
        default=1,
        help="process workers polling the work pool (default 1); the stream's shards spread over them",
    )
    p.add_argument("--no-stream", action="store_true", help="do not start the stream runs")


def run(args: argparse.Namespace) -> int:
    # Checked here, before the supervisor starts a server and a worker, so a bad lake or configuration is one
    # line and exit 2, not a failure found minutes later in a child's log.
    writable_lake(args.lake)
    load_config(args.config)
    argv = [sys.executable, "-m", "flows.ops.up", "--port", str(args.port), "--sim-port", str(args.sim_port),
            "--alerts-port", str(args.alerts_port), "--workers", str(args.workers)]  # fmt: skip
    if args.lake:
        argv += ["--lake", args.lake]
    if args.config:
        argv += ["--config", str(args.config)]
    if args.webhook:
        argv += ["--webhook", args.webhook]
    if args.no_stream:
        argv.append("--no-stream")
    os.execv(sys.executable, argv)
    return 0  # not reached
