"""The health flow (every few minutes): run the lake status and raise Prefect events that automations turn
into alerts. ``cryptolake.stream.stale`` when bronze/trades had no data commit for ``stale_after_min`` (a
maintenance commit, OPTIMIZE or VACUUM, is not data: see ``pipeline.status.last_data_commit_ms``);
``cryptolake.lake.unhealthy`` for every other threshold crossed. The run itself succeeds: an unhealthy lake
is an alert, not a failed health check."""

from __future__ import annotations

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event

from pipeline.lake.location import resolve_lake
from pipeline.status import LakeStatus, Thresholds, lake_status

STREAM_STALE = "cryptolake.stream.stale"
LAKE_UNHEALTHY = "cryptolake.lake.unhealthy"


@task(name="lake-status")
def status_task(lake: str | None, window_min: int) -> LakeStatus:
    return lake_status(resolve_lake(lake), window_minutes=window_min)


@flow(name="health", log_prints=True)
def health_flow(
    lake: str | None = None,
    stale_after_min: float = 10.0,
    window_min: int = 60,
    min_completeness: float | None = None,
    max_open_gaps: int | None = None,
) -> dict[str, object]:
    """Check the lake; emit one event per kind of problem found."""
    status = status_task(lake, window_min)
    stale = status.problems(Thresholds(max_commit_age_min=stale_after_min, min_completeness=None, max_open_gaps=None))
    other = status.problems(
        Thresholds(max_commit_age_min=None, min_completeness=min_completeness, max_open_gaps=max_open_gaps)
    )
    resource = {"prefect.resource.id": f"cryptolake.lake.{status.root}", "cryptolake.lake": status.root}
    trades = status.table("bronze/trades")
    if stale:
        emit_event(
            STREAM_STALE,
            resource=resource,
            payload={"problems": stale, "last_commit_age_s": trades.last_commit_age_s if trades else None},
        )
    if other:
        emit_event(LAKE_UNHEALTHY, resource=resource, payload={"problems": other[:50]})
    limits = Thresholds(
        max_commit_age_min=stale_after_min, min_completeness=min_completeness, max_open_gaps=max_open_gaps
    )
    create_markdown_artifact(
        key="lake-status",
        markdown=f"```\n{status.render(limits)}\n```",
        description="lake status: last data commit, completeness, open gaps, against the health thresholds",
    )
    print(status.render(limits))
    return {"healthy": not (stale or other), "problems": stale + other}
