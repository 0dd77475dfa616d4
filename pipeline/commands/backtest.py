"""`cryptolake backtest`: run the workflow's sample strategy on a gold dataset."""

from __future__ import annotations

import argparse

from pipeline.checks import PathArg
from pipeline.lake.location import usable_lake

HELP = "backtest the sample strategy (TopkDropout on momentum) on a gold Qlib dataset"
DESCRIPTION = (
    "Run Qlib's TopkDropoutStrategy on the momentum signal of config/workflow.toml [backtest] over "
    "<lake>/gold/qlib/<dataset>, with crypto settings (24/7 calendar, fees, fractional amounts, 365-day "
    "annualisation). Writes metrics.json, equity.png and report.html under <lake>/gold/reports/<date>/<run>/."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", metavar="NAME", help="gold dataset, e.g. okx-swap (default: [backtest] dataset)")
    p.add_argument(
        "--workflow", metavar="FILE", type=PathArg("file"), help="workflow TOML (default config/workflow.toml)"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a [backtest] key, e.g. --set topk=3 (repeatable)",
    )
    p.add_argument(
        "--gold-dir",
        metavar="DIR",
        type=PathArg("folder"),
        help="local gold folder (required when the lake is object storage)",
    )


def run(args: argparse.Namespace) -> int:
    from pipeline.backtest import run_backtest
    from pipeline.errors import ConfigError

    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError("--set", f"{item!r} is not KEY=VALUE", "e.g. --set topk=3")
        overrides[key.strip()] = value.strip()
    report = run_backtest(
        usable_lake(args.lake),
        dataset=args.dataset,
        config_path=args.workflow,
        overrides=overrides,
        gold_dir=args.gold_dir,
    )
    for k, v in report.metrics.items():
        print(f"{k:>28}: {v:,.6g}")
    print(f"report: {report.report_dir / 'report.html'}")
    return 0
