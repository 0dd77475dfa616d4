"""The gap-filling flow (scheduled, e.g. every 15 minutes): one task per venue fills that venue's open
gaps over REST and marks them; a table artifact lists what was filled and what could not be."""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.artifacts import create_table_artifact

from pipeline.backfill import fill_gaps
from pipeline.backfill.gapfill import open_gaps
from pipeline.lake.location import resolve_lake


@task(name="fill-gaps-venue", retries=2, retry_delay_seconds=30)
def fill_venue_gaps(lake_root: str, venue: str, rest_url: str | None) -> list[dict[str, Any]]:
    result = fill_gaps(resolve_lake(lake_root), venue=venue, rest_url=rest_url)
    return [
        {"gap_id": o.gap_id, "venue": o.venue, "status": o.status, "trades": o.trades, "detail": o.detail}
        for o in result.outcomes
    ]


@flow(name="fill-gaps", log_prints=True)
def fill_gaps_flow(
    lake: str | None = None, venues: list[str] | None = None, rest_url: str | None = None
) -> dict[str, int]:
    """Fill the open gaps of bronze/gaps (all venues, or ``venues``)."""
    target = resolve_lake(lake)
    wanted = venues or sorted({g["venue"] for g in open_gaps(target)})
    rows: list[dict[str, Any]] = []
    for venue in wanted:
        rows += fill_venue_gaps(target.root, venue, rest_url)
    if rows:
        create_table_artifact(key="fill-gaps", table=rows, description="gaps handled by the last run")
    counts = {"gaps": len(rows), "filled": sum(r["status"] == "filled" for r in rows)}
    counts["unfillable"] = counts["gaps"] - counts["filled"]
    counts["trades"] = sum(int(r["trades"]) for r in rows)
    print(f"fill-gaps: {counts}")
    return counts
