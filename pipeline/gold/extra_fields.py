"""Qlib fields taken from silver tables other than silver/candles, aggregated onto the candle bars.

A ``FieldSource`` names a silver table, the time column that places a row in a bar, the markets whose
datasets publish its fields, and per field a value expression and how values inside one bar are
aggregated ("sum" or "last" non-null by time). Each published bar (one candle bar: instrument, open time)
gets the aggregate of the source rows with ``open <= time < open + step``; a bar with no such row gets NaN.
A source row at a time without a candle bar is not published (the candle calendar is the dataset's).

The perpetual sources (issue #17):
- silver/funding -> ``funding``: the rates settled inside the bar, summed (a day: the day's total; a
  settlement at 08:00:00 belongs to the bar opening at 08:00). Swaps only.
- silver/derivative_bars -> ``oi`` (open interest in USD, last: the venue's USD figure, else the
  coins times the minute's mark), ``basis`` (last), ``liq_buy``/``liq_sell`` (liquidated size, summed).
  Swaps and futures.

Spot (and option) datasets publish none of these fields: there is no such state for them, and a
``$funding`` asked of a spot dataset fails loudly in Qlib instead of reading silently as NaN.

The order-book source (issue #16): silver/book_features -> ``spread`` (bps), ``imb1``, ``imb5``, ``depth10``,
``depth50`` (the mean of the bid and ask sizes within 10 / 50 bps of mid, venue size units), each a mean over
the bar weighted by each minute's ``book_cover`` (so the bar's time-weighted mean over its covered time),
``microprice`` (last), ``ofi`` (summed) and ``book_cover`` (the covered share of the bar: the minutes' shares
summed x 1 min / bar). Where the table has several channels of one instrument in a minute, the bar reads the
most covered. Spot, swap and future datasets publish them (NaN where no book was recorded).

Publishing notices changes in these tables through their Delta versions, recorded in the dataset's
manifest: a source that only gained rows after the published calendar allows an incremental publish,
anything else (a restated minute, a backfilled settlement) a full rebuild of the dataset
(``appended_after``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable

from pipeline.gold.appends import only_appended
from pipeline.gold.errors import GoldContractError
from pipeline.lake.location import Lake
from pipeline.lake.tables import SILVER_BOOK_FEATURES, SILVER_DERIVATIVE_BARS, SILVER_FUNDING, TableSpec
from pipeline.lake.writer import open_table

AGGREGATIONS = ("sum", "last", "mean", "share")  # mean: weighted by ``weight``; share: sum x row_us / bar


@dataclass(frozen=True)
class FieldSource:
    spec: TableSpec
    time_col: str
    markets: frozenset[str]
    values: tuple[tuple[str, pl.Expr], ...]  # (Qlib field, value of one source row)
    aggregation: tuple[tuple[str, str], ...]  # (Qlib field, "sum" | "last")
    non_negative: tuple[str, ...] = ()  # fields the gold contract holds >= 0
    weight: pl.Expr | None = None  # "mean": each row's weight (None: 1)
    row_us: int = 0  # "share": the span one source row stands for
    prepare: Callable[[pl.LazyFrame], pl.LazyFrame] | None = None  # e.g. one row per instrument and time

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(f for f, _ in self.values)


FUNDING = FieldSource(
    SILVER_FUNDING,
    "funding_time",
    frozenset(("swap",)),
    (("funding", pl.col("funding_rate")),),
    (("funding", "sum"),),
)
DERIVATIVES = FieldSource(
    SILVER_DERIVATIVE_BARS,
    "open_time",
    frozenset(("swap", "future")),
    (
        ("oi", pl.coalesce(pl.col("open_interest_usd"), pl.col("open_interest_ccy") * pl.col("mark_close"))),
        ("basis", pl.col("basis")),
        ("liq_buy", pl.col("liq_buy_volume")),
        ("liq_sell", pl.col("liq_sell_volume")),
    ),
    (("oi", "last"), ("basis", "last"), ("liq_buy", "sum"), ("liq_sell", "sum")),
    non_negative=("oi", "liq_buy", "liq_sell"),
)


def _most_covered_channel(lf: pl.LazyFrame) -> pl.LazyFrame:
    order = ["instrument", "open_time", "book_cover", "messages", "channel"]
    return lf.sort(order, descending=[False, False, True, True, False]).unique(
        ["instrument", "open_time"], keep="first", maintain_order=True
    )


_BOOK_AGGREGATION = (
    ("spread", "mean"), ("imb1", "mean"), ("imb5", "mean"), ("microprice", "last"), ("depth10", "mean"),
    ("depth50", "mean"), ("ofi", "sum"), ("book_cover", "share"),
)  # fmt: skip
BOOK = FieldSource(
    SILVER_BOOK_FEATURES,
    "open_time",
    frozenset(("spot", "swap", "future")),
    (
        ("spread", pl.col("spread_bps")),
        ("imb1", pl.col("imb1_mean")),
        ("imb5", pl.col("imb5_mean")),
        ("microprice", pl.col("microprice")),
        ("depth10", (pl.col("depth10_bid") + pl.col("depth10_ask")) / 2),
        ("depth50", (pl.col("depth50_bid") + pl.col("depth50_ask")) / 2),
        ("ofi", pl.col("ofi")),
        ("book_cover", pl.col("book_cover")),
    ),
    _BOOK_AGGREGATION,
    non_negative=("spread", "imb1", "imb5", "microprice", "depth10", "depth50", "book_cover"),
    weight=pl.col("book_cover"),
    row_us=60_000_000,
    prepare=_most_covered_channel,
)
SOURCES: tuple[FieldSource, ...] = (FUNDING, DERIVATIVES, BOOK)


def sources_for(market: str) -> tuple[FieldSource, ...]:
    return tuple(s for s in SOURCES if market in s.markets)


def fields_for(market: str) -> tuple[str, ...]:
    """The extra Qlib fields a dataset of ``market`` publishes, in a stable order."""
    return tuple(f for s in sources_for(market) for f in s.fields)


def open_sources(lake: Lake, market: str) -> dict[str, DeltaTable | None]:
    """The source tables of ``market``'s fields, each opened once: a publish reads them at these versions."""
    return {s.spec.key: open_table(lake, s.spec) for s in sources_for(market)}


def versions(tables: dict[str, DeltaTable | None]) -> dict[str, int]:
    """The Delta version of each opened source table (-1: the table does not exist)."""
    return {k: t.version() if t is not None else -1 for k, t in tables.items()}


def _agg(field: str, how: str, source: FieldSource | None = None, step_us: int = 0) -> pl.Expr:
    if how == "mean":  # weighted by the row's ``__w``; a bar without values stays null
        x, w = pl.col(field), pl.col("__w").filter(pl.col(field).is_not_null())
        return ((x * pl.col("__w")).sum() / w.sum()).alias(field)
    if how == "share":
        assert source is not None and source.row_us > 0 and step_us > 0
        return _agg(field, "sum") * (source.row_us / step_us)
    if how == "sum":
        # a bar whose rows are all null stays null (NaN), not 0
        return pl.when(pl.col(field).is_not_null().any()).then(pl.col(field).sum()).alias(field)
    if how == "last":
        return pl.col(field).drop_nulls().last().alias(field)
    raise ValueError(f"unknown aggregation {how!r} (use one of {AGGREGATIONS})")


def read_source(
    table: DeltaTable | None, source: FieldSource, venue: str, step_us: int, from_us: int | None
) -> pl.DataFrame:
    """``instrument``, ``t`` (bar open, us) and the source's fields aggregated per bar of ``step_us``, from
    the rows of ``venue`` at or after ``from_us`` (None: all)."""
    schema = {"instrument": pl.String, "t": pl.Int64, **dict.fromkeys(source.fields, pl.Float64)}
    if table is None:
        return pl.DataFrame(schema=schema)
    lf = pl.scan_delta(table).filter(pl.col("venue") == venue)
    if source.prepare is not None:
        lf = source.prepare(lf)
    if from_us is not None:
        cut = datetime.fromtimestamp(from_us / 1e6, UTC)
        lf = lf.filter(pl.col(source.time_col) >= cut)
    us = pl.col(source.time_col).dt.epoch("us")
    return (
        lf.select(
            "instrument",
            us.alias("__us"),
            ((us // step_us) * step_us).alias("t"),
            *(e.cast(pl.Float64).alias(f) for f, e in source.values),
            (source.weight if source.weight is not None else pl.lit(1.0)).cast(pl.Float64).alias("__w"),
        )
        .sort("instrument", "__us")
        .group_by("instrument", "t", maintain_order=True)
        .agg(*(_agg(f, how, source, step_us) for f, how in source.aggregation))
        .collect()
        .cast(schema)  # type: ignore[arg-type]
    )


def with_extra_fields(
    tables: dict[str, DeltaTable | None],
    bars: pl.DataFrame,
    venue: str,
    market: str,
    step_us: int,
    from_us: int | None,
) -> pl.DataFrame:
    """``bars`` (candle bars: instrument, t, ...) with ``fields_for(market)`` joined on (instrument, t);
    NaN where a bar has nothing. ``tables``: ``open_sources(lake, market)``."""
    for source in sources_for(market):
        values = read_source(tables.get(source.spec.key), source, venue, step_us, from_us)
        bars = bars.join(values, on=["instrument", "t"], how="left").with_columns(
            pl.col(f).fill_null(float("nan")) for f in source.fields
        )
    return bars


def validate_extra(bars: pl.DataFrame, market: str, *, table: str) -> None:
    """The extra fields' contract: NaN or finite; the non-negative ones >= 0 (``GoldContractError``)."""
    rules: dict[str, int] = {}
    sample: list[dict[str, object]] = []
    for source in sources_for(market):
        for f in source.fields:
            c = pl.col(f)
            checks = {f"{f} finite or NaN": c.is_nan() | c.is_finite()}
            if f in source.non_negative:
                checks[f"{f} >= 0"] = c.is_nan() | (c >= 0)
            for name, ok in checks.items():
                bad = bars.filter(~ok.fill_null(True))
                if bad.height:
                    rules[name] = bad.height
                    sample += [{"check": name, "instrument": r["instrument"], "t": r["t"], "case": r[f]}
                               for r in bad.head(3).iter_rows(named=True)]  # fmt: skip
    if rules:
        raise GoldContractError(table, rules, bars.height, sample[:5])


def appended_after(
    lake: Lake, spec: TableSpec, time_col: str, since_version: int | None, venue: str, first_us: int
) -> bool:
    """True when ``spec`` changed since ``since_version`` only by adding files of ``venue`` whose rows all
    fall at or after ``first_us`` (the first bar a publish has not written yet). Read from the Delta log:
    a removed file (a merge restating rows), an older row, an unknown version mean: rebuild in full."""
    if since_version is None:
        return False
    if since_version == -1:
        return open_table(lake, spec) is None  # the table still does not exist: nothing was added
    fresh = pl.col("min_us").is_not_null() & (pl.col("min_us") >= first_us)
    return only_appended(lake, spec, since_version, lambda t: _files(t, time_col, venue), fresh)


def _files(table: DeltaTable, time_col: str, venue: str) -> pl.DataFrame:
    actions = pl.DataFrame(pa.table(table.get_add_actions(flatten=True)))
    if f"min.{time_col}" not in actions.columns:
        return actions.select("path", pl.lit(None, pl.Int64).alias("min_us"))
    return actions.filter(pl.col("partition.venue") == venue).select(
        pl.col("path"), pl.col(f"min.{time_col}").cast(pl.Datetime("us", "UTC")).dt.epoch("us").alias("min_us")
    )
