"""`make bench`: run every benchmark, then print one table of the figures each reported.

Each benchmark is a script that prints its own lines and ends with ``RESULT name value | name value ...``;
this runner collects those lines. ``BENCH_QUICK=1`` passes small sizes for a smoke run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from versions import versions_line

HERE = Path(__file__).resolve().parent

# (script, full arguments, quick arguments); order = cheap first
BENCHMARKS: list[tuple[str, list[str], list[str]]] = [
    ("bench_parsers.py", [], ["--frames", "50000", "--repeat", "1"]),
    ("bench_ingest.py", [], ["--frames", "50000"]),
    ("bench_simulator.py", [], ["--seconds", "2"]),
    ("bench_backfill.py", [], []),
    ("bench_silver.py", [], ["--trades", "1000000"]),
    ("bench_gold.py", [], ["--instruments", "10", "--days", "30"]),
    ("bench_stream_memory.py", [], ["--minutes", "1", "--sample-secs", "5"]),
]


_BASELINE_HINTS = ("pandas", "ccxt", "dump_bin", "polars_")


def _pair(part: str) -> tuple[str, str]:
    """ "okx trades rows/s 1234" -> ("okx trades rows/s", "1234"): the last word is the value."""
    name, _, value = part.strip().rpartition(" ")
    return name.strip(), value


def summary_table(results: list[tuple[str, str]], scripts: list[str]) -> str:
    """One row per benchmark: its headline figure, the baseline its RESULT line carries (a ``baseline NAME
    VALUE`` part: measured in the same run, or a target / quoted figure where its name says so), the ratio,
    and the other figures."""
    rows = [("benchmark", "figure", "value", "baseline", "baseline value", "ratio", "other figures")]
    seen = set()
    for script, line in results:
        seen.add(script)
        parts = [p for p in line.split("|") if p.strip()]
        head_name, head_value = _pair(parts[0])
        base_name = base_value = ratio = ""
        others = []
        for part in parts[1:]:
            if part.strip().startswith("baseline "):
                base_name, base_value = _pair(part.strip().removeprefix("baseline "))
            else:
                others.append(part.strip())
        if not base_name:  # no "baseline NAME VALUE" part: take the first figure named after a known baseline
            for part in others:
                if any(hint in part for hint in _BASELINE_HINTS):
                    base_name, base_value = _pair(part)
                    others.remove(part)
                    break
        try:
            ratio = f"{float(head_value) / float(base_value):.2f}x"
        except (ValueError, ZeroDivisionError):
            pass
        rows.append(
            (
                script.removesuffix(".py"),
                head_name,
                head_value,
                base_name or "(none)",
                base_value,
                ratio,
                "; ".join(others),
            )
        )
    for script in scripts:
        if script not in seen:
            rows.append((script.removesuffix(".py"), "(no RESULT line)", "", "", "", "", "see its output above"))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    out = []
    for n, r in enumerate(rows):
        out.append(
            "  ".join(
                c.ljust(w) if i in (0, 1, 3) else c.rjust(w) for i, (c, w) in enumerate(zip(r[:6], widths, strict=True))
            )
            + "  "
            + r[6]
        )
        if n == 0:
            out.append("-" * (sum(widths) + 12 + len(r[6])))
    return "\n".join(out)


def main() -> int:
    quick = os.environ.get("BENCH_QUICK") == "1"
    results: list[tuple[str, str]] = []
    failed: list[str] = []
    versions = versions_line()
    print(f"versions: {versions}", flush=True)
    for script, full, small in BENCHMARKS:
        path = HERE / script
        if not path.exists():
            continue
        args = small if quick else full
        print(f"\n=== {script} {' '.join(args)}", flush=True)
        started = time.monotonic()
        proc = subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True)
        print(proc.stdout, end="")
        if proc.returncode != 0:
            failed.append(script)
            print(proc.stderr[-2000:], end="")
        for line in proc.stdout.splitlines():
            if line.startswith("RESULT "):
                results.append((script, line.removeprefix("RESULT ")))
        print(f"({time.monotonic() - started:.0f} s)")
    print("\n=== summary" + (" (BENCH_QUICK=1: small sizes)" if quick else ""))
    print(summary_table(results, [s for s, _, _ in BENCHMARKS if (HERE / s).exists()]))
    print(f"versions: {versions}")
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
