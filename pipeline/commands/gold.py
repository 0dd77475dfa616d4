"""`cryptolake gold`: publish silver candles as Qlib datasets."""

from __future__ import annotations

import argparse

from pipeline.checks import PathArg
from pipeline.lake.location import usable_lake, writable_lake

HELP = "publish silver/candles as Qlib provider directories under <lake>/gold/qlib/<venue>-<market>"
DESCRIPTION = (
    "Publish silver/candles as one Qlib dataset per venue and market (day from 1d, 1min from 1m, 60min from 1h "
    "bars). Incremental when silver only gained newer bars; atomic (a version folder, then a symlink swap). "
    "Then reads a sample back through qlib.init + D.features and compares it with silver."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", action="append", metavar="NAME", help="only this dataset, e.g. okx-swap (repeatable)")
    p.add_argument(
        "--freq",
        action="append",
        choices=["day", "1min", "60min"],
        help="only this frequency (repeatable; default: [gold] freqs)",
    )
    p.add_argument(
        "--gold-dir",
        metavar="DIR",
        type=PathArg("new folder"),
        help="local gold folder (required when the lake is object storage)",
    )
    p.add_argument("--full", action="store_true", help="rebuild in full even when an incremental publish is possible")
    p.add_argument(
        "--workflow", metavar="FILE", type=PathArg("file"), help="workflow TOML (default config/workflow.toml)"
    )
    p.add_argument("--no-check", action="store_true", help="skip the read-back through Qlib")


def run(args: argparse.Namespace) -> int:
    from pipeline.backtest.config import load_workflow
    from pipeline.gold import publish_qlib, read_back
    from pipeline.gold.calendar import ALL_FREQS
    from pipeline.gold.state import Manifest

    lake = usable_lake(args.lake) if args.gold_dir else writable_lake(args.lake)
    cfg = load_workflow(args.workflow).get("gold", {})
    report = publish_qlib(
        lake,
        datasets=args.dataset,
        freqs=args.freq or cfg.get("freqs", ALL_FREQS),
        gold_dir=args.gold_dir,
        full=args.full,
        keep_versions=int(cfg.get("keep_versions", 3)),
    )
    print(report.summary())
    if args.no_check:
        return 0
    failed = 0
    for d in report.datasets:
        m = Manifest.load(d.version_dir)
        if m is None:
            continue
        everyone = sorted({n for s in m.freqs.values() for n in s.series})
        k = int(cfg.get("sample_instruments", 5))
        res = read_back(
            lake,
            d.path,
            dataset=d.dataset,
            venue=m.venue,
            market=m.market,
            freqs=tuple(m.freqs),
            instruments=everyone[:: max(1, len(everyone) // max(1, k))][:k],
            last_bars=int(cfg.get("sample_bars", 2000)),
        )
        print(
            f"{d.dataset}: read back {res.checked_bars:,} bars through Qlib: {'ok' if res.ok else f'{res.mismatched} MISMATCHES {res.sample}'}"
        )
        failed += 0 if res.ok else 1
    return 1 if failed else 0
