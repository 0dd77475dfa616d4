"""`cryptolake demo`: what `make demo` runs."""

from __future__ import annotations

import argparse

from pipeline.checks import Number
from pipeline.lake.location import writable_lake

HELP = "run the pipeline end to end on the embedded simulator"
DESCRIPTION = (
    "Start the simulator, stream from it into the lake, import the recorded real captures, and print what "
    "landed. This is what `make demo` runs."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--seconds", type=Number(above=0), default=20.0, help="how long to stream from the simulator (default 20)"
    )


def run(args: argparse.Namespace) -> int:
    from pipeline.demo import run_demo

    return run_demo(writable_lake(args.lake), seconds=args.seconds)
