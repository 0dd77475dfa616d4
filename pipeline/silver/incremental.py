"""Which bars a run has to (re)compute: the minutes new data touched, and the minutes that closed since the
last run.

The publish horizon H = floor_to_minute(now - lateness). A bar is published once its close_time <= H. Each
run computes the work set
    W = {1m buckets that closed in (H_old, H_new]}              (the "window": every instrument)
      u {1m buckets new rows touched with close_time <= H_old}  (the "late" set: restated exactly)
Buckets new rows touched that are still open wait for the window of a later run. Without a previous
horizon (first run) the window is everything before H_new.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import cast

import polars as pl

from pipeline.lake.tables import TableSpec
from pipeline.silver import files
from pipeline.silver.candles import bucket
from pipeline.silver.handles import Handles

MINUTE = dt.timedelta(minutes=1)
DAY = dt.timedelta(days=1)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
KEY = ["venue", "instrument", "open_time"]


def floor_to(ts: dt.datetime, step: dt.timedelta) -> dt.datetime:
    return EPOCH + ((ts - EPOCH) // step) * step


@dataclass(frozen=True)
class WorkSet:
    """The 1m buckets a run recomputes (see module doc)."""

    lo: dt.datetime  # window start (inclusive open_time); EPOCH on a first run
    hi: dt.datetime  # H_new: window end (exclusive open_time + 1m <= hi)
    late: pl.DataFrame  # (venue, instrument, open_time) of late buckets
    # Only these rows (a partition of the Dask fan-out: one venue's instrument group); None: all.
    only: pl.Expr | None = None

    @property
    def empty(self) -> bool:
        return self.lo >= self.hi and self.late.height == 0

    @property
    def late_instruments(self) -> list[str]:
        return self.late["instrument"].unique().to_list()

    def late_range(self) -> tuple[dt.datetime, dt.datetime] | None:
        if self.late.height == 0:
            return None
        lo, hi = cast(dt.datetime, self.late["open_time"].min()), cast(dt.datetime, self.late["open_time"].max())
        return lo, hi + MINUTE

    def row_filter(self, ts_col: str) -> pl.Expr:
        """Rows whose time falls in the window or in the late range of a late instrument (coarse: a
        semi-join with ``late`` follows)."""
        t = pl.col(ts_col)
        expr = (t >= self.lo) & (t < self.hi)
        rng = self.late_range()
        if rng is not None:
            expr = expr | (pl.col("instrument").is_in(self.late_instruments) & (t >= rng[0]) & (t < rng[1]))
        return expr if self.only is None else expr & self.only

    def keep(self, rows: pl.LazyFrame, ts_col: str) -> pl.LazyFrame:
        """Exactly the rows whose 1m bucket is in W."""
        b = rows.filter(self.row_filter(ts_col)).with_columns(__b=bucket(ts_col, "1m"))
        in_window = (pl.col("__b") >= self.lo) & (pl.col("__b") + MINUTE <= self.hi)
        if self.late.height == 0:
            return b.filter(in_window).drop("__b")
        late = self.late.lazy().rename({"open_time": "__b"}).with_columns(__late=pl.lit(True))
        return (
            b.join(late, on=["venue", "instrument", "__b"], how="left")
            .filter(in_window | pl.col("__late").fill_null(False))
            .drop("__b", "__late")
        )

    def ranges(self, widen: dt.timedelta = dt.timedelta(0)) -> list[tuple[dt.datetime, dt.datetime]]:
        """Time ranges to read (window and late range), each widened to whole ``widen`` buckets."""
        out = []
        if self.lo < self.hi:
            out.append((floor_to(self.lo, widen) if widen else self.lo, self.hi))
        rng = self.late_range()
        if rng is not None:
            hi = floor_to(rng[1] - dt.timedelta(microseconds=1), widen) + widen if widen else rng[1]
            out.append((floor_to(rng[0], widen) if widen else rng[0], min(hi, self.hi)))
        return out


def work_set(touched: pl.LazyFrame, h_old: dt.datetime | None, h_new: dt.datetime) -> WorkSet:
    """``touched``: (venue, instrument, open_time) of the 1m buckets new rows fall in."""
    if h_old is None:
        return WorkSet(
            EPOCH,
            h_new,
            pl.DataFrame(schema={"venue": pl.String, "instrument": pl.String, "open_time": pl.Datetime("us", "UTC")}),
        )
    late = touched.filter(pl.col("open_time") + MINUTE <= h_old).unique().collect()
    return WorkSet(h_old, max(h_new, h_old), late)


def touched_buckets(rows: pl.DataFrame, ts_col: str) -> pl.LazyFrame:
    return rows.lazy().select("venue", "instrument", open_time=bucket(ts_col, "1m"))


def rescan(tables: Handles, spec: TableSpec, ts_col: str, ws: WorkSet, skip: files.FileSet) -> pl.LazyFrame:
    """Bronze rows of the work set's ranges that are not in this run's new files (each file read once, each
    row kept once, though the window and the late range may meet the same file)."""
    base = tables.files(spec).without(skip)
    ranges = ws.ranges()
    in_ranges = (
        pl.any_horizontal([pl.col(ts_col).is_between(lo, hi, closed="left") for lo, hi in ranges])
        if ranges
        else pl.lit(False)
    )
    return files.scan(tables.lake, files.overlapping_any(base, ts_col, ranges)).filter(in_ranges)
