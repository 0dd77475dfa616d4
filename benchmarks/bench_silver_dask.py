"""Silver over a multi-day backlog: the single-process run beside the Dask fan-out (pipeline/silver/partitions.py)
on a local cluster of 1 and 2 worker processes, and the Prefect flow on 2 workers (task runs and all).

    .venv/bin/python benchmarks/bench_silver_dask.py [--trades 3000000] [--instruments 50] [--days 30]
        [--group-size 25] [--no-prefect]

Every run starts from a copy of the same bronze lake (a first silver run over the whole backlog, one bronze
commit per day, 1% of trades re-sent by REST) and must give the same silver tables (checked). Figures: wall
seconds of each path; the fan-out's plan, partitions and commit separately; per partition its mean compute
time and what Dask adds to it (1 worker: wall time over the partitions minus their compute time); the
Prefect flow's extra cost per task run. Cluster start-up is printed, not counted: a deployment keeps its
cluster (the flow's own local cluster is counted in its figure).

What a 2-core machine shows: that the fan-out's results equal the single process, what planning, the
per-partition fixed cost and the one commit cost, and how the partitions' own time compares with one
process over the whole backlog. What it cannot show: scaling. The single process already keeps both cores
busy (polars is multi-threaded), so 2 workers on 2 cores at best match it; the gain comes from more
machines, and the projection for 16 workers in docs/scaling.md is arithmetic on these per-partition figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import tempfile
import time
from pathlib import Path

import polars as pl
from bench_silver import DAY_MS, START_MS, synth_trades, write_bronze  # benchmarks/ is on sys.path
from distributed import Client, LocalCluster

from pipeline.lake import writer
from pipeline.lake.location import resolve_lake
from pipeline.lake.tables import SILVER_CANDLES, SILVER_TRADES
from pipeline.silver import partitions, run_silver


def _copy(src: Path, name: str) -> Path:
    dst = src.with_name(name)
    shutil.copytree(src, dst)
    os.sync()
    time.sleep(1.0)  # the copy's writeback must not land in the timed run
    return dst


def _tables(lake_dir: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    lake = resolve_lake(str(lake_dir))
    return (
        writer.read(lake, SILVER_TRADES, columns=["instrument", "trade_id"]).sort("instrument", "trade_id"),
        writer.read(lake, SILVER_CANDLES)
        .select("instrument", "timeframe", "open_time", "close", "trade_count")
        .sort("instrument", "timeframe", "open_time"),
    )


def fan_out(lake_dir: Path, now: dt.datetime, workers: int, group_size: int) -> dict[str, float]:
    """The fan-out straight on Dask (no Prefect): plan, map the partitions, commit."""
    started = time.perf_counter()
    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        client.submit(int, 0).result()  # workers up before the clock starts
        t0 = time.perf_counter()
        p = partitions.plan(resolve_lake(str(lake_dir)), now=now, run_id="bench", group_size=group_size)
        t1 = time.perf_counter()
        results = client.gather(client.map(partitions.compute, [p.job(x) for x in p.partitions], pure=False))
        t2 = time.perf_counter()
        report = partitions.commit(p, results, {})
        t3 = time.perf_counter()
    assert report.ok and report.written["silver/trades"] > 0
    secs = [r.seconds for r in results]
    return {
        "cluster_start": t0 - started,
        "wall": t3 - t0,
        "plan": t1 - t0,
        "partitions": t2 - t1,
        "commit": t3 - t2,
        "count": len(results),
        "mean_partition": sum(secs) / len(secs),
        "sum_partition": sum(secs),
    }


def prefect_flow(lake_dir: Path, now_ms: int, workers: int, group_size: int) -> float:
    """The Prefect flow on a local cluster of ``workers`` (its start-up included), under a temporary server."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    from flows.silver_fanout import silver_fanout_flow

    with prefect_test_harness(server_startup_timeout=120):
        t = time.perf_counter()
        silver_fanout_flow(lake=str(lake_dir), now_ms=now_ms, workers=workers, group_size=group_size)
        return time.perf_counter() - t


def dense_partition(root: Path, trades_per_instrument: int, instruments: int) -> tuple[int, float]:
    """One partition at a real market's density (one day of ``instruments`` with ``trades_per_instrument``
    trades each), computed in this process as a worker computes it: (trades, seconds). The backlog above is
    sparse (~1 trade a bar), so its partitions measure the per-bar cost; this one the per-trade cost."""
    lake_dir = root / "dense"
    n = trades_per_instrument * instruments
    write_bronze(resolve_lake(str(lake_dir)), synth_trades(n, instruments, START_MS, DAY_MS, 5, 10**11), commits=4)
    now = dt.datetime.fromtimestamp((START_MS + DAY_MS + 120_000) / 1000, dt.UTC)
    p = partitions.plan(resolve_lake(str(lake_dir)), now=now, run_id="bench", group_size=instruments)
    assert len(p.partitions) == 1
    job = p.job(p.partitions[0])
    os.sync()
    t = time.perf_counter()
    result = partitions.compute(job)
    took = time.perf_counter() - t
    assert result.report.written["silver/trades"] == n
    return n, took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trades", type=int, default=3_000_000)
    ap.add_argument("--instruments", type=int, default=50)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--group-size", type=int, default=25)
    ap.add_argument("--no-prefect", action="store_true", help="leave out the Prefect flow run")
    ap.add_argument(
        "--dense-trades", type=int, default=100_000, help="trades per instrument-day of the dense partition"
    )
    args = ap.parse_args()
    now_ms = START_MS + args.days * DAY_MS + 120_000
    now = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC)
    with tempfile.TemporaryDirectory(prefix="bench-silver-dask-") as tmp:
        bronze = Path(tmp) / "bronze"
        table = synth_trades(args.trades, args.instruments, START_MS, args.days * DAY_MS, seed=3, first_id=10**11)
        write_bronze(resolve_lake(str(bronze)), table, commits=args.days)
        print(
            f"backlog: {table.num_rows:,} bronze trades ({args.trades:,} + 1% REST copies), {args.instruments} "
            f"instruments, {args.days} days in {args.days} commits; groups of {args.group_size} instruments",
            flush=True,
        )
        single_dir = _copy(bronze, "single")
        t = time.perf_counter()
        report = run_silver(resolve_lake(str(single_dir)), now_ms=now_ms)
        single = time.perf_counter() - t
        assert report.ok
        print(f"single process: {single:.2f} s ({args.trades / single:,.0f} trades/s)", flush=True)
        expected = _tables(single_dir)
        runs = {}
        for workers in (1, 2):
            d = _copy(bronze, f"dask{workers}")
            runs[workers] = r = fan_out(d, now, workers, args.group_size)
            got = _tables(d)
            assert got[0].equals(expected[0]) and got[1].drop("close").equals(expected[1].drop("close")), workers
            print(
                f"dask {workers} worker(s): {r['wall']:.2f} s = plan {r['plan']:.2f} + {r['count']:.0f} partitions "
                f"{r['partitions']:.2f} + commit {r['commit']:.2f}; a partition {r['mean_partition']:.3f} s on "
                f"average (sum {r['sum_partition']:.2f} s); same silver tables as the single process",
                flush=True,
            )
        one = runs[1]
        # What Dask adds to a partition (shipping the job and the result, scheduling): one worker's wall time
        # over the partitions beyond the partitions' own compute time.
        overhead = (one["partitions"] - one["sum_partition"]) / one["count"]
        print(
            f"Dask overhead per partition: {overhead:.3f} s; fixed: plan {one['plan']:.2f} s + commit "
            f"{one['commit']:.2f} s; local cluster start-up {runs[2]['cluster_start']:.1f} s (2 workers, not "
            f"counted); fan-out on 1 worker vs single process: x{single / one['wall']:.2f}",
            flush=True,
        )
        flow_s = None
        if not args.no_prefect:
            flow_s = prefect_flow(_copy(bronze, "flow"), now_ms, 2, args.group_size)
            # Beyond Dask alone: the flow creates each task run through the API as it submits it (the
            # partitions wait for their turn), and the runs report their states and logs.
            per_task = (flow_s - runs[2]["cluster_start"] - runs[2]["wall"]) / runs[2]["count"]
            print(
                f"prefect flow, 2 workers: {flow_s:.2f} s with its cluster start-up; about {per_task:.2f} s per "
                "task run beyond Dask alone",
                flush=True,
            )
        dense_n, dense_s = dense_partition(Path(tmp), args.dense_trades, args.group_size)
        print(
            f"one dense partition ({args.group_size} instruments x {args.dense_trades:,} trades, one day): "
            f"{dense_s:.2f} s ({dense_n / dense_s:,.0f} trades/s on one worker)",
            flush=True,
        )
        per_worker = args.trades / runs[1]["sum_partition"]
        print(f"trades per second per worker in partitions: {per_worker:,.0f}", flush=True)
        flow = f" | prefect_flow_2_workers_s {flow_s:.2f}" if flow_s is not None else ""
        print(
            f"RESULT silver_single_process_s {single:.2f} | silver_dask_1_worker_s {runs[1]['wall']:.2f} | "
            f"silver_dask_2_workers_s {runs[2]['wall']:.2f} | partitions {runs[1]['count']:.0f} | "
            f"partition_mean_s {runs[1]['mean_partition']:.3f} | dask_overhead_per_partition_s {overhead:.3f} | "
            f"plan_s {runs[2]['plan']:.2f} | commit_s {runs[2]['commit']:.2f} | "
            f"partition_trades_per_s_per_worker {per_worker:.0f} | dense_partition_s {dense_s:.2f}{flow}",
            flush=True,
        )


if __name__ == "__main__":
    from versions import versions_line  # benchmarks/ is on sys.path when a script runs

    print(f"versions: {versions_line()}, distributed {__import__('distributed').__version__}", flush=True)
    main()
