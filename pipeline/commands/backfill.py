"""`cryptolake backfill`: history over REST into bronze, resumable."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from pipeline.checks import Number, http_url
from pipeline.errors import ConfigError
from pipeline.lake.location import writable_lake

if TYPE_CHECKING:  # the backfill package is imported when the command runs, not when the CLI starts
    from pipeline.backfill import BackfillProgress

HELP = "backfill trades, exchange candles, funding or open-interest history over REST into bronze (resumable, exactly once)"
DESCRIPTION = (
    "Read trade history (OKX history-trades, Deribit trades by instrument and time) or exchange candles (OKX "
    "history-candles, Deribit chart data) over the venues' REST APIs and write them to bronze/trades or "
    "bronze/candles with source=rest. --kind funding reads settled funding rates of swaps/perpetuals (OKX "
    "funding-rate-history: fundingRate and realizedRate per fundingTime, about the last 3 months; Deribit "
    "get_funding_rate_history: interest_1h per hourly settlement) into bronze/funding, with the hours since the "
    "previous settlement taken from the data; a spot instrument or an option is refused by name. --kind "
    "open-interest reads OKX's open-interest history of swaps and futures (rubik/stat/contracts/open-interest-history: "
    "oi, oiCcy, oiUsd every --period, the latest 1,440 points) into bronze/derivatives (channel "
    "open-interest-history); Deribit serves none and is refused. The window is cut into chunks (one UTC day by "
    "default, 30 days for funding, 96 points of the period for open interest); each chunk is one "
    "Delta commit, recorded in bronze/backfill_jobs. Run the same command again after a crash or Ctrl-C and it "
    "continues where it stopped, writing no row twice. Requests stay within the venue's rate limits; 429 and 5xx "
    "answers are retried with exponential backoff."
)
PERIOD_FIX = "--period is for --kind open-interest; candles take --timeframe"
EXAMPLES = """examples:
  cryptolake backfill --venue okx --instruments BTC-USDT,ETH-USDT-SWAP --start=-6h
  cryptolake backfill --venue okx --instruments universe --kind candles --timeframe 1h --start 2025-01-01 --end 2025-06-01
  cryptolake backfill --venue deribit --instruments ETH-PERPETUAL --start 2026-05-01T00:00Z --rest-url http://127.0.0.1:8765
  cryptolake backfill --venue okx --instruments BTC-USDT-SWAP,ETH-USDT-SWAP --kind funding --start=-90d
  cryptolake backfill --venue okx --instruments BTC-USDT-SWAP --kind open-interest --period 1H --start=-30d"""


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
        choices=["trades", "candles", "funding", "open-interest"],
        default="trades",
        help="what to backfill: trades, candles, funding (settled funding rates of swaps/perpetuals into "
        "bronze/funding) or open-interest (OKX swaps and futures, into bronze/derivatives; default: trades)",
    )
    p.add_argument("--timeframe", default="1m", help="candle timeframe: 1m 5m 15m 1h 4h 1d (default 1m)")
    p.add_argument(
        "--period",
        help="open-interest period, OKX's spelling: 5m 15m 30m 1H 2H 4H 1D (days from 00:00 UTC+8) 1Dutc; "
        "OKX keeps the latest 1,440 points (5m: 5 days, 1H: 60 days, 1D: 1440 days; default 5m)",
    )
    p.add_argument(
        "--start",
        required=True,
        help="UTC start: ISO 8601 (2026-05-01T00:00Z), epoch ms, or relative (--start=-6h, --start=-7d: note the =)",
    )
    p.add_argument("--end", default="now", help="UTC end, exclusive (default: now)")
    p.add_argument(
        "--chunk-secs",
        type=Number(integer=True, minimum=60),
        help="chunk length: the unit of commit and resume (default 86400 = a UTC day; 2592000 = 30 days for "
        "funding; 96 points of the period for open interest)",
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
    from pipeline.backfill.open_interest import check_venue, contracts_of
    from pipeline.commands.progress import ProgressBar
    from pipeline.universe import resolve_instruments

    if args.period is not None and args.kind != "open-interest":
        raise ConfigError("period", f"--period {args.period} given with --kind {args.kind}", PERIOD_FIX)
    if args.kind == "open-interest":
        check_venue(args.venue)  # before the universe is read: Deribit has no history to give
    lake = writable_lake(args.lake)
    names = resolve_instruments(lake, args.venue, args.instruments)
    if args.instruments.strip() == "universe":  # the universe's contracts only: spot has no funding, no open interest
        if args.kind == "funding":
            names = swaps_of(args.venue, names)
        elif args.kind == "open-interest":
            names = contracts_of(args.venue, names)
    timeframe = args.period if args.kind == "open-interest" else args.timeframe
    plan = make_plan(
        args.venue, names, args.kind, args.start, args.end, timeframe=timeframe, chunk_secs=args.chunk_secs
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
