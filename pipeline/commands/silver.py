"""`cryptolake silver`: bring the silver tables up to date with bronze (incremental, idempotent)."""

from __future__ import annotations

import argparse
import sys

from pipeline.checks import Number
from pipeline.lake.location import writable_lake

HELP = "validate new bronze rows into silver trades, candles (1m..1d) and quote bars"
DESCRIPTION = (
    "Read what bronze gained since the last run, check it against the contracts (failing rows go to "
    "silver/quarantine), deduplicate trades, and publish closed candles and quote bars. Exits 3 when a "
    "table-level contract failure (schema drift, too many failing rows) stopped a table."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lateness-secs",
        type=Number(minimum=0),
        default=60.0,
        help="wait this long after a bar closes before publishing it (default 60)",
    )
    p.add_argument(
        "--fail-share",
        type=Number(minimum=0, maximum=1),
        default=0.05,
        help="fail a table when more than this share of its new rows fail (default 0.05)",
    )
    p.add_argument(
        "--max-rows",
        type=Number(integer=True, minimum=1),
        default=None,
        metavar="N",
        help="read at most N new rows of a bronze table per pass; a larger backlog is done in several passes, each "
        "committed (default 20,000,000: about 5 GB of memory at peak, ~250 bytes a row)",
    )
    p.add_argument(
        "--restate-candles",
        action="store_true",
        help="recompute every published candle from silver/trades and rewrite those that differ (after an upgrade "
        "that fixed how bars are computed; reads the whole trade history once)",
    )
    p.add_argument(
        "--no-books", action="store_true", help="skip rebuilding order books into silver/book_snapshots (default: on)"
    )
    p.add_argument(
        "--book-interval-ms",
        type=Number(integer=True, minimum=100, maximum=3_600_000),
        default=1000,
        help="order-book snapshot grid in ms, 100..3600000 (default 1000)",
    )
    p.add_argument(
        "--book-depth",
        type=Number(integer=True, minimum=1, maximum=1000),
        default=25,
        help="levels per side in a book snapshot (default 25)",
    )
    p.add_argument(
        "--now-ms",
        type=Number(integer=True, minimum=0),
        default=None,
        help="pretend the clock is this epoch ms (replays, tests)",
    )


def run(args: argparse.Namespace) -> int:
    from pipeline.silver import run_silver
    from pipeline.silver.books.step import BookSettings

    limit = {} if args.max_rows is None else {"max_rows": args.max_rows}
    report = run_silver(
        writable_lake(args.lake),
        lateness_secs=args.lateness_secs,
        now_ms=args.now_ms,
        fail_share=args.fail_share,
        progress=lambda r: print(r.progress_line(), file=sys.stderr, flush=True),
        restate_candles=args.restate_candles,
        books=BookSettings(not args.no_books, args.book_interval_ms, args.book_depth),
        **limit,
    )
    print("\n".join(report.lines()))
    return 0 if report.ok else 3
