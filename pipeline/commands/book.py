"""`cryptolake book`: the order book of one instrument as of a time, rebuilt from silver and bronze."""

from __future__ import annotations

import argparse
import datetime as dt
import json

from pipeline.checks import Number
from pipeline.lake.location import usable_lake

HELP = "the order book of an instrument as of a time (from silver/book_state or the segment's snapshot + deltas)"
DESCRIPTION = """\
Print the top levels of an instrument's order book as of --at: the state after the last book message at
or before that time (exchange time), rebuilt from the nearest silver state or venue snapshot plus the
bronze deltas after it, with the sequence number and age of that message. A time that falls in a break of
the book (a lost message, a failed checksum, a crossed book) is answered with the break and the gap that
names it (exit 1). Run `cryptolake silver` first: it finds the verified segments.

examples:
  cryptolake book BTC-USDT-SWAP --at 2026-08-12T19:31:25Z
  cryptolake book ETH-PERPETUAL --venue deribit --at 1786563085228 --depth 5 --json"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter  # the examples, one a line
    p.add_argument("instrument", help="venue-native instrument name, e.g. BTC-USDT-SWAP, ETH-PERPETUAL")
    p.add_argument(
        "--at",
        required=True,
        help="UTC time: ISO 8601 (2026-08-12T19:31:25.228Z), epoch ms, 'now' or relative (--at=-1h: note the =)",
    )
    p.add_argument("--venue", default=None, help="okx, deribit, ... (default: any venue with that instrument)")
    p.add_argument("--channel", default=None, help="one book channel, e.g. books or books-l2-tbt (default: freshest)")
    p.add_argument(
        "--depth", type=Number(integer=True, minimum=1, maximum=1000), default=25, help="levels per side (default 25)"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _at(text: str) -> dt.datetime:
    """ISO 8601 with sub-millisecond digits as given; epoch ms, 'now' and relative times as the other commands."""
    from pipeline.backfill.plan import parse_time_ms

    try:
        parsed = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    except ValueError:
        return dt.datetime.fromtimestamp(parse_time_ms(text, "--at") / 1000, dt.UTC)


def run(args: argparse.Namespace) -> int:
    from pipeline.silver.books.query import book_at

    book = book_at(
        usable_lake(args.lake), args.instrument, _at(args.at), venue=args.venue, channel=args.channel, depth=args.depth
    )
    if args.json:
        print(json.dumps(book.as_dict()))
        return 1 if book.reason else 0
    if book.reason:
        print(book.reason)
        return 1
    seq = "none sent" if book.last_seq is None else str(book.last_seq)
    last = book.last_ts.isoformat() if book.last_ts else "-"
    print(f"{book.venue} {book.instrument} {book.channel} as of {book.at.isoformat()}")
    print(f"segment {book.segment_id}; last message {last} (seq {seq}), age {book.age_ms} ms")
    if book.after_last_message:
        print("(after the last message received in this segment)")
    print(f"{'bid size':>16} {'bid':>14} | {'ask':<14} {'ask size':<16}")
    for i in range(max(len(book.bids), len(book.asks))):
        b = book.bids[i] if i < len(book.bids) else None
        a = book.asks[i] if i < len(book.asks) else None
        left = f"{b[1]:>16g} {b[0]:>14g}" if b else " " * 31
        right = f"{a[0]:<14g} {a[1]:<16g}" if a else ""
        print(f"{left} | {right}".rstrip())
    return 0
