"""The ``cryptolake`` command. Each subcommand parses its options and calls one function of the library;
nothing here knows about Delta, WebSockets or Prefect internals."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from pipeline.errors import CryptolakeError
from pipeline.lake.location import DEFAULT_LAKE, LAKE_ENV, resolve_lake

Handler = Callable[[argparse.Namespace], int]

EPILOG = f"""\
The lake root is --lake, else ${LAKE_ENV}, else {DEFAULT_LAKE}. It may be a local folder or an object store
URI (s3://, gs://, az://) with credentials in $CRYPTOLAKE_STORAGE_OPTIONS (a JSON object).
Run `cryptolake COMMAND --help` for the options of each command."""


def _cmd_sim(args: argparse.Namespace) -> int:
    from pipeline.cli_sim import run

    return run(args)


def _cmd_stream(args: argparse.Namespace) -> int:
    from pipeline.cli_stream import run_stream

    return run_stream(args)


def _cmd_import(args: argparse.Namespace) -> int:
    from pipeline.cli_stream import run_import

    return run_import(args)


def _cmd_tables(args: argparse.Namespace) -> int:
    from pipeline.lake.summary import print_summary

    print_summary(resolve_lake(args.lake))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.demo import run_demo

    return run_demo(resolve_lake(args.lake), seconds=args.seconds)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cryptolake",
        description="Crypto market-data lakehouse: exchange WebSockets -> bronze Delta tables -> silver -> Qlib gold.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--lake", metavar="URI", help=f"lake root (default: ${LAKE_ENV} or {DEFAULT_LAKE})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    from pipeline.cli_sim import add_sim_arguments
    from pipeline.cli_stream import add_import_arguments, add_stream_arguments

    p = sub.add_parser(
        "sim",
        help="run the exchange simulator (OKX v5 + Deribit protocols on one port of 127.0.0.1)",
        description="Run the exchange simulator: a deterministic market from a seed, served over the real OKX v5 and "
        "Deribit WebSocket and REST protocols on 127.0.0.1, with optional fault injection. Ctrl-C stops it.",
    )
    add_sim_arguments(p)
    p.set_defaults(handler=_cmd_sim)

    p = sub.add_parser(
        "stream",
        help="capture trades and quotes from exchange WebSockets into bronze Delta tables",
        description="Capture trades and quotes from OKX and Deribit WebSockets (or the simulator) into bronze/trades, "
        "bronze/quotes, bronze/rejects and bronze/gaps. Ctrl-C or SIGTERM flushes every buffer before exiting.",
    )
    add_stream_arguments(p)
    p.set_defaults(handler=_cmd_stream)

    p = sub.add_parser(
        "import",
        help="ingest a recorded capture file into bronze (source = capture)",
        description="Ingest a recorded WebSocket session (cryptofeed .log, ccxt .jsonl, or cryptolake's own "
        "--record format) through the venue parser into bronze with source = capture.",
    )
    add_import_arguments(p)
    p.set_defaults(handler=_cmd_import)

    p = sub.add_parser("tables", help="list the lake's tables with row counts and versions")
    p.set_defaults(handler=_cmd_tables)

    p = sub.add_parser(
        "demo",
        help="run the pipeline end to end on the embedded simulator",
        description="Start the simulator, stream from it into the lake, import the recorded real captures, and print "
        "what landed. This is what `make demo` runs.",
    )
    p.add_argument("--seconds", type=float, default=20.0, help="how long to stream from the simulator (default 20)")
    p.set_defaults(handler=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except CryptolakeError as exc:
        print(f"cryptolake {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
