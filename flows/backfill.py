"""The backfill flow (a manual deployment): Prefect around ``pipeline.backfill``.

Parameters are validated before any request (a bad one fails the run at once with the ConfigError's
message); then one task per instrument runs that instrument's chunks under the job's id, so a failed or
cancelled run started again with the same parameters resumes where it stopped. Progress goes to a
Prefect progress artifact through the pipeline's ``progress`` hook; the summary to a markdown artifact.
"""

from __future__ import annotations

from typing import cast
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact

from pipeline.backfill import BackfillPlan, BackfillProgress, make_plan, run_backfill
from pipeline.backfill.funding import swaps_of
from pipeline.lake.location import resolve_lake
from pipeline.universe import resolve_instruments


@task(name="backfill-instrument", retries=2, retry_delay_seconds=10)
def backfill_instrument(
    lake_root: str, plan: BackfillPlan, instrument: str, rest_url: str | None, artifact_id: UUID, done_before: int
) -> dict[str, int]:
    """All chunks of one instrument (coarse: one task run per instrument, never per request)."""
    total = plan.total_chunks()

    def progress(p: BackfillProgress) -> None:
        # _sync: the hook runs inside the pipeline's event loop, where Prefect would otherwise hand back a coroutine
        update_progress_artifact(artifact_id, 100.0 * (done_before + p.done_chunks) / total, _sync=True)  # type: ignore[call-arg]  # _sync is added by Prefect's sync_compatible wrapper, unseen by mypy

    result = run_backfill(resolve_lake(lake_root), plan, rest_url=rest_url, progress=progress, only=[instrument])
    get_run_logger().info(result.summary())
    return {
        "rows": result.rows,
        "chunks_run": result.chunks_run,
        "chunks_skipped": result.chunks_skipped,
        "requests": result.rest.requests,
    }


@flow(name="backfill", log_prints=True)
def backfill_flow(
    venue: str,
    instruments: list[str] | str = "universe",
    kind: str = "trades",
    start: str = "-1d",
    end: str = "now",
    timeframe: str | None = None,
    lake: str | None = None,
    rest_url: str | None = None,
    chunk_secs: int | None = None,
) -> dict[str, int]:
    """Backfill ``kind`` (trades | candles | funding | open-interest) of ``instruments`` (a list, or "universe":
    for funding its swaps) between ``start`` and ``end``; ``timeframe``: the candles' (default 1m) or the
    open-interest period (default 5m); ``chunk_secs`` None: the kind's default chunk."""
    if timeframe is None and kind == "candles":
        timeframe = "1m"
    target = resolve_lake(lake)
    names = resolve_instruments(target, venue, instruments)
    if kind == "funding" and instruments == "universe":
        names = swaps_of(venue, names)
    plan = make_plan(venue, names, kind, start, end, timeframe=timeframe, chunk_secs=chunk_secs)
    # Called from a sync flow, Prefect's sync_compatible wrapper returns the id itself, not a coroutine.
    artifact_id = cast(
        UUID,
        create_progress_artifact(
            0.0, key=f"backfill-{plan.job_id}", description=f"backfill {venue} {kind} of {len(names)} instruments"
        ),
    )
    totals = {"rows": 0, "chunks_run": 0, "chunks_skipped": 0, "requests": 0}
    done = 0
    for instrument in plan.instruments:
        part = backfill_instrument(target.root, plan, instrument, rest_url, artifact_id, done)
        done += len(plan.chunks(instrument))
        totals = {k: totals[k] + part[k] for k in totals}
    update_progress_artifact(artifact_id, 100.0)
    create_markdown_artifact(
        key=f"backfill-{plan.job_id}-summary",
        markdown=f"# Backfill {plan.job_id}\n{venue} {kind}{' ' + plan.timeframe if plan.timeframe else ''}, {len(names)} instruments\n\n"
        + "| counter | value |\n|---|---|\n"
        + "".join(f"| {k} | {v:,} |\n" for k, v in totals.items()),
        description=f"backfill {plan.job_id}: rows written, chunks run and skipped (resumed), requests made",
    )
    return totals
