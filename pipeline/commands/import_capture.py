"""`cryptolake import`: ingest a recorded capture into bronze."""

from __future__ import annotations

import argparse

from pipeline.checks import PathArg
from pipeline.lake.location import writable_lake

HELP = "ingest a recorded capture file into bronze (source = capture)"
DESCRIPTION = (
    "Ingest a recorded WebSocket session (cryptofeed .log, ccxt .jsonl, or cryptolake's own `stream --record` "
    "files) through the venue parser into bronze with source = capture. A file is imported once."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "file", type=PathArg("file"), help="capture file: cryptofeed .log, ccxt .jsonl, or a `stream --record` file"
    )
    p.add_argument("--venue", required=True, choices=["okx", "deribit"], help="venue whose parser reads the frames")
    p.add_argument("--force", action="store_true", help="import again even if this file was imported before")
    p.add_argument(
        "--accept-truncated",
        action="store_true",
        help="import the readable part of a capture whose compressed stream is cut short (refused otherwise)",
    )


def run(args: argparse.Namespace) -> int:
    from pipeline.ingest.importer import import_capture
    from pipeline.ingest.memory import configure_gc

    configure_gc()  # a capture's chunk holds a list per book level: the default GC thresholds cost 44 % of it

    lake = writable_lake(args.lake)
    result = import_capture(lake, args.file, args.venue, force=args.force, accept_truncated=args.accept_truncated)
    if result.already_imported:
        print(f"{args.file} was already imported into {lake.root} (use --force to import it again)")
        return 0
    print(
        f"imported {args.file}: {result.frames} frames -> {result.summary()} "
        f"({result.controls} control frames) into {lake.root}"
    )
    for line in result.channel_lines():  # every frame accounted for, per venue channel
        print(f"  {line}")
    return 0
