"""Silver's backlog on Dask: Prefect around ``pipeline.silver.partitions``.

The flow plans the partitions (venue x instrument group x day) in its own process, runs each as one task
on ``prefect-dask``'s ``DaskTaskRunner`` (a local cluster, or an existing one at ``dask_address``), where
workers write Parquet files and return their add actions, then commits each silver table once, in one
Delta transaction, from its own process. A failed partition fails the flow before any commit: nothing is
half-written, and the next run redoes the same work. For the work that grows with history (the first run
after an import or a backfill, ``restate_candles``); the five-minute ``silver`` flow stays single-process.

    .venv/bin/python -m flows.silver_fanout --lake ./lake --workers 2
    .venv/bin/python -m flows.silver_fanout --lake /shared/lake --dask-address tcp://scheduler:8786
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
import uuid
from typing import cast
from uuid import UUID

from deltalake.transaction import AddAction, RemoveAction
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect_dask import DaskTaskRunner

from flows.silver import announce
from pipeline.lake.location import Lake, resolve_lake
from pipeline.silver import partitions
from pipeline.silver.files import FileSet
from pipeline.silver.partitions import Job, PartitionResult

Actions = list[AddAction | RemoveAction]
PROGRESS_POLL_SECS = 0.2


# Tasks wrap the pipeline's functions themselves: Dask pickles a task's function by reference, which fails
# for a function defined under the name its task object takes in the module.
partition_task = task(name="silver-partition")(partitions.compute)
rewrite_task = task(name="silver-rewrite")(partitions.rewrite)


def dask_runner(dask_address: str | None, workers: int, processes: bool = True) -> DaskTaskRunner:
    """The cluster: an existing scheduler, or a local one of ``workers`` single-threaded workers (polars
    runs its own threads inside each task)."""
    if dask_address:
        return DaskTaskRunner(address=dask_address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": processes})


def on_dask(
    runner: DaskTaskRunner, jobs: list[Job], lake: Lake, listed: dict[str, FileSet]
) -> tuple[list[PartitionResult], dict[str, Actions]]:
    """The partitions as task runs of this flow named after them (progress artifact and a log line per
    partition done), then the rewrites of stored files that hold replaced bars.

    Submitted through the runner directly, not from a subflow: each submit ships and hashes the run's
    context, which for a subflow holds its parameters (every job's file listings), and that cost grew with the
    number of partitions for each one (~0.5 s a submit at 20 partitions)."""
    logger = get_run_logger()
    progress = cast(
        UUID, create_progress_artifact(0.0, key="silver-fanout-progress", description="silver partitions done")
    )
    with runner:
        submitting = time.perf_counter()
        futures = [runner.submit(partition_task.with_options(task_run_name=j.partition.name), {"job": j}) for j in jobs]
        logger.info("%d partitions submitted in %.2f s", len(futures), time.perf_counter() - submitting)
        results: list[PartitionResult] = []
        # Polled on the Dask futures: Prefect's as_completed waits for the runs' state events, which reached it
        # only at the end here (and Dask's own needs a default client, which the task runner does not set).
        pending = list(futures)
        while pending:
            done = [f for f in pending if f.wrapped_future.done()]
            if not done:
                time.sleep(PROGRESS_POLL_SECS)
                continue
            for f in done:
                pending.remove(f)
                r = f.result()
                results.append(r)
                logger.info("partition %s done in %.2f s (%d/%d)", r.name, r.seconds, len(results), len(jobs))
            update_progress_artifact(progress, 100.0 * len(results) / max(len(jobs), 1))
        rewrites = partitions.rewrites(lake, listed, results)
        rewrite_futures = [runner.submit(rewrite_task.with_options(task_run_name=w.name), {"job": w}) for w in rewrites]
        rewritten: dict[str, Actions] = {}
        for w, rewrite_future in zip(rewrites, rewrite_futures, strict=True):
            rewritten.setdefault(w.spec.key, []).extend(rewrite_future.result())
    return results, rewritten


@flow(name="silver-fanout", log_prints=True)
def silver_fanout_flow(
    lake: str | None = None,
    lateness_secs: float = 60.0,
    now_ms: int | None = None,
    fail_share: float = 0.05,
    restate_candles: bool = False,
    group_size: int = partitions.DEFAULT_GROUP_SIZE,
    dask_address: str | None = None,
    workers: int = 2,
    run_id: str | None = None,
) -> dict[str, int]:
    """Bring silver up to date with bronze as ``silver`` does, its trades, candles and quote bars computed
    per partition on Dask (``dask_address``: an existing scheduler; else a local cluster of ``workers``)."""
    logger = get_run_logger()
    started = time.perf_counter()
    now = dt.datetime.fromtimestamp((now_ms if now_ms is not None else time.time_ns() // 1_000_000) / 1000, dt.UTC)
    p = partitions.plan(
        resolve_lake(lake),
        now=now,
        run_id=run_id or uuid.uuid4().hex[:12],
        lateness_secs=lateness_secs,
        fail_share=fail_share,
        restate_candles=restate_candles,
        group_size=group_size,
    )
    logger.info("silver fan-out %s: %d partitions", p.run_id, len(p.partitions))
    results: list[PartitionResult] = []
    rewritten: dict[str, Actions] = {}
    if p.partitions:
        jobs = [p.job(x) for x in p.partitions]
        results, rewritten = on_dask(dask_runner(dask_address, workers), jobs, p.lake, p.listed)
    report = partitions.commit(p, results, rewritten)
    report.seconds = time.perf_counter() - started
    announce(report, f"silver fan-out {report.run_id}: per bronze table rows read, passed, quarantined by rule")
    report.raise_for_fatal()
    return report.written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="silver's backlog on Dask (see flows/silver_fanout.py)")
    parser.add_argument("--lake", default=None)
    parser.add_argument("--dask-address", default=None, help="an existing Dask scheduler, e.g. tcp://host:8786")
    parser.add_argument("--workers", type=int, default=2, help="local cluster size (without --dask-address)")
    parser.add_argument("--group-size", type=int, default=partitions.DEFAULT_GROUP_SIZE)
    parser.add_argument("--restate-candles", action="store_true")
    args = parser.parse_args(argv)
    silver_fanout_flow(
        lake=args.lake,
        dask_address=args.dask_address,
        workers=args.workers,
        group_size=args.group_size,
        restate_candles=args.restate_candles,
    )


if __name__ == "__main__":
    main()
