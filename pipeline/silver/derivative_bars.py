"""bronze/derivatives + bronze/liquidations -> silver/derivative_bars: 1-minute bars of a swap's or future's
derivatives state.

Per (venue, instrument, minute): mark open/high/low/close, the index close, basis = mark_close /
index_close - 1 (where both exist in the minute), open interest (last, each unit the venue sent), the
predicted funding rate (last ``funding_rate``: OKX's funding-rate channel, Deribit's ticker
``current_funding``) and the liquidation orders' buy/sell sizes and counts.

The index of an instrument is the instrument's own ``index_price`` where its rows carry one (Deribit
tickers), else the last price of its underlying index's rows (market "index"): OKX index-tickers
``BTC-USDT`` for BTC-USDT-SWAP and BTC-USDT-250328, Deribit ``deribit_price_index.eth_usd`` for
ETH-PERPETUAL. Because an index row changes the bars of every instrument on that index, the work set
(``pipeline.silver.incremental``) is kept per (venue, underlying index, minute): a late index row
restates exactly the minutes it falls in, for the instruments of its index. Options are left out (their
marks are in silver/quote_bars, in the coin, where a basis against the USD index means nothing).

Incremental like the quote bars: the minutes that closed since the last horizon plus the minutes new
bronze rows touched behind it, each recomputed from all of its bronze rows; keyed writes
(``writes.upsert``), so a second run over the same bronze writes nothing. Bronze rows that fail their
contract go to silver/quarantine (and are left out of every later rescan); bars that fail
``contracts.silver.SilverDerivativeBars`` too, with the rule.

Ties: "first"/"last" order rows by (exchange_ts, receive_ts, channel, then the values), so a bar does not
depend on the order files were read in; a row stored twice byte for byte counts once.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

import polars as pl

from contracts import bronze as bronze_contracts
from contracts.silver import DERIVATIVE_BAR_MARKETS, SilverDerivativeBars
from pipeline.lake.tables import (
    BRONZE_DERIVATIVES,
    BRONZE_LIQUIDATIONS,
    DERIVATIVE_BAR_KEY,
    SILVER_DERIVATIVE_BARS,
    TableSpec,
)
from pipeline.silver import files, writes
from pipeline.silver.candles import UTC_US, bucket
from pipeline.silver.handles import Handles
from pipeline.silver.incremental import MINUTE, WorkSet, floor_to, rescan, work_set
from pipeline.silver.report import SilverReport
from pipeline.silver.validate import Checked, RuleFailure, check, good_rows
from pipeline.silver.writes import Watermark
from pipeline.venues.deribit_derivatives import index_name as deribit_index

H_BARS = "horizon/derivative_bars"
INDEX_MARKET = "index"
GROUP = "__group"  # the underlying index a row belongs to (its own name for index rows)
_ORDER = [
    "exchange_ts", "receive_ts", "channel", "mark_price", "index_price", "funding_rate",
    "open_interest", "open_interest_ccy", "open_interest_usd",
]  # fmt: skip
_LIQ_ORDER = ["exchange_ts", "receive_ts", "side", "price", "size"]
# One liquidation as the venue reported it. OKX sends liquidation-orders per instType, so every connection (or
# shard) carrying swaps receives each one: the copies differ only in receive_ts and source.
LIQUIDATION_IDENTITY = ["venue", "market", "instrument", "side", "price", "size", "exchange_ts", "raw"]


def underlying(venue: str, market: str, instrument: str) -> str:
    """The index an instrument is priced against (an index row: itself). OKX subscribes index-tickers by the
    first two parts of the instrument id (``okx._arg``); Deribit names it ``deribit_derivatives.index_name``."""
    if market == INDEX_MARKET:
        return instrument
    if venue == "okx":
        return "-".join(instrument.split("-")[:2])
    if venue == "deribit":
        return deribit_index(instrument)
    return instrument


def _with_group(rows: pl.DataFrame) -> pl.DataFrame:
    names = rows.select("venue", "market", "instrument").unique()
    names = names.with_columns(
        pl.Series(GROUP, [underlying(*r) for r in names.iter_rows()], dtype=pl.String),
    )
    return rows.join(names, on=["venue", "market", "instrument"], how="left")


def _last(col: str) -> pl.Expr:
    return pl.col(col).drop_nulls().last()


def bars_1m(derivatives: pl.DataFrame, liquidations: pl.DataFrame) -> pl.DataFrame:
    """1m bars (SILVER_DERIVATIVE_BARS' columns) from bronze rows in any order: derivatives rows of swaps,
    futures and their indexes, liquidation rows of swaps and futures."""
    # (the group join does not keep row order: sort after it)
    d = _with_group(derivatives.unique().with_columns(open_time=bucket("exchange_ts", "1m"))).sort(_ORDER)
    keys = ["venue", "instrument", "open_time"]
    own = (
        d.filter(pl.col("market").is_in(DERIVATIVE_BAR_MARKETS))
        .group_by(*keys, maintain_order=True)
        .agg(
            market=pl.col("market").first(),
            group=pl.col(GROUP).first(),
            mark_open=pl.col("mark_price").drop_nulls().first(),
            mark_high=pl.col("mark_price").max(),
            mark_low=pl.col("mark_price").min(),
            mark_close=_last("mark_price"),
            own_index=_last("index_price"),
            open_interest=_last("open_interest"),
            open_interest_ccy=_last("open_interest_ccy"),
            open_interest_usd=_last("open_interest_usd"),
            funding_rate=_last("funding_rate"),
        )
    )
    index = (
        d.filter(pl.col("market") == INDEX_MARKET)
        .group_by("venue", "instrument", "open_time", maintain_order=True)
        .agg(underlying_index=_last("index_price"))
        .rename({"instrument": "group"})
    )
    side = pl.col("side")
    liq = (
        _with_group(
            liquidations.unique(subset=LIQUIDATION_IDENTITY).filter(pl.col("market").is_in(DERIVATIVE_BAR_MARKETS))
        )
        .with_columns(open_time=bucket("exchange_ts", "1m"))
        .sort(_LIQ_ORDER)
        .group_by(*keys, maintain_order=True)
        .agg(
            liq_market=pl.col("market").first(),
            liq_group=pl.col(GROUP).first(),
            liq_buy_volume=pl.col("size").filter(side == "buy").sum(),
            liq_sell_volume=pl.col("size").filter(side == "sell").sum(),
            liq_buy_count=(side == "buy").sum().cast(pl.Int64),
            liq_sell_count=(side == "sell").sum().cast(pl.Int64),
        )
    )
    bars = (
        own.join(liq, on=keys, how="full", coalesce=True)
        .with_columns(group=pl.coalesce("group", "liq_group"))
        .join(index, on=["venue", "group", "open_time"], how="left")
        .with_columns(
            market=pl.coalesce("market", "liq_market"),
            index_close=pl.coalesce("own_index", "underlying_index"),
            liq_buy_volume=pl.col("liq_buy_volume").fill_null(0.0),
            liq_sell_volume=pl.col("liq_sell_volume").fill_null(0.0),
            liq_buy_count=pl.col("liq_buy_count").fill_null(0),
            liq_sell_count=pl.col("liq_sell_count").fill_null(0),
        )
        .with_columns(
            basis=pl.col("mark_close") / pl.col("index_close") - 1.0,
            close_time=(pl.col("open_time").dt.epoch("us") + 60_000_000).cast(UTC_US),
            date=pl.col("open_time").dt.date(),
        )
    )
    return writes.conform(bars.select(SILVER_DERIVATIVE_BARS.schema.names), SILVER_DERIVATIVE_BARS)


def _keep(ws: WorkSet, rows: pl.DataFrame, ts_col: str) -> pl.DataFrame:
    """The rows whose (venue, underlying index, minute) is in the work set."""
    lf = rows.lazy().rename({"instrument": "__instrument"}).rename({GROUP: "instrument"})
    kept = ws.keep(lf, ts_col).rename({"instrument": GROUP}).rename({"__instrument": "instrument"})
    return kept.select(rows.columns).collect()


def _rows(
    tables: Handles, spec: TableSpec, schema: Any, ws: WorkSet, new_good: pl.DataFrame, new_files: files.FileSet,
    markets: tuple[str, ...],
) -> pl.DataFrame:  # fmt: skip
    """Every good bronze row of the work set: the new batch's (already checked) and the rescanned rest."""
    wanted = pl.col("market").is_in(markets)
    old = good_rows(schema, rescan(tables, spec, "exchange_ts", ws, new_files).filter(wanted).collect())
    rows = _with_group(pl.concat([new_good.filter(wanted), old]))
    return _keep(ws, rows, "exchange_ts").drop(GROUP)


def _new(
    tables: Handles, spec: TableSpec, marks: dict[str, Watermark], max_rows: int | None, report: SilverReport
) -> tuple[files.FileSet, pl.DataFrame, bool]:
    """The table's files since its watermark (whole commits up to ``max_rows`` rows), their rows, and whether
    more commits wait. A table that drifted from its schema fails (fatal) before a row is read."""
    listed = tables.files(spec)
    fs = files.files_since(tables.lake, listed, marks.get(spec.key, Watermark()).version, max_rows)
    more = fs.version is not None and listed.version is not None and fs.version < listed.version
    drift = files.schema_drift(tables.table(spec), spec)
    if drift:
        report.failures.append(
            RuleFailure(spec.key, "schema:drift", fs.rows, fs.rows, [{"problem": p} for p in drift], fatal=True)
        )
        return fs, files.scan(tables.lake, fs.without(fs)).collect(), False
    return fs, files.scan(tables.lake, fs).collect(), more


def derivative_bars_step(
    tables: Handles,
    marks: dict[str, Watermark],
    new_marks: dict[str, Watermark],
    report: SilverReport,
    horizon: dt.datetime,
    *,
    max_rows: int | None,
    window: dict[str, float],
    kw: Any,
) -> tuple[list[Checked], bool]:
    """One pass of silver/derivative_bars inside a silver run: counts and failures into ``report``,
    watermarks into ``new_marks`` (left as they were when a table fails); returns the checks (their
    quarantine rows) and whether more bronze is waiting."""
    now = report.now
    earlier = len(report.failures)
    d_files, d_batch, d_more = _new(tables, BRONZE_DERIVATIVES, marks, max_rows, report)
    l_files, l_batch, l_more = _new(tables, BRONZE_LIQUIDATIONS, marks, max_rows, report)
    drifted = bool(report.failures[earlier:])
    d_schema = bronze_contracts.derivatives_schema(now, **window)
    l_schema = bronze_contracts.liquidations_schema(now, **window)
    d_ok = check(d_schema, d_batch, BRONZE_DERIVATIVES.key, **kw)
    l_ok = check(l_schema, l_batch, BRONZE_LIQUIDATIONS.key, **kw)
    checked = [d_ok, l_ok]
    for spec, fs, res in ((BRONZE_DERIVATIVES, d_files, d_ok), (BRONZE_LIQUIDATIONS, l_files, l_ok)):
        report.bronze_rows[spec.key] = report.bronze_rows.get(spec.key, 0) + fs.rows
        report.good[spec.key] = report.good.get(spec.key, 0) + res.good.height
        report.failures += res.failures
    if drifted or d_ok.fatal or l_ok.fatal:
        return checked, False

    # While a table has more backlog than this pass read, publish only up to the last whole minute it
    # reached (later minutes would be restated by the next pass anyway).
    h = horizon
    for batch, more in ((d_ok.good, d_more), (l_ok.good, l_more)):
        if more and batch.height:
            h = min(h, floor_to(cast(dt.datetime, batch["exchange_ts"].max()), MINUTE))
    d_new = d_ok.good.filter(pl.col("market").is_in((*DERIVATIVE_BAR_MARKETS, INDEX_MARKET)))
    l_new = l_ok.good.filter(pl.col("market").is_in(DERIVATIVE_BAR_MARKETS))
    touched = pl.concat(
        [
            _with_group(f).select("venue", pl.col(GROUP).alias("instrument"), open_time=bucket("exchange_ts", "1m"))
            for f in (d_new, l_new)
        ]
    )
    h_old = marks.get(H_BARS, Watermark()).horizon
    ws = work_set(touched.lazy(), h_old, h)
    if not ws.empty:
        d_rows = _rows(tables, BRONZE_DERIVATIVES, d_schema, ws, d_new, d_files, (*DERIVATIVE_BAR_MARKETS, "index"))
        l_rows = _rows(tables, BRONZE_LIQUIDATIONS, l_schema, ws, l_new, l_files, DERIVATIVE_BAR_MARKETS)
        bars = bars_1m(d_rows, l_rows).filter(pl.col("close_time") <= ws.hi)
        res = check(SilverDerivativeBars.to_schema(), bars, SILVER_DERIVATIVE_BARS.key, **kw)
        report.failures += res.failures
        checked.append(res)
        if res.fatal:
            return checked, False
        existing = [writes.existing_rows(tables, SILVER_DERIVATIVE_BARS, "open_time", lo, hi) for lo, hi in ws.ranges()]
        old = pl.concat(existing) if existing else pl.DataFrame(schema=writes.polars_schema(SILVER_DERIVATIVE_BARS))
        done = writes.upsert(tables, SILVER_DERIVATIVE_BARS, res.good, old, DERIVATIVE_BAR_KEY)
        report.count(SILVER_DERIVATIVE_BARS.key, done.inserted + done.updated, done.updated)
    new_marks[BRONZE_DERIVATIVES.key] = Watermark(d_files.version)
    new_marks[BRONZE_LIQUIDATIONS.key] = Watermark(l_files.version)
    new_marks[H_BARS] = Watermark(horizon=ws.hi)
    return checked, d_more or l_more
