"""bronze/quotes -> 1-minute quote bars (mid-price OHLC, mean spread, last mark price and mark iv, count).

Options trade rarely, so their quotes are the price series. Ties are broken by (exchange_ts, receive_ts,
seq) so the bars do not depend on read order; a quote stored twice byte for byte (the same capture imported
twice, say) counts once, whichever runs read its copies.
"""

from __future__ import annotations

import polars as pl

from pipeline.silver.candles import UTC_US, bucket

_ORDER = ["exchange_ts", "receive_ts", "seq"]


def quote_bars_1m(quotes: pl.LazyFrame) -> pl.LazyFrame:
    mid = pl.col("mid")
    with_mid = mid.filter(mid.is_not_null())
    order = list(_ORDER)
    return (
        quotes.unique()
        .with_columns(
            open_time=bucket("exchange_ts", "1m"),
            mid=(pl.col("bid_px") + pl.col("ask_px")) / 2,
            spread=pl.col("ask_px") - pl.col("bid_px"),
        )
        .sort(order)  # quote batches are small next to trades; one sort keeps every "last" exact
        .group_by("venue", "instrument", "open_time", maintain_order=True)
        .agg(
            market=pl.col("market").first(),
            mid_open=with_mid.first(),
            mid_high=mid.max(),
            mid_low=mid.min(),
            mid_close=with_mid.last(),
            spread_mean=pl.col("spread").mean(),
            mark_price=pl.col("mark_price").drop_nulls().last(),
            mark_iv=pl.col("mark_iv").drop_nulls().last(),
            quote_count=pl.len().cast(pl.Int64),
        )
        .with_columns(
            close_time=(pl.col("open_time").dt.epoch("us") + 60_000_000).cast(UTC_US),
            date=pl.col("open_time").dt.date(),
        )
    )
