"""Pieces shared by the contract models: the UTC timestamp type, rule helpers, the clock window.

Rules that depend on the run (``now``, the listing date) cannot be class attributes, so models declare the
static rules and ``with_time_window`` adds the clock-dependent ones to the schema at validation time.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import pandera.polars as pa
import polars as pl
from pandera.engines.polars_engine import DateTime

# timestamp[us, UTC] as the lake stores it: (time_zone_agnostic, time_zone, time_unit)
UtcTs = Annotated[DateTime, False, "UTC", "us"]

VENUES = ("okx", "deribit", "binance", "bybit", "sim")
MARKETS = ("spot", "swap", "future", "option")
SOURCES = ("ws", "rest", "capture")
SIDES = ("buy", "sell")

# The earliest any venue we read was trading; an instrument's own listing time tightens it when known.
DEFAULT_LISTED_AFTER = dt.datetime(2013, 1, 1, tzinfo=dt.UTC)
DEFAULT_SKEW_SECS = 300.0  # venue clocks run ahead of ours by a little; more than this is a bad row

# Floats from different code paths (exchange vwap, our sums) differ in the last bits: compare with slack.
REL_TOL = 1e-9
# Exchange bars round their volumes, so the vwap they imply can sit a hair outside [low, high].
EXCHANGE_VWAP_TOL = 1e-3


def le_tol(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    """a <= b allowing a relative rounding error."""
    return a <= b + b.abs() * REL_TOL


def row_hash(*columns: str) -> pl.Expr:
    """A 64-bit hash of the values of ``columns`` in each row: every column hashed with a seed of its own
    (so values swapped between columns differ) and the hashes xor-ed. ~4x cheaper than
    ``pl.struct(columns).hash()``, which encodes whole rows first. Equal rows hash equal; two different
    rows share a hash with the odds of any 64-bit hash (~2^-64 a pair)."""
    out = pl.col(columns[0]).hash(seed=1)
    for seed, name in enumerate(columns[1:], start=2):
        out = out ^ pl.col(name).hash(seed=seed)
    return out


def repeated(hashes: pl.Series) -> pl.Series:
    """The values that occur more than once in ``hashes``: sorting finds them ~3x cheaper than is_duplicated."""
    ordered = hashes.sort(multithreaded=False)  # as fast on 2 cores, at half the CPU
    return ordered.filter((ordered == ordered.shift(1)).fill_null(False))


def ok_or_null(expr: pl.Expr) -> pl.Expr:
    """A cross-field rule passes when any input is null (nullable columns carry no claim)."""
    return expr.fill_null(True)


def with_time_window(
    model: type[pa.DataFrameModel],
    columns: tuple[str, ...],
    *,
    now: dt.datetime,
    skew_secs: float = DEFAULT_SKEW_SECS,
    listed_after: dt.datetime = DEFAULT_LISTED_AFTER,
) -> pa.DataFrameSchema:
    """The model's schema plus "listed_after <= ts <= now + skew" on each of ``columns`` (rule ``in_time_window``)."""
    schema = model.to_schema()
    upper = now + dt.timedelta(seconds=skew_secs)
    for name in columns:
        column = schema.columns[name]
        check = pa.Check.in_range(listed_after, upper, name="in_time_window", error="in_time_window")
        schema = schema.update_column(name, checks=[*column.checks, check])
    return schema
