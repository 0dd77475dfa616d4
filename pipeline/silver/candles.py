"""Candle arithmetic, pure functions on polars frames: trades -> 1m bars, exchange bars -> bars in our
units, 1m -> 5m 15m 1h 4h 1d. Higher timeframes are derived from the 1m bars, so they equal the rollup of
1m exactly; only a bucket with no 1m bar at all takes the exchange's own bar of that timeframe (history
backfilled as daily candles, say), marked ``source="exchange"``.

Ties: the open (close) of a bar is the price of its first (last) trade by (exchange_ts, seq, trade_id),
so the result does not depend on the order files were read in.
"""

from __future__ import annotations

import polars as pl

from pipeline.lake.schemas import TIMEFRAME_MS, TIMEFRAMES

MINUTE_US = 60_000_000
UTC_US = pl.Datetime("us", "UTC")
_ORDER = ["exchange_ts", "seq", "trade_id"]


def bucket(col: str, tf: str) -> pl.Expr:
    """Start of the UTC ``tf`` bucket holding ``col`` (epoch-aligned; every timeframe divides a day)."""
    step = TIMEFRAME_MS[tf] * 1000
    return ((pl.col(col).dt.epoch("us") // step) * step).cast(UTC_US)


def _finish(bars: pl.LazyFrame, tf: str) -> pl.LazyFrame:
    step = TIMEFRAME_MS[tf] * 1000
    return bars.with_columns(
        timeframe=pl.lit(tf),
        close_time=(pl.col("open_time").dt.epoch("us") + step).cast(UTC_US),
        vwap=pl.when(pl.col("volume") > 0).then(pl.col("quote_volume") / pl.col("volume")),
        date=pl.col("open_time").dt.date(),
    )


def trade_bars_1m(trades: pl.LazyFrame) -> pl.LazyFrame:
    """1m bars from trades (columns of silver/trades; any row order)."""
    price = pl.col("price")
    ordered = price.sort_by(_ORDER)

    def total(e: pl.Expr) -> pl.Expr:
        # A plain sum: its last bits depend on row order, so bars are compared with a relative tolerance
        # (pipeline.silver.writes.upsert); an exactly ordered sum cost ~10x the whole aggregation.
        return e.sum()

    bars = (
        trades.with_columns(
            open_time=bucket("exchange_ts", "1m"),
            qv=price * pl.col("size"),
            buy=pl.when(pl.col("side") == "buy").then(pl.col("size")).otherwise(0.0),
            sell=pl.when(pl.col("side") == "sell").then(pl.col("size")).otherwise(0.0),
        )
        .group_by("venue", "instrument", "open_time")
        .agg(
            market=pl.col("market").first(),
            open=ordered.first(),
            high=price.max(),
            low=price.min(),
            close=ordered.last(),
            volume=total(pl.col("size")),
            quote_volume=total(pl.col("qv")),
            trade_count=pl.len().cast(pl.Int64),
            buy_volume=total(pl.col("buy")),
            sell_volume=total(pl.col("sell")),
        )
        .with_columns(source=pl.lit("trades"))
    )
    return _finish(bars, "1m")


def exchange_bars_1m(candles: pl.LazyFrame) -> pl.LazyFrame:
    """1m bars from closed exchange candles (bronze/candles); see ``exchange_bars``."""
    return exchange_bars(candles, "1m")


def exchange_bars(candles: pl.LazyFrame, tf: str) -> pl.LazyFrame:
    """``tf`` bars from closed exchange candles (bronze/candles), in the units of trade-derived bars.

    volume = vol (contracts for OKX derivatives, base for spot: the unit of trade size). quote_volume: spot
    vol_ccy_quote (vol_ccy when missing); derivatives vol * vol_ccy_quote / vol_ccy, i.e. contracts x price
    like sum(price * size) over trades. trade_count and buy/sell volume are unknown (null).
    """
    spot = pl.col("market") == "spot"
    vcq, vc, vol = pl.col("vol_ccy_quote"), pl.col("vol_ccy"), pl.col("vol")
    deriv_qv = pl.when(vc > 0).then(vol * vcq / vc).when(vol == 0).then(0.0)
    bars = (
        candles.filter((pl.col("timeframe") == tf) & (pl.col("confirm").fill_null(True)))
        # The same bar fetched twice (ws then rest): the last received wins.
        .sort("receive_ts")
        .unique(["venue", "instrument", "open_time"], keep="last")
        .select(
            "venue",
            "instrument",
            "market",
            "open_time",
            "open",
            "high",
            "low",
            "close",
            volume=vol,
            quote_volume=pl.when(spot).then(pl.coalesce(vcq, vc)).otherwise(deriv_qv),
            trade_count=pl.lit(None, pl.Int64),
            buy_volume=pl.lit(None, pl.Float64),
            sell_volume=pl.lit(None, pl.Float64),
            source=pl.lit("exchange"),
        )
    )
    return _finish(bars, tf)


def combine_1m(trade_bars: pl.DataFrame, exchange_bars: pl.DataFrame) -> pl.DataFrame:
    """Trade-derived bars, plus exchange bars for the minutes that have no trades (trades win)."""
    return fill_missing(trade_bars, exchange_bars)


def fill_missing(bars: pl.DataFrame, exchange: pl.DataFrame, *, keep: pl.DataFrame | None = None) -> pl.DataFrame:
    """``bars`` plus the ``exchange`` bars whose bucket has no bar in ``bars`` nor in ``keep`` (bars already
    in silver that came from trades)."""
    key = ["venue", "instrument", "open_time"]
    fill = exchange.join(bars.select(key), on=key, how="anti")
    if keep is not None and keep.height:
        fill = fill.join(keep.select(key), on=key, how="anti")
    return pl.concat([bars, fill.select(bars.columns)]) if fill.height else bars


def _in_time(col: str) -> pl.Expr:
    # Summing each group sequentially in time order (cum_sum) makes float sums independent of how the frame
    # was read and chunked, so a bar computed twice is bit-identical. ``rollup`` sorts the frame by
    # open_time first and a group keeps the frame's row order, so each group is already in time order
    # (open_time is unique within a group): no sort per group.
    return pl.col(col)


def _null_if_any_null(col: str) -> pl.Expr:
    c = _in_time(col)
    return pl.when(c.null_count() == 0).then(c.cum_sum().last())


def rollup(bars_1m: pl.DataFrame, tf: str) -> pl.DataFrame:
    """``tf`` bars as the exact rollup of the given 1m bars (callers pass whole buckets)."""
    if tf == "1m":
        return bars_1m
    src = pl.col("source")
    bars = (
        bars_1m.lazy()
        .sort("open_time", maintain_order=True)
        .with_columns(bucket_time=bucket("open_time", tf))
        .group_by("venue", "instrument", "bucket_time")
        .agg(
            market=pl.col("market").first(),
            open=_in_time("open").first(),
            high=pl.col("high").max(),
            low=pl.col("low").min(),
            close=_in_time("close").last(),
            volume=_in_time("volume").cum_sum().last(),
            quote_volume=_null_if_any_null("quote_volume"),
            trade_count=_null_if_any_null("trade_count"),
            buy_volume=_null_if_any_null("buy_volume"),
            sell_volume=_null_if_any_null("sell_volume"),
            source=pl.when(src.n_unique() == 1).then(src.first()).otherwise(pl.lit("mixed")),
        )
        .rename({"bucket_time": "open_time"})
    )
    return _finish(bars, tf).collect()


__all__ = [
    "TIMEFRAMES",
    "bucket",
    "combine_1m",
    "exchange_bars",
    "exchange_bars_1m",
    "fill_missing",
    "rollup",
    "trade_bars_1m",
]
