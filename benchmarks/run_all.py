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


def main() -> int:
    quick = os.environ.get("BENCH_QUICK") == "1"
    results: list[tuple[str, str]] = []
    failed: list[str] = []
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
    print("\n=== summary")
    print(f"{'benchmark':<26} figures")
    for script, figures in results:
        print(f"{script:<26} {figures}")
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
