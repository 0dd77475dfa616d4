"""`cryptolake universe`: select the top N instruments per venue into silver/instruments."""

from __future__ import annotations

import argparse

from pipeline.checks import Number, nonempty_list
from pipeline.commands.backfill import add_common_rest
from pipeline.lake.location import usable_lake, writable_lake

HELP = "refresh the instrument universe (top N by 24h volume) in silver/instruments"
DESCRIPTION = (
    "Rank OKX spot and swaps by 24h quote volume (filters: market type, quote currency, minimum volume) and "
    "Deribit ETH options by volume and open interest, keep the top N, and merge them into silver/instruments: "
    "new instruments are added, those that dropped out, expired or were delisted are end-dated (valid_to). "
    "The stream and `backfill --instruments universe` read the active rows. Use --show to print them only."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--venue",
        action="append",
        choices=["okx", "deribit"],
        help="refresh only this venue (repeatable; default both)",
    )
    p.add_argument(
        "--top-n", type=Number(integer=True, minimum=1), default=50, help="instruments per venue (default 50)"
    )
    p.add_argument(
        "--markets", type=nonempty_list, default=("spot", "swap"), help="OKX market types (default spot,swap)"
    )
    p.add_argument(
        "--quote",
        type=nonempty_list,
        default=("USDT",),
        help="OKX quote/settle currencies, comma-separated (default USDT)",
    )
    p.add_argument(
        "--min-volume", type=Number(minimum=0), default=0.0, help="minimum 24h volume in quote currency (default 0)"
    )
    p.add_argument("--show", action="store_true", help="print the current universe without refreshing it")
    add_common_rest(p)


def run(args: argparse.Namespace) -> int:
    from pipeline.universe import UniverseFilters, current_universe, refresh_universe

    lake = usable_lake(args.lake) if args.show else writable_lake(args.lake)
    venues = args.venue or ["okx", "deribit"]
    if not args.show:
        filters = UniverseFilters(
            top_n=args.top_n, okx_markets=args.markets, quote_currencies=args.quote, min_volume_24h_quote=args.min_volume,
        )  # fmt: skip
        for change in refresh_universe(lake, venues, filters=filters, rest_url=args.rest_url):
            print(
                f"{change.venue}: {len(change.selected)} selected, {len(change.added)} added, {len(change.dropped)} end-dated"
            )
    for venue in venues:
        names = current_universe(lake, venue)
        print(f"{venue} ({len(names)}): {', '.join(names[:12])}{' ...' if len(names) > 12 else ''}")
    return 0
