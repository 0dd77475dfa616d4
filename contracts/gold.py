"""Contract of the gold Qlib export: the frame of bars ``pipeline.gold`` writes for one frequency.

Columns: ``instrument``, ``t`` (open time, int64 us UTC) and the Qlib fields. Checked before anything
is written, so a bad silver bar stops the publish instead of landing in a .bin file.
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData


def _finite_positive_or_null(col: str) -> pl.Expr:
    c = pl.col(col)
    return c.is_null() | (c.is_finite() & (c > 0))


class GoldBars(pa.DataFrameModel):
    """Row rules of a bar. One bar per (instrument, slot) is enforced by the writer, which sees the slots."""

    instrument: str = pa.Field(nullable=False)
    t: int = pa.Field(nullable=False, ge=0)
    open: float = pa.Field(nullable=True)
    high: float = pa.Field(nullable=True)
    low: float = pa.Field(nullable=True)
    close: float = pa.Field(nullable=False)
    volume: float = pa.Field(nullable=True, ge=0)
    amount: float = pa.Field(nullable=True, ge=0)
    vwap: float = pa.Field(nullable=True)
    trades: float = pa.Field(nullable=True, ge=0)
    # Derived by the writer; present on incremental frames, absent on a full build's raw frame.
    factor: float | None = pa.Field(nullable=False, eq=1.0)
    change: float | None = pa.Field(nullable=True)

    @pa.dataframe_check(name="prices finite and positive where present")
    @classmethod
    def prices_positive(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.all_horizontal(*(_finite_positive_or_null(c) for c in ("open", "high", "low", "close", "vwap")))
        )

    @pa.dataframe_check(name="high >= low, open and close inside [low, high]")
    @classmethod
    def range_consistent(cls, data: PolarsData) -> pl.LazyFrame:
        h, lo = pl.col("high"), pl.col("low")
        inside = [(pl.col(c) <= h) & (pl.col(c) >= lo) for c in ("open", "close")]
        return data.lazyframe.select(
            (h.is_null() | lo.is_null() | ((h >= lo) & pl.all_horizontal(*inside))).fill_null(True)
        )

    class Config:
        strict = True
        coerce = False


class GoldCalendar(pa.DataFrameModel):
    """A published calendar: strictly increasing slots (a repeat or a step back would shift a series)."""

    t: int = pa.Field(nullable=False, ge=0)

    @pa.dataframe_check(name="calendar strictly increasing")
    @classmethod
    def monotonic(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select((pl.col("t") > pl.col("t").shift(1)).fill_null(True))
