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
    ("bench_book_ingest.py", [], ["--seconds", "5", "--repeat", "1"]),
    ("bench_book_storage.py", [], ["--seconds", "3"]),
    ("bench_simulator.py", [], ["--seconds", "2"]),
    ("bench_backfill.py", [], []),
    ("bench_silver.py", [], ["--trades", "1000000"]),
    ("bench_books.py", [], ["--hours", "0.5", "--history-days", "3", "--repeat", "1"]),
    (
        "bench_silver_dask.py",
        [],
        ["--trades", "300000", "--days", "5", "--instruments", "10", "--group-size", "5", "--no-prefect"],
    ),
    ("bench_gold.py", [], ["--instruments", "10", "--days", "30"]),
    ("bench_stream_memory.py", [], ["--minutes", "1", "--sample-secs", "5"]),
    # the books soak: 3 minutes in make bench (the 10: run it by hand with --minutes 10)
    ("bench_stream_memory.py", ["--books", "--minutes", "3"], ["--books", "--minutes", "1", "--sample-secs", "5"]),
]


_BASELINE_HINTS = ("pandas", "ccxt", "dump_bin", "polars_")


def _pair(part: str) -> tuple[str, str]:
    """ "okx trades rows/s 1234" -> ("okx trades rows/s", "1234"): the last word is the value."""
    name, _, value = part.strip().rpartition(" ")
    return name.strip(), value


_SIZE_UNITS = ("_mb", "_gb", "_kb", "_bytes", " mb", " bytes", "rss")


def figure_kind(name: str) -> str | None:
    """What a figure measures, from its name: "rate" (higher is better: ``*_per_s``, ``rows/s``), "time"
    (lower is better: ``*_s``, ``seconds``), "size" (lower is better: ``*_mb``, ``rss``); None if unknown."""
    n = name.lower()
    if "per_s" in n or "/s" in n:
        return "rate"
    if n.endswith(("_s", " s", "_secs", "_seconds")) or "latency" in n:
        return "time"
    if n.endswith(_SIZE_UNITS) or "rss" in n:
        return "size"
    return None


def comparison(name: str, value: str, base_name: str, base_value: str) -> str:
    """The figure against its baseline in words, the factor always >= 1 and the direction said:
    "18.2x faster than dump_bin", "2.1x slower than ccxt", "1.06x smaller than target_rss_mb". The kind
    (rate, time, size) comes from the figure's name; the baseline measures the same thing."""
    try:
        ours, theirs = float(value), float(base_value)
    except ValueError:
        return ""
    if ours <= 0 or theirs <= 0:
        return ""
    kind = figure_kind(name) or figure_kind(base_name)
    if kind is None:  # direction unknown: the plain quotient, labelled as such
        return f"{ours / theirs:.3g}x {base_name} (figure / baseline)"
    better = ours >= theirs if kind == "rate" else ours <= theirs
    factor = max(ours, theirs) / min(ours, theirs)
    words = {"rate": ("faster", "slower"), "time": ("faster", "slower"), "size": ("smaller", "larger")}[kind]
    return f"{factor:.3g}x {words[0] if better else words[1]} than {base_name}"


def summary_table(results: list[tuple[str, str]], scripts: list[str]) -> str:
    """One row per benchmark: its headline figure, the baseline its RESULT line carries (a ``baseline NAME
    VALUE`` part: measured in the same run, or a target / quoted figure where its name says so), the two
    compared in words ("18.2x faster than ..."; the raw values stay in their columns), and the other figures."""
    rows = [("benchmark", "figure", "value", "baseline", "baseline value", "comparison", "other figures")]
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
        ratio = comparison(head_name, head_value, base_name, base_value) if base_name else ""
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
                c.ljust(w) if i in (0, 1, 3, 5) else c.rjust(w)
                for i, (c, w) in enumerate(zip(r[:6], widths, strict=True))
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
