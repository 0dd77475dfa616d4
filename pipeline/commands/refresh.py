"""`cryptolake refresh`: bring bronze up to date over REST, then silver and gold."""

from __future__ import annotations

import argparse

from pipeline.checks import Number
from pipeline.commands.backfill import add_common_rest
from pipeline.lake.location import usable_lake

HELP = "bring instruments up to date now: REST trades + 1m candles since the last stored row, then silver and gold"
DESCRIPTION = (
    "For each instrument, backfill trades and closed 1-minute candles from the last row bronze holds (or "
    "--lookback-secs back) up to now, then run silver and gold (--no-silver, --no-gold to skip them). The same as "
    "`from pipeline import refresh; refresh([...])` in Python."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--venue", choices=["okx", "deribit"], default="okx", help="venue (default okx)")
    p.add_argument(
        "--instruments", metavar="A,B|universe", default="universe", help='comma-separated names (default: "universe")'
    )
    p.add_argument(
        "--lookback-secs",
        type=Number(integer=True, minimum=1),
        default=3_600,
        help="how far back to start when bronze holds nothing (default 3600)",
    )
    p.add_argument("--no-candles", action="store_true", help="trades only")
    p.add_argument("--no-silver", action="store_true", help="do not run the silver layer afterwards")
    p.add_argument("--no-gold", action="store_true", help="do not run the gold layer afterwards")
    add_common_rest(p)


def run(args: argparse.Namespace) -> int:
    from pipeline.commands.progress import ProgressBar
    from pipeline.refreshing import refresh

    bar = ProgressBar("refresh", quiet=args.quiet)
    try:
        result = refresh(
            args.instruments, venue=args.venue, lake=usable_lake(args.lake), rest_url=args.rest_url,
            lookback_secs=args.lookback_secs, candles=not args.no_candles, silver=not args.no_silver, gold=not args.no_gold,
            progress=lambda p: bar.update(p.done_chunks, p.total_chunks, f"{p.rows:,} rows {p.instrument}"),
        )  # fmt: skip
    finally:
        bar.close()
    for b in result.backfills:
        print(b.summary())
    print(
        f"refresh {result.venue}: {result.rows:,} rows for {len(result.instruments)} instruments; "
        + ", ".join(f"{k}: {v}" for k, v in result.layers.items())
    )
    return 0
