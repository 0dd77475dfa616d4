"""`cryptolake sim`: run the exchange simulator."""

from __future__ import annotations

import argparse
import errno
from dataclasses import fields

from pipeline.checks import Number
from pipeline.errors import CryptolakeError

HELP = "run the exchange simulator (OKX v5 + Deribit protocols on one port of 127.0.0.1)"
DESCRIPTION = (
    "Run the exchange simulator: a deterministic market from a seed, served over the real OKX v5 and Deribit "
    "WebSocket and REST protocols on 127.0.0.1, with optional fault injection. Ctrl-C stops it."
)

FAULT_HELP = {
    "drop_every_s": "drop every WebSocket connection every N seconds",
    "silence_every_s": "go silent (no frames, no pongs) every N seconds...",
    "silence_for_s": "...for N seconds",
    "malformed_rate": "share of frames sent malformed (truncated JSON, wrong types, unknown channel)",
    "error_rate": "share of frames replaced by venue error events",
    "duplicate_rate": "share of trade frames sent twice",
    "out_of_order_rate": "share of trade frames swapped with the next one",
    "burst_frames_per_s": "burst: extra frames per second...",
    "burst_for_s": "...for N seconds after start (or after the burst is set on /sim/faults)",
    "crossed_quote_rate": "share of quotes sent crossed (bid >= ask)",
    "rest_429_rate": "share of REST requests answered 429 with the venue's own body",
    "rest_5xx_rate": "share of REST requests answered 503",
    "book_skip_rate": "share of book updates not sent (the next one's prev seq points at it)",
    "book_checksum_rate": "share of OKX book updates sent with a wrong checksum",
    "book_cross_rate": "share of book updates carrying an extra bid at the best ask (the book crosses)",
    "book_duplicate_rate": "share of book updates sent twice",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--port",
        type=Number(integer=True, minimum=0, maximum=65535),
        default=8765,
        help="port on 127.0.0.1 (default 8765; 0 = any free port)",
    )
    p.add_argument(
        "--seed",
        type=Number(integer=True),
        default=42,
        help="market seed: same seed, same instruments, trades and candles",
    )
    p.add_argument(
        "--okx-instruments",
        type=Number(integer=True, minimum=0),
        default=50,
        help="OKX spot + USDT swap instruments (default 50)",
    )
    p.add_argument(
        "--deribit-options", type=Number(integer=True, minimum=0), default=120, help="Deribit ETH options (default 120)"
    )
    p.add_argument(
        "--trade-rate", type=Number(minimum=0), default=2.0, help="trades per second per instrument (default 2)"
    )
    p.add_argument(
        "--history-days",
        type=Number(integer=True, minimum=0),
        default=730,
        help="days of 1-minute candle history (default 730)",
    )
    p.add_argument(
        "--idle-timeout", type=Number(above=0), default=30.0, help="close WebSockets silent this long (default 30 s)"
    )
    p.add_argument(
        "--funding-interval-scale",
        type=Number(above=0, maximum=1),
        default=1.0,
        help="1 = the venues' funding schedules (8 h/4 h/1 h, default); 0.000277778 = an hour of funding per second",
    )
    p.add_argument(
        "--book-updates-per-s",
        type=Number(minimum=0),
        default=40.0,
        help="order-book events per instrument and second (options: a tenth; default 40)",
    )
    p.add_argument(
        "--book-checksum",
        choices=("crc32", "zero"),
        default="crc32",
        help="OKX books checksum: crc32 (the pre-2026 rule, default) or zero (OKX since 2026-06)",
    )
    p.add_argument(
        "--no-book-ws-snapshot",
        action="store_true",
        help="OKX books subscriptions get no WebSocket snapshot: clients take GET /api/v5/market/books",
    )
    g = p.add_argument_group("faults (all off by default; also settable at run time: POST /sim/faults)")
    from pipeline.simulator.faults import FaultSettings

    for f in fields(FaultSettings):
        g.add_argument(
            "--" + f.name.replace("_", "-"),
            dest="fault_" + f.name,
            type=Number(minimum=0),
            default=0.0,
            metavar="N",
            help=FAULT_HELP.get(f.name, f.name),
        )


def sim_config_from_args(args: argparse.Namespace):  # -> SimConfig (import kept lazy for --help speed)
    from pipeline.simulator import SimConfig
    from pipeline.simulator.faults import FaultSettings

    faults = FaultSettings.from_mapping(
        {f.name: getattr(args, "fault_" + f.name) for f in fields(FaultSettings) if getattr(args, "fault_" + f.name)}
    )
    return SimConfig(
        seed=args.seed,
        port=args.port,
        okx_instruments=args.okx_instruments,
        deribit_options=args.deribit_options,
        trade_rate_per_instrument_per_s=args.trade_rate,
        history_days=args.history_days,
        idle_timeout_s=args.idle_timeout,
        funding_interval_scale=args.funding_interval_scale,
        book_updates_per_s=args.book_updates_per_s,
        book_checksum=args.book_checksum,
        book_ws_snapshot=not args.no_book_ws_snapshot,
        faults=faults,
    )


def run(args: argparse.Namespace) -> int:
    from pipeline.simulator import run_simulator

    try:
        run_simulator(sim_config_from_args(args))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise CryptolakeError(
                f"port {args.port} on 127.0.0.1 is already in use: pick another --port, or 0 for any free one"
            ) from None
        raise
    return 0
