"""Chaos, soak and fault scenarios against the exchange simulator (``make chaos``, ``python -m pipeline.chaos``).

Each scenario runs the real stream process, breaks something, repairs what the pipeline repairs (fill-gaps,
silver) and reconciles silver/trades with the simulator's ground truth: nothing missing, nothing duplicated.
"""

from pipeline.chaos.scenarios import (
    Outcome,
    SoakPlan,
    full_soak_plan,
    kills,
    maintenance,
    short_soak_plan,
    soak,
    unwritable,
)

__all__ = ["Outcome", "SoakPlan", "full_soak_plan", "kills", "maintenance", "short_soak_plan", "soak", "unwritable"]
