"""`cryptolake backfill`: history over REST into bronze, resumable."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from pipeline.checks import Number, http_url
from pipeline.lake.location import writable_lake

if TYPE_CHECKING:  # the backfill package is imported when the command runs, not when the CLI starts
    from pipeline.backfill import BackfillProgress

HELP = "backfill trades, exchange candles or funding history over REST into bronze (resumable, exactly once)"
DESCRIPTION = (
    "Read trade history (OKX history-trades, Deribit trades by instrument and time) or exchange candles (OKX "
    "history-candles, Deribit chart data) over the venues' REST APIs and write them to bronze/trades or "
    "bronze/candles with source=rest. --kind funding reads settled funding rates of swaps/perpetuals (OKX "
    "funding-rate-history: fundingRate and realizedRate per fundingTime, about the last 3 months; Deribit "
    "get_funding_rate_history: interest_1h per hourly settlement) into bronze/funding, with the hours since the "
    "previous settlement taken from the data; a spot instrument or an option is refused by name. The window is cut "
    "into chunks (one UTC day by default, 30 days for funding); each chunk is one "
    "Delta commit, recorded in bronze/backfill_jobs. Run the same command again after a crash or Ctrl-C and it "
    "continues where it stopped, writing no row twice. Requests stay within the venue's rate limits; 429 and 5xx "
    "answers are retried with exponential backoff."
)
EXAMPLES = """examples:
  cryptolake backfill --venue okx --instruments BTC-USDT,ETH-USDT-SWAP --start=-6h
  cryptolake backfill --venue okx --instruments universe --kind candles --timeframe 1h --start 2025-01-01 --end 2025-06-01
  cryptolake backfill --venue deribit --instruments ETH-PERPETUAL --start 2026-05-01T00:00Z --rest-url http://127.0.0.1:8765
  cryptolake backfill --venue okx --instruments BTC-USDT-SWAP,ETH-USDT-SWAP --kind funding --start=-90d"""


def add_common_rest(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rest-url",
        metavar="URL",
        type=http_url,
        help="REST base URL, e.g. http://127.0.0.1:8765 for `cryptolake sim` (default: the real venue)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = EXAMPLES
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--venue", required=True, choices=["okx", "deribit"], help="venue to read")
    p.add_argument(
        "--instruments",
        required=True,
        metavar="A,B|universe",
        help='comma-separated venue-native names, or "universe" (silver/instruments)',
    )
    p.add_argument(
        "--kind",
        choices=["trades", "candles", "funding"],
        default="trades",
        help="what to backfill: trades, candles, or funding (settled funding rates of swaps/perpetuals into "
        "bronze/funding; default: trades)",
    )
    p.add_argument("--timeframe", default="1m", help="candle timeframe: 1m 5m 15m 1h 4h 1d (default 1m)")
    p.add_argument(
        "--start",
        required=True,
        help="UTC start: ISO 8601 (2026-05-01T00:00Z), epoch ms, or relative (--start=-6h, --start=-7d: note the =)",
    )
    p.add_argument("--end", default="now", help="UTC end, exclusive (default: now)")
    p.add_argument(
        "--chunk-secs",
        type=Number(integer=True, minimum=60),
        help="chunk length: the unit of commit and resume (default 86400 = a UTC day; 2592000 = 30 days for funding)",
    )
    p.add_argument(
        "--concurrency",
        type=Number(integer=True, minimum=1),
        default=4,
        help="instruments fetched at once; they share the rate limit (default 4)",
    )
    p.add_argument(
        "--max-requests-per-sec",
        type=Number(above=0),
        help="stay below this request rate (default: the venue's documented limit)",
    )
    p.add_argument("--no-skip-existing", action="store_true", help="write rows even if bronze already holds them")
    add_common_rest(p)


def run(args: argparse.Namespace) -> int:
    from pipeline.backfill import make_plan, run_backfill
    from pipeline.backfill.funding import swaps_of
    from pipeline.commands.progress import ProgressBar
    from pipeline.universe import resolve_instruments

    lake = writable_lake(args.lake)
    names = resolve_instruments(lake, args.venue, args.instruments)
    if args.kind == "funding" and args.instruments.strip() == "universe":  # the universe's swaps: spot has no funding
        names = swaps_of(args.venue, names)
    plan = make_plan(
        args.venue, names, args.kind, args.start, args.end, timeframe=args.timeframe, chunk_secs=args.chunk_secs
    )
    bar = ProgressBar(f"backfill {plan.job_id}", quiet=args.quiet)

    def progress(p: BackfillProgress) -> None:
        bar.update(p.done_chunks, p.total_chunks, f"{p.rows:,} rows {p.requests} req {p.instrument}")

    try:
        result = run_backfill(
            lake, plan, rest_url=args.rest_url, progress=progress, concurrency=args.concurrency,
            max_requests_per_sec=args.max_requests_per_sec, skip_existing=not args.no_skip_existing,
        )  # fmt: skip
    finally:
        bar.close()
    print(result.summary())
    return 0
