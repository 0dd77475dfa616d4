"""silver/funding: one settled funding rate per (venue, instrument, funding_time).

Two inputs meet here:
- bronze/funding, the venues' REST history (``backfill --kind funding``): settled by definition. OKX's
  ``realizedRate`` is the rate charged (``fundingRate`` where a venue leaves it empty); Deribit's is
  ``interest_1h``.
- bronze/derivatives rows of the ``funding-rate`` channel: the stream's ``funding_rate`` for ``funding_time``
  is a prediction until that time passes; the last one pushed (by exchange time, then receive time) is
  taken as settled once ``funding_time <= H``, the run's horizon (now less the run's lateness, as for bars).
  Deribit's ticker carries ``current_funding`` without a funding time: Deribit settlements come from REST.

The REST row wins over the stream's for the same key, whichever arrives first: a key is decided again
from every bronze row it has whenever new data touches it. A run decides (a) the keys whose funding time
passed since the last run's horizon (the stream's predictions that became settled), (b) keys of stream
rows that arrived after their funding time was already behind the horizon (late data, a capture import),
(c) keys of new REST rows; (b) and (c) come from the bronze commits since the watermarks.

``interval_hours`` is the time since the instrument's previous settlement in silver (never assumed: OKX
swaps settle every 8, 4 or 1 h and can change); an instrument's first settlement keeps the interval the
REST series gave it (the settlement before the backfill window), else null. A settlement that arrives
between two others changes its successor's interval, which is rewritten with it.

Contract (``contracts.silver.SilverFunding``): |rate| within the cap (OKX's maxFundingRate/minFundingRate
from the stream's raw column when streamed, else ``VENUE_CAPS``), funding times on the instrument's
schedule, unique keys; failing settlements go to silver/quarantine with the rule. A few settlements a day
make one bad one a large share, so a failing share never fails the table here: rows are quarantined and
reported, the rest written.

Writes are keyed (``writes.upsert``): a re-run over the same bronze writes nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from contracts.silver import SilverFunding
from pipeline.lake.tables import BRONZE_DERIVATIVES, BRONZE_FUNDING, FUNDING_KEY, SILVER_FUNDING, TableSpec
from pipeline.silver import files, writes
from pipeline.silver.handles import Handles
from pipeline.silver.report import SilverReport
from pipeline.silver.validate import QUARANTINE_POLARS, Checked, check
from pipeline.silver.writes import Watermark, Written

STREAM_CHANNELS = ("funding-rate",)  # bronze/derivatives channels whose funding_rate is for funding_time
H_FUNDING = "horizon/funding"
W_DERIVATIVES = "funding/bronze/derivatives"  # this table's own version mark (derivative bars keep theirs)
KEY = list(FUNDING_KEY)
HOUR_US = 3_600_000_000
# Fallback caps per settlement where the stream did not send the instrument's own (OKX sends
# maxFundingRate/minFundingRate on every funding-rate push). OKX's help page "Introduction to perpetual swap
# funding fee" (okx.com/help/360053909272): BTC 0.375 %, the majors below 0.75 %, DOGE 3 %, other
# currencies 1.5 %; OKX adjusts them without notice, so an instrument's streamed cap always wins.
OKX_DEFAULT_CAP = 0.015
OKX_CAPS: dict[str, float] = {"BTC": 0.00375, "DOGE": 0.03} | dict.fromkeys(
    ("ADA", "AVAX", "BCH", "DOT", "EOS", "ETC", "ETH", "FIL", "LINK", "LTC", "TRX", "XRP"), 0.0075
)
# Deribit expresses its cap as an 8-hour rate (0.5 % for its perpetuals, support.deribit.com "Funding
# Specifications") and pays it pro rata: an hourly settlement's cap is an eighth of it.
DERIBIT_CAP_8H = 0.005

_KEY_COLS = ["venue", "instrument", "channel", "funding_rate", "funding_time"]
_STREAM_COLS = ["venue", "instrument", "channel", "exchange_ts", "receive_ts", "funding_rate", "funding_time", "raw"]


def default_cap(venue: str, instrument: str, interval_hours: float | None) -> float:
    """The documented cap of a settlement when the venue did not send the instrument's own."""
    if venue == "deribit":
        return DERIBIT_CAP_8H * (interval_hours / 8 if interval_hours else 1.0)  # unknown interval: the 8 h cap
    return OKX_CAPS.get(instrument.split("-")[0], OKX_DEFAULT_CAP)


@dataclass
class FundingPass:
    """What the funding step of one silver pass produced (for the run's report and watermarks)."""

    checked: Checked
    written: Written
    more: bool  # a bronze table has more new commits than this pass read
    marks: dict[str, Watermark]


def _stream_rows(lf: pl.LazyFrame) -> pl.LazyFrame:
    return lf.filter(
        pl.col("channel").is_in(STREAM_CHANNELS)
        & pl.col("funding_time").is_not_null()
        & pl.col("funding_rate").is_not_null()
    )


def _read(
    tables: Handles, spec: TableSpec, lo: dt.datetime | None, hi: dt.datetime | None, cols: list[str] | None
) -> pl.LazyFrame:
    """Rows of ``spec`` with ``lo < funding_time <= hi`` (files chosen by their statistics)."""
    lo_us = lo + dt.timedelta(microseconds=1) if lo is not None else None
    hi_us = hi + dt.timedelta(microseconds=1) if hi is not None else None
    fs = files.overlapping(tables.files(spec), "funding_time", lo_us, hi_us)
    a = fs.actions
    if "null_count.funding_time" in a.columns:  # files of other channels only (open interest...): nothing here
        a = a.filter(~(pl.col("null_count.funding_time") == pl.col("num_records")).fill_null(False))
        fs = files.FileSet(fs.spec, fs.table_uri, a, fs.version)
    lf = files.scan(tables.lake, fs, cols)
    if lo is not None:
        lf = lf.filter(pl.col("funding_time") > lo)
    if hi is not None:
        lf = lf.filter(pl.col("funding_time") <= hi)
    return lf


def _keys_range(keys: pl.DataFrame) -> tuple[dt.datetime | None, dt.datetime | None]:
    if keys.height == 0:
        return None, None
    lo = keys["funding_time"].min()
    hi = keys["funding_time"].max()
    assert isinstance(lo, dt.datetime) and isinstance(hi, dt.datetime)
    return lo - dt.timedelta(microseconds=1), hi


def _predictions(stream: pl.DataFrame) -> pl.DataFrame:
    """Per key: the last streamed rate and the instrument's own cap from the same push where sent."""
    caps = pl.max_horizontal(
        pl.col("raw").str.json_path_match("$.maxFundingRate").cast(pl.Float64, strict=False).abs(),
        pl.col("raw").str.json_path_match("$.minFundingRate").cast(pl.Float64, strict=False).abs(),
    )
    return (
        stream.unique()
        .with_columns(stream_cap=caps)
        .sort("exchange_ts", "receive_ts", "funding_rate", nulls_last=False)
        .group_by(KEY, maintain_order=True)
        .agg(stream_rate=pl.col("funding_rate").last(), stream_cap=pl.col("stream_cap").drop_nulls().last())
    )


def _rest(rest: pl.DataFrame) -> pl.DataFrame:
    """Per key: the REST row (the latest received, where a key was fetched twice)."""
    return (
        rest.sort("receive_ts", "funding_time")
        .group_by(KEY, maintain_order=True)
        .agg(
            rest_rate=pl.coalesce("realized_rate", "funding_rate").last(),
            given_interval=pl.col("interval_hours").last(),
        )
    )


def decide(rest: pl.DataFrame, stream: pl.DataFrame, horizon: dt.datetime) -> pl.DataFrame:
    """The settlement of every key in ``rest`` or ``stream``: the REST rate where there is one, else the
    stream's last prediction if its funding time is at or before ``horizon`` (keys after it are left out).
    Columns: KEY, funding_rate, source, stream_cap, given_interval."""
    r, s = _rest(rest), _predictions(stream)
    both = r.join(s, on=KEY, how="full", coalesce=True)
    return (
        both.with_columns(
            funding_rate=pl.coalesce("rest_rate", "stream_rate"),
            source=pl.when(pl.col("rest_rate").is_not_null()).then(pl.lit("rest")).otherwise(pl.lit("stream")),
        )
        .filter((pl.col("source") == "rest") | (pl.col("funding_time") <= horizon))
        .select(*KEY, "funding_rate", "source", "stream_cap", "given_interval")
    )


def with_intervals(decided: pl.DataFrame, existing: pl.DataFrame) -> pl.DataFrame:
    """``decided`` laid over ``existing`` (silver's rows of the same instruments), every row's interval
    recomputed as the hours since the previous settlement of its instrument; the first keeps the interval
    it was given (REST series, or what silver held). Rows in SILVER_FUNDING's columns, with ``stream_cap``."""
    old = existing.select(
        *KEY, "funding_rate", "source", pl.lit(None, pl.Float64).alias("stream_cap"),
        pl.col("interval_hours").alias("given_interval"), pl.col("rate_cap").alias("old_cap"),
    )  # fmt: skip
    new = decided.with_columns(old_cap=pl.lit(None, pl.Float64))
    rows = pl.concat([old.join(new, on=KEY, how="anti"), new], how="vertical_relaxed")
    step = pl.col("funding_time").diff().over("venue", "instrument")
    return rows.sort(KEY).with_columns(
        interval_hours=pl.coalesce(step.dt.total_microseconds() / HOUR_US, pl.col("given_interval"))
    )


def _caps(rows: pl.DataFrame) -> pl.DataFrame:
    """``rate_cap``: the streamed cap of the key, else the cap silver checked before, else the venue default."""
    default = pl.struct("venue", "instrument", "interval_hours").map_elements(
        lambda r: default_cap(r["venue"], r["instrument"], r["interval_hours"]), return_dtype=pl.Float64
    )
    return rows.with_columns(rate_cap=pl.coalesce("stream_cap", "old_cap", default))


def settle(
    tables: Handles,
    marks: dict[str, Watermark],
    horizon: dt.datetime,
    *,
    run_id: str,
    detected: dt.datetime,
    max_rows: int | None = None,
) -> FundingPass:
    """One pass of silver/funding (see the module doc). Returns what to write to quarantine and the report,
    and the watermarks to store with the pass."""
    lake = tables.lake
    h_old = marks.get(H_FUNDING, Watermark()).horizon
    f_all, d_all = tables.files(BRONZE_FUNDING), tables.files(BRONZE_DERIVATIVES)
    f_new = files.files_since(lake, f_all, marks.get(BRONZE_FUNDING.key, Watermark()).version, max_rows)
    d_new = files.files_since(lake, d_all, marks.get(W_DERIVATIVES, Watermark()).version, max_rows)
    more = any(
        fs.version is not None and al.version is not None and fs.version < al.version
        for fs, al in ((f_new, f_all), (d_new, d_all))
    )
    new_marks = {
        BRONZE_FUNDING.key: Watermark(f_new.version),
        W_DERIVATIVES: Watermark(d_new.version),
        H_FUNDING: Watermark(horizon=max(horizon, h_old) if h_old is not None else horizon),
    }
    # (a) predictions whose funding time passed since the last horizon
    window = _stream_rows(_read(tables, BRONZE_DERIVATIVES, h_old, horizon, _STREAM_COLS)).collect()
    # (b) late stream rows and (c) new REST rows: their keys are decided again from all their bronze rows
    late = (
        _stream_rows(files.scan(lake, d_new, _KEY_COLS)).filter(pl.col("funding_time") <= h_old).select(KEY).collect()
        if h_old is not None and d_new.actions.height
        else pl.DataFrame(schema={k: window.schema[k] for k in KEY})
    )
    fresh = files.scan(lake, f_new, KEY).collect()
    keys = pl.concat([window.select(KEY), late, fresh.select(KEY)]).unique()
    if keys.height == 0:
        nothing = Checked(SILVER_FUNDING.key, pl.DataFrame(), pl.DataFrame(schema=QUARANTINE_POLARS))
        return FundingPass(nothing, Written(), more, new_marks)
    lo, hi = _keys_range(keys)
    extra = keys.join(window.select(KEY).unique(), on=KEY, how="anti")
    stream = window
    if extra.height:
        e_lo, e_hi = _keys_range(extra)
        found = _stream_rows(_read(tables, BRONZE_DERIVATIVES, e_lo, e_hi, _STREAM_COLS)).collect()
        stream = pl.concat([window, found.join(extra, on=KEY, how="semi")])
    rest = _read(tables, BRONZE_FUNDING, lo, hi, None).collect().join(keys, on=KEY, how="semi")
    decided = decide(rest, stream, horizon)
    instruments = decided.select("venue", "instrument").unique()
    existing = (
        files.scan(lake, tables.files(SILVER_FUNDING))
        .join(instruments.lazy(), on=["venue", "instrument"], how="semi")
        .collect()
    )
    rows = _caps(with_intervals(decided, existing)).select(SILVER_FUNDING.schema.names)
    res = check(
        SilverFunding.to_schema(), writes.conform(rows, SILVER_FUNDING), "silver/funding",
        run_id=run_id, detected=detected, fail_share=1.0,
    )  # fmt: skip
    # a failing row that silver already holds stays as it was (the quarantine says why it was not updated)
    written = writes.upsert(tables, SILVER_FUNDING, res.good, existing, FUNDING_KEY)
    return FundingPass(res, written, more, new_marks)


def funding_step(
    tables: Handles,
    marks: dict[str, Watermark],
    new_marks: dict[str, Watermark],
    report: SilverReport,
    horizon: dt.datetime,
    max_rows: int | None,
) -> tuple[Checked, bool]:
    """``settle`` inside a silver pass: counts and failures into ``report``, watermarks into ``new_marks``;
    returns the quarantine rows (with the pass's other checks) and whether more bronze is waiting."""
    done = settle(tables, marks, horizon, run_id=report.run_id, detected=report.now, max_rows=max_rows)
    report.failures += done.checked.failures
    report.count(SILVER_FUNDING.key, done.written.inserted + done.written.updated, done.written.updated)
    new_marks.update(done.marks)
    return done.checked, done.more
