"""`cryptolake status`: the lake's health; exits 1 when unhealthy, so it doubles as a health check."""

from __future__ import annotations

import argparse
import json

from pipeline.checks import Number
from pipeline.lake.location import usable_lake

HELP = "per-instrument completeness, open gaps, commit age, rows and size per table; exit 1 if unhealthy"
DESCRIPTION = (
    "Report, per instrument, the share of minutes with trades in bronze/trades over a window and its open gaps; "
    "per table, rows, files, size and the age of the last commit. Exits 1 when a threshold is crossed "
    "(use it as a health check), 0 when healthy."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--window-min",
        type=Number(integer=True, minimum=1),
        default=60,
        help="completeness window in minutes (default 60)",
    )
    p.add_argument(
        "--max-commit-age-min",
        type=Number(minimum=0),
        default=15.0,
        help="unhealthy when bronze/trades has had no commit for this long (default 15; 0 = off)",
    )
    p.add_argument(
        "--min-completeness",
        type=Number(minimum=0, maximum=1),
        default=None,
        help="unhealthy when an instrument has trades in fewer than this share of minutes (0..1; default off)",
    )
    p.add_argument(
        "--max-open-gaps",
        type=Number(integer=True, minimum=0),
        default=None,
        help="unhealthy above this many open gaps (default off)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def thresholds_from_args(args: argparse.Namespace):  # -> Thresholds (import kept lazy for --help speed)
    from pipeline.status import Thresholds

    return Thresholds(
        max_commit_age_min=args.max_commit_age_min or None,
        min_completeness=args.min_completeness,
        max_open_gaps=args.max_open_gaps,
    )


def run(args: argparse.Namespace) -> int:
    from pipeline.status import lake_status

    limits = thresholds_from_args(args)
    status = lake_status(usable_lake(args.lake), window_minutes=args.window_min)
    print(json.dumps(status.to_dict(limits), indent=2) if args.json else status.render(limits))
    return 1 if status.problems(limits) else 0
