"""One silver run: read what bronze gained since the watermarks, validate, write silver, advance the
watermarks (last, so a crash before it makes the next run redo the same keyed, idempotent work)."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict, cast

import polars as pl

from contracts import bronze as bronze_contracts
from contracts.silver import SilverCandles, SilverQuoteBars
from pipeline.errors import ConfigError
from pipeline.lake.location import Lake
from pipeline.lake.schemas import TIMEFRAME_MS, TIMEFRAMES
from pipeline.lake.tables import (
    BRONZE_CANDLES,
    BRONZE_QUOTES,
    BRONZE_TRADES,
    CANDLE_KEY,
    QUOTE_BAR_KEY,
    SILVER_CANDLES,
    SILVER_QUOTE_BARS,
    SILVER_TRADES,
    TableSpec,
)
from pipeline.silver import candles, files, trades, writes
from pipeline.silver.books.step import BookSettings, books_step
from pipeline.silver.derivative_bars import derivative_bars_step
from pipeline.silver.funding import funding_step
from pipeline.silver.handles import Handles
from pipeline.silver.incremental import DAY, MINUTE, WorkSet, floor_to, rescan, touched_buckets, work_set
from pipeline.silver.quote_bars import quote_bars_1m
from pipeline.silver.report import SilverReport
from pipeline.silver.validate import Checked, RuleFailure, check, good_rows
from pipeline.silver.writes import Watermark

H_CANDLES, H_QUOTES = "horizon/candles", "horizon/quote_bars"


def _read_new(
    tables: Handles, spec: TableSpec, marks: dict[str, Watermark], report: SilverReport, max_rows: int | None
) -> tuple[files.FileSet, pl.DataFrame, bool]:
    """The table's new files (at most ``max_rows`` rows' worth of commits), their rows, and whether the
    table holds more new commits than this pass takes."""
    lake = tables.lake
    listed = tables.files(spec)
    fs = files.files_since(lake, listed, marks.get(spec.key, Watermark()).version, max_rows)
    more = fs.version is not None and listed.version is not None and fs.version < listed.version
    drift = files.schema_drift(tables.table(spec), spec)
    if drift:  # the table no longer has the promised shape: fail it before reading a row
        report.failures.append(
            RuleFailure(spec.key, "schema:drift", fs.rows, fs.rows, [{"problem": d} for d in drift], fatal=True)
        )
        return fs, files.scan(lake, fs.without(fs)).collect(), False
    return fs, files.scan(lake, fs).collect(), more


def _horizon(h_new: dt.datetime, batches: list[tuple[pl.DataFrame, str, bool]]) -> dt.datetime:
    """A pass's publish horizon: ``h_new``, or while a table has more backlog than the pass read, the last
    whole minute its batch reached. Bars after it would only be restated by the next pass (which still
    restates exactly any bar a later commit's trades fall in: late data)."""
    h = h_new
    for batch, ts_col, more in batches:
        if more and batch.height:
            h = min(h, floor_to(cast(dt.datetime, batch[ts_col].max()), MINUTE))
    return h


def candle_step(
    tables: Handles,
    ws: WorkSet,
    h_old,
    new_trades: pl.LazyFrame,
    before: files.FileSet,
    new_bars_src: pl.DataFrame,
    candle_files: files.FileSet,
    candle_schema,
    report: SilverReport,
    before_write=lambda: None,
    upsert: writes.Upsert = writes.upsert,
) -> None:
    """1m bars of the work set, their rollups, diffed against silver/candles and written (``upsert``: how;
    the Dask fan-out stages the files instead of committing them)."""
    h_new = ws.hi
    lake = tables.lake
    # Silver trades of the work set's ranges, from each file once: the window and the late range can meet
    # the same file (the last run stored trades on both sides of its horizon), and a scan reads files whole.
    old = files.scan(lake, files.overlapping_any(before, "exchange_ts", ws.ranges()))
    cols = trades.CANDLE_COLUMNS
    rows = pl.concat([old.select(cols), new_trades.select(cols)])
    # Streaming: the new trades are a filter over the bronze batch, aggregated without being materialized.
    trade_bars = candles.trade_bars_1m(ws.keep(rows, "exchange_ts")).collect(engine="streaming")
    exch_scan = pl.concat([new_bars_src.lazy(), rescan(tables, BRONZE_CANDLES, "open_time", ws, candle_files)])
    exch_rows = good_rows(candle_schema, ws.keep(exch_scan, "open_time").collect())
    exch = candles.exchange_bars_1m(exch_rows.lazy()).collect()
    b1 = candles.combine_1m(trade_bars, exch.select(trade_bars.columns))
    b1 = b1.filter(pl.col("close_time") <= h_new)
    # Existing bars of every timeframe over the touched days (rollups need whole buckets up to 1d).
    existing = (
        pl.concat(
            [writes.existing_rows(tables, SILVER_CANDLES, "open_time", lo, hi, ws.only) for lo, hi in ws.ranges(DAY)]
        ).unique(list(CANDLE_KEY), maintain_order=True)
        if ws.ranges(DAY)
        else pl.DataFrame()
    )
    if existing.height == 0:
        existing = pl.DataFrame(schema=writes.polars_schema(SILVER_CANDLES))
    e1 = existing.filter(pl.col("timeframe") == "1m").select(b1.columns)
    m1 = pl.concat([e1.join(b1, on=["venue", "instrument", "open_time"], how="anti"), b1])
    out = [b1]
    lower = h_old if h_old is not None else dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    for tf in TIMEFRAMES[1:]:
        step = dt.timedelta(milliseconds=TIMEFRAME_MS[tf])
        touched = b1.select("venue", "instrument", b=candles.bucket("open_time", tf)).unique()
        m = m1.with_columns(b=candles.bucket("open_time", tf))
        closing = (pl.col("b") + step > lower) & (pl.col("b") + step <= h_new)
        m = m.join(touched.with_columns(t=pl.lit(True)), on=["venue", "instrument", "b"], how="left")
        m = m.filter(closing | pl.col("t").fill_null(False)).drop("b", "t")
        rolled = candles.rollup(m, tf).filter(pl.col("close_time") <= h_new).select(b1.columns)
        # Buckets with no 1m bar at all take the exchange's own bar of this timeframe (e.g. daily history),
        # never replacing a bar silver already derived from trades.
        ex_tf = candles.exchange_bars(exch_rows.lazy(), tf).filter(pl.col("close_time") <= h_new).collect()
        if ex_tf.height:
            derived = existing.filter((pl.col("timeframe") == tf) & (pl.col("source") != "exchange"))
            rolled = candles.fill_missing(rolled, ex_tf.select(b1.columns), keep=derived)
        out.append(rolled)
    bars = pl.concat(out)
    _check_own_output(SilverCandles.to_schema(), bars, "silver/candles", report)
    before_write()
    done = upsert(tables, SILVER_CANDLES, bars, existing, CANDLE_KEY)
    report.count("silver/candles", done.inserted + done.updated, done.updated)


def quote_bar_step(
    tables: Handles,
    ws: WorkSet,
    new_good: pl.DataFrame,
    qfiles: files.FileSet,
    schema,
    report: SilverReport,
    upsert: writes.Upsert = writes.upsert,
) -> None:
    old = rescan(tables, BRONZE_QUOTES, "exchange_ts", ws, qfiles)
    scan = pl.concat([ws.keep(new_good.lazy(), "exchange_ts"), ws.keep(old, "exchange_ts")])
    rows = good_rows(schema, scan.collect())
    bars = quote_bars_1m(rows.lazy()).filter(pl.col("close_time") <= ws.hi).collect()
    _check_own_output(SilverQuoteBars.to_schema(), bars, "silver/quote_bars", report)
    existing = [writes.existing_rows(tables, SILVER_QUOTE_BARS, "open_time", lo, hi, ws.only) for lo, hi in ws.ranges()]
    existing_df = pl.concat(existing) if existing else pl.DataFrame(schema=writes.polars_schema(SILVER_QUOTE_BARS))
    done = upsert(tables, SILVER_QUOTE_BARS, bars, existing_df, QUOTE_BAR_KEY)
    report.count("silver/quote_bars", done.inserted + done.updated, done.updated)


def _check_own_output(schema, bars: pl.DataFrame, table: str, report: SilverReport) -> None:
    res = check(
        schema,
        writes.conform(bars, SILVER_CANDLES if table == "silver/candles" else SILVER_QUOTE_BARS),
        table,
        run_id=report.run_id,
        detected=report.now,
        fail_share=0.0,
    )
    if res.failures:  # our own output breaking its contract is a bug: fail the table, write nothing
        from pipeline.silver.report import ContractFailed

        raise ContractFailed([f if f.fatal else type(f)(**{**f.__dict__, "fatal": True}) for f in res.failures])


DEFAULT_MAX_ROWS = 20_000_000  # new bronze rows a pass reads per table: ~250 bytes of memory each at peak


def run_silver(
    lake: Lake,
    *,
    lateness_secs: float = 60.0,
    now_ms: int | None = None,
    fail_share: float = 0.05,
    skew_secs: float = 300.0,
    run_id: str | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    progress: Callable[[SilverReport], object] | None = None,
    restate_candles: bool = False,
    books: BookSettings | None = None,
) -> SilverReport:
    """Bring silver up to date with bronze. Returns what it did; table-level contract failures are in
    ``report.fatal`` (their tables are not written and their watermarks stay), ``raise_for_fatal()`` raises.

    A backlog larger than ``max_rows`` new rows in a bronze table (a first run over weeks of stream, a big
    backfill) is done in passes of whole commits holding at most that many rows each, every pass committed
    with its watermarks: memory stays bounded and a crash keeps the passes done. ``progress(report)`` is
    called after each pass that leaves more to do (``report.progress_line()`` says how far it got).

    ``restate_candles``: recompute every published bar from silver/trades (and the exchange's candles) and
    rewrite the ones that differ, e.g. after an upgrade that fixed how bars are computed. Reads the whole
    silver/trades history once (streamed into 1m bars) and holds every stored bar in memory."""
    if lateness_secs < 0:
        raise ConfigError(
            "lateness_secs", f"{lateness_secs} is negative", "give the seconds to wait after a bar closes, e.g. 60"
        )
    if not 0 <= fail_share <= 1:
        raise ConfigError("fail_share", f"{fail_share} is not a share", "give a number between 0 and 1, e.g. 0.05")
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
        raise ConfigError(
            "max_rows",
            f"{max_rows!r} is not a positive whole number",
            "give the most new bronze rows one pass may read, e.g. 20000000",
        )
    started = time.perf_counter()
    now = dt.datetime.fromtimestamp((now_ms if now_ms is not None else time.time_ns() // 1_000_000) / 1000, dt.UTC)
    h_new = floor_to(now - dt.timedelta(seconds=lateness_secs), MINUTE)
    report = SilverReport(run_id or uuid.uuid4().hex[:12], now, h_new)
    ctx = _Pass(
        lake,
        now,
        h_new,
        {"skew_secs": skew_secs},
        _CheckArgs(run_id=report.run_id, detected=now, fail_share=fail_share),
        max_rows,
        restate_candles,
        books,
    )
    while _one_pass(ctx, report) and not report.fatal:
        if progress is not None:
            progress(report)
    for f in report.failures:
        if not f.fatal:
            key = f"{f.table} {f.rule}"
            report.quarantined[key] = report.quarantined.get(key, 0) + f.failed_rows
    report.seconds = time.perf_counter() - started
    return report


class _CheckArgs(TypedDict):
    """The arguments every contract check of a pass shares (``validate.check``'s keywords)."""

    run_id: str
    detected: dt.datetime
    fail_share: float


@dataclass(frozen=True)
class _Pass:
    lake: Lake
    now: dt.datetime
    h_new: dt.datetime
    window: dict[str, float]
    kw: _CheckArgs
    max_rows: int
    restate_candles: bool = False
    books: BookSettings | None = None  # books rebuilt into silver/book_* (None: the defaults)


def _one_pass(ctx: _Pass, report: SilverReport) -> bool:
    """Read at most ``ctx.max_rows`` new rows per bronze table, validate, write silver, then the watermarks.
    True when a table has more new commits than this pass read (and it made progress)."""
    now, h_new, window, kw = ctx.now, ctx.h_new, ctx.window, ctx.kw
    report.passes += 1
    tables = Handles(ctx.lake)  # every table opened once per pass, the handle handed on
    marks = writes.read_watermarks(tables)
    new_marks = dict(marks)

    earlier = len(report.failures)  # failures of earlier passes are not this pass's drift
    tfiles, tbatch, t_more = _read_new(tables, BRONZE_TRADES, marks, report, ctx.max_rows)
    # Which rows are new is found while the batches are validated; used if no trade fails its contract.
    early = trades.new_rows_soon(tables, tbatch) if tbatch.height else None
    cfiles, cbatch, c_more = _read_new(tables, BRONZE_CANDLES, marks, report, ctx.max_rows)
    qfiles, qbatch, q_more = _read_new(tables, BRONZE_QUOTES, marks, report, ctx.max_rows)
    drifted = {f.table for f in report.failures[earlier:]}
    # The dedupe finds the keys seen twice anyway: it decides the rule that their copies agree on the way.
    decided = {bronze_contracts.TRADE_ID_CONSISTENT: lambda: early.result().consistent} if early is not None else None
    t_ok = check(bronze_contracts.trades_schema(now, **window), tbatch, "bronze/trades", decided=decided, **kw)
    c_schema = bronze_contracts.candles_schema(now, **window)
    c_ok = check(c_schema, cbatch, "bronze/candles", **kw)
    q_schema = bronze_contracts.quotes_schema(now, **window)
    q_ok = check(q_schema, qbatch, "bronze/quotes", **kw)
    checked: list[Checked] = [t_ok, c_ok, q_ok]
    for spec, fs, res in ((BRONZE_TRADES, tfiles, t_ok), (BRONZE_CANDLES, cfiles, c_ok), (BRONZE_QUOTES, qfiles, q_ok)):
        report.bronze_rows[spec.key] = report.bronze_rows.get(spec.key, 0) + fs.rows
        report.good[spec.key] = report.good.get(spec.key, 0) + res.good.height
        report.failures += res.failures

    t_bad = bool(t_ok.fatal) or BRONZE_TRADES.key in drifted
    c_bad = bool(c_ok.fatal) or BRONZE_CANDLES.key in drifted
    if not (t_bad or c_bad):
        before = tables.files(SILVER_TRADES)
        # The trades are written on a thread while the candles are computed; the candles are only written
        # once the trades are committed (a failed trade write still stops the run before any candle).
        keep = early.result().keep if early is not None and t_ok.good is tbatch else None
        promoted = trades.promote(tables, t_ok.good, keep=keep, background=True)
        try:
            # Restating: the first pass recomputes every bar up to its horizon, as a first run would.
            h_old = None if ctx.restate_candles and report.passes == 1 else marks.get(H_CANDLES, Watermark()).horizon
            h = _horizon(h_new, [(t_ok.good, "exchange_ts", t_more), (c_ok.good, "open_time", c_more)])
            touched = pl.concat([touched_buckets(t_ok.good, "exchange_ts"), touched_buckets(c_ok.good, "open_time")])
            ws = work_set(touched, h_old, h)
            if not ws.empty:
                candle_step(
                    tables, ws, h_old, promoted.inserted, before, c_ok.good, cfiles, c_schema, report, promoted.wait
                )
        finally:
            promoted.wait()
        report.count("silver/trades", promoted.rows)
        report.duplicates += promoted.duplicates
        new_marks[BRONZE_TRADES.key] = Watermark(tfiles.version)
        new_marks[BRONZE_CANDLES.key] = Watermark(cfiles.version)
        new_marks[H_CANDLES] = Watermark(horizon=ws.hi)
    if not (q_ok.fatal or BRONZE_QUOTES.key in drifted):
        h = _horizon(h_new, [(q_ok.good, "exchange_ts", q_more)])
        ws_q = work_set(touched_buckets(q_ok.good, "exchange_ts"), marks.get(H_QUOTES, Watermark()).horizon, h)
        if not ws_q.empty:
            quote_bar_step(tables, ws_q, q_ok.good, qfiles, q_schema, report)
        new_marks[BRONZE_QUOTES.key] = Watermark(qfiles.version)
        new_marks[H_QUOTES] = Watermark(horizon=ws_q.hi)

    f_checked, f_more = funding_step(tables, marks, new_marks, report, h_new, ctx.max_rows)
    checked.append(f_checked)
    db_checked, db_more = derivative_bars_step(
        tables, marks, new_marks, report, h_new, max_rows=ctx.max_rows, window=window, kw=kw
    )
    checked += db_checked
    b_checked, b_more = books_step(tables, new_marks, report, ctx.books or BookSettings(), ctx.max_rows)
    checked.append(b_checked)
    quarantine = pl.concat([c.quarantine for c in checked])
    report.count("silver/quarantine", writes.quarantine(tables, quarantine))
    if new_marks != marks:
        writes.write_watermarks(tables, new_marks, report.run_id, now)
    report.watermarks = {k: v.version for k, v in new_marks.items() if v.version is not None}
    return (t_more or c_more or q_more or f_more or db_more or b_more) and new_marks != marks
