"""`cryptolake fill-gaps`: backfill the trades the stream missed."""

from __future__ import annotations

import argparse

from pipeline.commands.backfill import add_common_rest
from pipeline.lake.location import writable_lake

HELP = "fill the open gaps of bronze/gaps over REST (and mark them filled or unfillable)"
DESCRIPTION = (
    "Read the open rows of bronze/gaps (sequence and trade-id gaps, reconnect and restart windows), fetch the "
    "missing trades over REST, write the ones bronze does not hold yet to bronze/trades (source=rest), and mark "
    "each gap filled, or unfillable with the reason (quotes have no history; window older than the venue's trade "
    "history). Safe to run at any time and as often as you like."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--venue", choices=["okx", "deribit"], help="only this venue's gaps (default: all)")
    add_common_rest(p)


def run(args: argparse.Namespace) -> int:
    from pipeline.backfill import fill_gaps
    from pipeline.commands.progress import ProgressBar

    bar = ProgressBar("fill-gaps", quiet=args.quiet)
    try:
        result = fill_gaps(
            writable_lake(args.lake), venue=args.venue, rest_url=args.rest_url,
            progress=lambda done, total, o: bar.update(done, total, f"{o.venue} {o.status}"),
        )  # fmt: skip
    finally:
        bar.close()
    print(
        f"{result.gaps} open gaps: {result.filled} filled, {result.unfillable} unfillable, {result.trades:,} trades written in {result.seconds:.1f} s"
    )
    for o in result.outcomes:
        if o.status == "unfillable":
            print(f"  unfillable {o.gap_id}: {o.detail}")
    return 0
