"""`cryptolake tables`: what the lake holds."""

from __future__ import annotations

import argparse

from pipeline.lake.location import usable_lake

HELP = "list the lake's tables with row counts, files and Delta versions"
DESCRIPTION = HELP


def add_arguments(p: argparse.ArgumentParser) -> None:
    del p  # no options


def run(args: argparse.Namespace) -> int:
    from pipeline.lake.summary import print_summary

    print_summary(usable_lake(args.lake))
    return 0
