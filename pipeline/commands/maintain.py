"""`cryptolake maintain`: compact small files, vacuum, checkpoint (safe while the stream runs)."""

from __future__ import annotations

import argparse

from pipeline.checks import Number
from pipeline.lake.location import writable_lake

HELP = "compact the small files streaming leaves, vacuum replaced files, write checkpoints"
DESCRIPTION = (
    "Delta maintenance of every table (or --table ones): OPTIMIZE partitions holding --min-files or more small files "
    "to --target-mb files, VACUUM files replaced more than --retention-hours ago, write a checkpoint. Safe while the "
    "stream appends. Exits 1 if a table reported an error."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--table", action="append", metavar="LAYER/NAME", help="only this table, e.g. bronze/trades (repeatable)"
    )
    p.add_argument(
        "--target-mb", type=Number(integer=True, minimum=1), default=128, help="target file size in MB (default 128)"
    )
    p.add_argument(
        "--min-files",
        type=Number(integer=True, minimum=1),
        default=4,
        help="compact a partition once it holds this many small files (default 4)",
    )
    p.add_argument(
        "--retention-hours",
        type=Number(integer=True, minimum=1),
        default=168,
        help="vacuum files replaced longer ago than this (default 168, minimum 1)",
    )
    p.add_argument("--no-vacuum", action="store_true", help="skip vacuum")
    p.add_argument("--no-checkpoint", action="store_true", help="skip checkpoints")


def run(args: argparse.Namespace) -> int:
    from pipeline.lake.maintenance import maintain_lake

    reports = maintain_lake(
        writable_lake(args.lake), tables=args.table, target_size=args.target_mb * 1024 * 1024, min_files=args.min_files,
        retention_hours=args.retention_hours, vacuum=not args.no_vacuum, checkpoint=not args.no_checkpoint,
    )  # fmt: skip
    for r in reports:
        print(r.line())
    if not reports:
        print("no tables yet")
    return 1 if any(r.errors for r in reports) else 0
