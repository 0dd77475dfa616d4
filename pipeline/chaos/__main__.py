"""`make chaos` / `python -m pipeline.chaos`: soak, SIGKILLs, an unwritable lake, maintenance under load, then
the fuzz and hostile-input suites (tests/chaos), and one table. Exits 1 if anything was lost or duplicated.

    python -m pipeline.chaos --minutes 10            # the full run (about 20 minutes in all)
    python -m pipeline.chaos --quick                 # every scenario, compressed (about 2 minutes)
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline.chaos.scenarios import Outcome, full_soak_plan, kills, maintenance, short_soak_plan, soak, unwritable

REPO = Path(__file__).resolve().parents[2]


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m pipeline.chaos", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--minutes", type=float, default=10.0, help="soak length in minutes (default 10)")
    p.add_argument("--kills", type=int, default=5, help="SIGKILLs of the stream process (default 5)")
    p.add_argument("--block-secs", type=float, default=60.0, help="how long the lake stays unwritable (default 60)")
    p.add_argument("--maintenance-secs", type=float, default=90.0, help="maintenance + silver under load (default 90)")
    p.add_argument("--quick", action="store_true", help="every scenario compressed to seconds (what `make test` runs)")
    p.add_argument("--only", action="append", choices=["soak", "kills", "unwritable", "maintenance", "fuzz"],
                   help="run only these parts (repeatable)")  # fmt: skip
    p.add_argument("--workdir", type=Path, help="keep lakes and logs here (default: a temporary folder)")
    p.add_argument("--seed", type=int, default=11)
    args = p.parse_args(argv)
    if args.minutes <= 0 or args.kills < 1 or args.block_secs <= 0 or args.maintenance_secs <= 0:
        p.error("--minutes, --block-secs and --maintenance-secs must be > 0 and --kills >= 1")
    return args


def _fuzz(count_file: Path) -> tuple[int, int, str]:
    """The hypothesis fuzz and hostile-input tests, at their full example count; (passed, failed, last line)."""
    env = {"CRYPTOLAKE_FUZZ_EXAMPLES": "2000", "CRYPTOLAKE_CHAOS_COUNT": str(count_file)}

    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/chaos/test_fuzz_parsers.py", "tests/chaos/test_hostile_input.py"],
        cwd=REPO, capture_output=True, text=True, env=os.environ | env,
    )  # fmt: skip
    last = (proc.stdout.strip().splitlines() or [""])[-1]
    passed = sum(int(n) for n in re.findall(r"(\d+) passed", last))
    failed = sum(int(n) for n in re.findall(r"(\d+) failed", last))
    if proc.returncode and not failed:
        failed = 1
        print(proc.stdout[-3000:], proc.stderr[-2000:])
    return passed, failed, last


def _fig(o: Outcome, name: str) -> str:
    value = o.figures.get(name)
    return "-" if value is None else f"{value:.0f}"


def _table(outcomes: list[Outcome], fuzz: tuple[int, int, str] | None, bad_inputs: int) -> str:
    lines = ["", "=== chaos summary"]
    head = f"{'scenario':<24} {'secs':>6} {'mean fr/s':>9} {'peak fr/s':>9} {'truth':>8} {'silver':>8} {'lost':>5} {'dup':>5} {'extra':>5} {'result':>6}"
    lines += [head, "-" * len(head)]
    for o in outcomes:
        s = o.silver
        lines.append(
            f"{o.name:<24} {o.seconds:>6.0f} {_fig(o, 'mean_fps'):>9} {_fig(o, 'peak_fps'):>9} "
            f"{s.truth:>8} {s.rows:>8} {s.missing:>5} {s.duplicated:>5} {s.extra:>5} {'ok' if o.ok else 'FAIL':>6}"
        )  # fmt: skip
    faults: dict[str, int] = {}
    for o in outcomes:
        for k, v in o.faults.items():
            faults[k] = faults.get(k, 0) + v
    lines.append("")
    lines.append(
        "faults injected (simulator counters, all scenarios): " + ", ".join(f"{k} {v}" for k, v in faults.items() if v)
    )
    for o in outcomes:
        extra = {
            k: (round(v, 1) if isinstance(v, float) else v)
            for k, v in o.figures.items()
            if k not in ("mean_fps", "peak_fps")
        }
        lines.append(f"{o.name}: " + ", ".join(f"{k} {v}" for k, v in extra.items()))
    if fuzz is not None:
        lines.append(
            f"bad inputs tried: {bad_inputs:,} fuzzed frames + hostile-input cases; fuzz/hostile tests: {fuzz[2]}"
        )
    lost = sum(o.silver.missing for o in outcomes)
    dup = sum(o.silver.duplicated for o in outcomes)
    lines.append(f"rows lost: {lost} (must be 0)    rows duplicated in silver: {dup} (must be 0)")
    for o in outcomes:
        for p in o.problems + o.silver.problems:
            lines.append(f"PROBLEM {o.name}: {p}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    parts = set(args.only or ["soak", "kills", "unwritable", "maintenance", "fuzz"])
    root = args.workdir or Path(tempfile.mkdtemp(prefix="cryptolake-chaos-"))
    print(f"chaos run in {root} ({'quick' if args.quick else f'soak {args.minutes:g} min'})", flush=True)
    outcomes: list[Outcome] = []

    def say(text: str) -> None:
        print(text, flush=True)

    def part(name: str, run) -> None:  # noqa: ANN001
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        say(f"\n--- {name}")
        started = time.monotonic()
        try:
            outcomes.append(run(folder))
        except Exception as exc:  # noqa: BLE001 - one broken scenario must not hide the others' figures
            o = Outcome(name, seconds=time.monotonic() - started)
            o.problems.append(f"{type(exc).__name__}: {exc}")
            outcomes.append(o)

    if "soak" in parts:
        plan = short_soak_plan() if args.quick else full_soak_plan(args.minutes)
        part("soak", lambda d: soak(d, plan, seed=args.seed, say=say))
    if "kills" in parts:
        part("kills", lambda d: kills(d, n=args.kills, live_s=(1.0, 3.0) if args.quick else (2.0, 8.0), say=say))
    if "unwritable" in parts:
        part("unwritable", lambda d: unwritable(d, block_s=3.0 if args.quick else args.block_secs, say=say))
    if "maintenance" in parts:
        part("maintenance", lambda d: maintenance(d, seconds=8.0 if args.quick else args.maintenance_secs, say=say))
    fuzz = None
    bad_inputs = 0
    if "fuzz" in parts:
        say("\n--- fuzz + hostile input (pytest tests/chaos/test_fuzz_parsers.py tests/chaos/test_hostile_input.py)")
        count_file = root / "fuzz-count.txt"
        fuzz = _fuzz(count_file)
        say(f"  {fuzz[2]}")
        if count_file.exists():
            bad_inputs = sum(int(n) for n in count_file.read_text().split())
    print(_table(outcomes, fuzz, bad_inputs), flush=True)
    ok = all(o.ok for o in outcomes) and (fuzz is None or fuzz[1] == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
