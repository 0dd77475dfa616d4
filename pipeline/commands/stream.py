"""`cryptolake stream`: capture exchange WebSockets into bronze."""

from __future__ import annotations

import argparse
import asyncio
import logging

from pipeline.checks import Number, PathArg, ws_url
from pipeline.config import SIM, StreamConfig, VenueStreamConfig, load_config
from pipeline.errors import ConfigError
from pipeline.ingest.metrics import DEFAULT_METRICS_PORT
from pipeline.lake.location import resolve_lake

HELP = "capture trades, quotes, books and derivatives state from exchange WebSockets into bronze Delta tables"
DESCRIPTION = (
    "Capture OKX and Deribit WebSockets (or the simulator) into bronze/trades, bronze/quotes, bronze/candles, "
    "bronze/book_deltas, bronze/derivatives, bronze/liquidations, bronze/rejects and bronze/gaps. Ctrl-C or SIGTERM "
    "flushes every buffer before exiting. OKX's tick-by-tick books (channels book_tbt, book50_tbt) need "
    "OKX_API_KEY, OKX_API_SECRET and OKX_API_PASSPHRASE in the environment."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        metavar="FILE",
        type=PathArg("file"),
        help="TOML configuration (default: $CRYPTOLAKE_CONFIG or config/cryptolake.toml)",
    )
    p.add_argument("--venue", action="append", choices=["okx", "deribit"], help="stream only this venue (repeatable)")
    p.add_argument(
        "--instruments", metavar="A,B", help="comma-separated instruments (overrides the config; needs one --venue)"
    )
    p.add_argument(
        "--url",
        metavar="WS_URL",
        type=ws_url,
        help='venue WebSocket base URL, e.g. wss://ws.okx.com:8443, or "sim" (needs one --venue)',
    )
    p.add_argument(
        "--sim-url",
        metavar="WS_URL",
        type=ws_url,
        help="use an already running simulator (cryptolake sim) instead of starting one",
    )
    p.add_argument("--seconds", type=Number(above=0), help="stop after N seconds (default: run until Ctrl-C / SIGTERM)")
    p.add_argument(
        "--record",
        metavar="DIR",
        type=PathArg("new folder"),
        help="also write every raw frame to DIR (re-import with `cryptolake import`)",
    )
    p.add_argument(
        "--spool-dir",
        metavar="DIR",
        type=PathArg("new folder"),
        help="local spool for flushes the lake refuses (default: beside the lake)",
    )
    p.add_argument("--flush-secs", type=Number(above=0), help="flush interval in seconds (default 3)")
    p.add_argument(
        "--metrics-port",
        metavar="PORT",
        nargs="?",
        const=DEFAULT_METRICS_PORT,  # what deployments/grafana/prometheus.yml scrapes
        type=Number(integer=True, minimum=0, maximum=65535),
        help=f"serve Prometheus metrics on 127.0.0.1:PORT/metrics (alone: {DEFAULT_METRICS_PORT}, see deployments/grafana/)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log every reconnect and flush")


def _apply_overrides(config: StreamConfig, args: argparse.Namespace) -> StreamConfig:
    venues = dict(config.venues)
    if args.venue:
        missing = [v for v in args.venue if v not in venues]
        for v in missing:
            venues[v] = VenueStreamConfig(v)
        venues = {v: venues[v] for v in args.venue}
    if args.instruments or args.url:
        if len(venues) != 1:
            raise ConfigError("--instruments/--url", "apply to one venue", "add exactly one --venue")
        ((name, cfg),) = venues.items()
        instruments = (
            tuple(i.strip() for i in args.instruments.split(",") if i.strip()) if args.instruments else cfg.instruments
        )
        venues[name] = VenueStreamConfig(
            name, args.url or cfg.url, instruments, () if args.instruments else cfg.extra, cfg.channels
        )
    settings = config.settings
    if args.flush_secs is not None:
        from dataclasses import replace

        settings = replace(settings, flush_interval_secs=args.flush_secs)
    if not venues:
        raise ConfigError(
            "stream", "no venue configured", "add [stream.okx] or [stream.deribit] to the config, or pass --venue"
        )
    return StreamConfig(name=config.name, settings=settings, venues=venues)


def run(args: argparse.Namespace) -> int:
    from pipeline.ingest.memory import configure_allocators

    configure_allocators()  # before deltalake, polars and pyarrow load (issue #8)
    from pipeline.ingest.stream import run_stream as stream

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("pipeline.ingest.collector").setLevel(logging.INFO)
    if args.seconds is not None and not 0 < args.seconds < float("inf"):  # -1 used to stop at once, silently
        raise ConfigError(
            "--seconds", f"{args.seconds} is not a positive number", "give the run length in seconds, e.g. --seconds 60"
        )
    lake = resolve_lake(args.lake)  # not writable_lake: a lake that refuses writes is what the spool is for
    config = _apply_overrides(load_config(args.config), args)
    sims = [v for v, c in config.venues.items() if c.url == SIM]
    print(
        f"streaming into {lake.root} ({', '.join(config.venues)}{'; simulator' if sims else ''}); Ctrl-C stops and flushes"
    )
    run = asyncio.run(
        stream(
            lake,
            config,
            sim_ws_url=args.sim_url,
            seconds=args.seconds,
            record_dir=args.record,
            spool_dir=args.spool_dir,
            metrics_port=args.metrics_port,
        )
    )
    s = run.stats
    print(
        f"stopped: {s.frames} frames, {s.trades} trades, {s.quotes} quotes, {s.rejects} rejects, {s.gaps} gaps, "
        f"{s.commits} commits, {s.reconnects} reconnects; spool {run.spool_dir}"
    )
    return 0
