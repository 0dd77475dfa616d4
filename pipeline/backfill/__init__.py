"""Backfill over REST, gap filling and the venues' REST paging rules (one module per venue:
``okx.py``, ``deribit.py``, same shape). Nothing here imports Prefect."""

from __future__ import annotations

from pipeline.backfill.gapfill import GapFillResult, afill_gaps, fill_gaps
from pipeline.backfill.jobs import BackfillProgress, BackfillResult, arun_backfill, run_backfill
from pipeline.backfill.plan import BackfillPlan, make_plan, parse_time_ms
from pipeline.backfill.rest import RestClient, RetryPolicy, VenueRequestError

__all__ = [
    "BackfillPlan",
    "BackfillProgress",
    "BackfillResult",
    "GapFillResult",
    "RestClient",
    "RetryPolicy",
    "VenueRequestError",
    "afill_gaps",
    "arun_backfill",
    "fill_gaps",
    "make_plan",
    "parse_time_ms",
    "run_backfill",
]
