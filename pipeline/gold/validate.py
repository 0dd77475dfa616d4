"""The gold contract (``contracts.gold.GoldBars``) applied to a frame about to be written."""

from __future__ import annotations

import numpy as np
import polars as pl
from pandera.errors import SchemaErrors

from contracts.gold import GoldBars, GoldCalendar
from pipeline.gold.errors import GoldContractError


def validate_bars(bars: pl.DataFrame, *, table: str) -> None:
    """Raise ``GoldContractError`` (every failed rule, with counts and a sample) if a bar breaks the contract."""
    if bars.is_empty():
        return
    try:
        GoldBars.validate(bars, lazy=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases
        rules = {str(k): int(v) for k, v in cases.group_by("check").len().sort("check").iter_rows()}
        sample = [
            {"check": str(r["check"]), "column": str(r["column"]), "case": str(r["failure_case"])}
            for r in cases.head(5).iter_rows(named=True)
        ]
        raise GoldContractError(table, rules, bars.height, sample) from exc


def validate_calendar(times_us: np.ndarray, *, table: str) -> None:
    """Raise ``GoldContractError`` unless the calendar slots strictly increase."""
    try:
        GoldCalendar.validate(pl.DataFrame({"t": times_us}), lazy=True)
    except SchemaErrors as exc:
        raise GoldContractError(
            table, {"calendar strictly increasing": exc.failure_cases.height}, len(times_us), []
        ) from exc
