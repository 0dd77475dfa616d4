"""Contracts of the silver tables. The silver flow checks its own output with them before writing: a failure
here is a bug in the flow, so it fails the table (never quarantined)."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from contracts.bronze import BronzeTrades
from contracts.common import EXCHANGE_VWAP_TOL, REL_TOL, UtcTs, le_tol, ok_or_null
from contracts.timeframes import TIMEFRAME_MS, TIMEFRAMES

CANDLE_SOURCES = ("trades", "exchange", "mixed")


class SilverTrades(BronzeTrades):
    """silver/trades: bronze trades that passed, one row per (venue, instrument, trade_id)."""

    class Config:
        strict = True
        unique = ["venue", "instrument", "trade_id"]


def _tf_ms() -> pl.Expr:
    return pl.col("timeframe").replace_strict(TIMEFRAME_MS, default=None, return_dtype=pl.Int64)


class SilverCandles(pa.DataFrameModel):
    """silver/candles: closed OHLCV bars, 1m from trades (or exchange bars), higher timeframes rolled up."""

    venue: str = pa.Field()
    market: str = pa.Field()
    instrument: str = pa.Field()
    timeframe: str = pa.Field(isin=TIMEFRAMES)
    open_time: UtcTs = pa.Field()
    close_time: UtcTs = pa.Field()
    open: float = pa.Field(gt=0)
    high: float = pa.Field(gt=0)
    low: float = pa.Field(gt=0)
    close: float = pa.Field(gt=0)
    volume: float = pa.Field(ge=0)
    quote_volume: float | None = pa.Field(nullable=True, ge=0)
    trade_count: pl.Int64 | None = pa.Field(nullable=True, ge=0)
    vwap: float | None = pa.Field(nullable=True, gt=0)
    buy_volume: float | None = pa.Field(nullable=True, ge=0)
    sell_volume: float | None = pa.Field(nullable=True, ge=0)
    source: str = pa.Field(isin=CANDLE_SOURCES)
    date: pl.Date = pa.Field()

    class Config:
        strict = True
        unique = ["venue", "instrument", "timeframe", "open_time"]

    @pa.dataframe_check(name="high_covers_open_close")
    def high_covers(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(le_tol(pl.max_horizontal("open", "close", "low"), pl.col("high")))

    @pa.dataframe_check(name="low_under_open_close")
    def low_under(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(le_tol(pl.col("low"), pl.min_horizontal("open", "close")))

    @pa.dataframe_check(name="vwap_within_range")
    def vwap_within(cls, data: pa.PolarsData) -> pl.LazyFrame:
        vwap, low, high = pl.col("vwap"), pl.col("low"), pl.col("high")
        # Bars built from exchange volumes get the slack the bronze candle contract allowed them.
        tol = pl.when(pl.col("source") == "trades").then(pl.lit(REL_TOL)).otherwise(pl.lit(EXCHANGE_VWAP_TOL))
        return data.lazyframe.select(ok_or_null((vwap >= low * (1 - tol)) & (vwap <= high * (1 + tol))))

    @pa.dataframe_check(name="bar_aligned")
    def bar_aligned(cls, data: pa.PolarsData) -> pl.LazyFrame:
        """open_time on the timeframe grid (UTC) and close_time = open_time + timeframe."""
        open_ms = pl.col("open_time").dt.epoch("ms")
        tf = _tf_ms()
        return data.lazyframe.select(((open_ms % tf) == 0) & (pl.col("close_time").dt.epoch("ms") == open_ms + tf))


class SilverQuoteBars(pa.DataFrameModel):
    """silver/quote_bars: 1-minute bars of the mid price from bronze/quotes (options trade rarely)."""

    venue: str = pa.Field()
    market: str = pa.Field()
    instrument: str = pa.Field()
    open_time: UtcTs = pa.Field()
    close_time: UtcTs = pa.Field()
    mid_open: float | None = pa.Field(nullable=True, gt=0)
    mid_high: float | None = pa.Field(nullable=True, gt=0)
    mid_low: float | None = pa.Field(nullable=True, gt=0)
    mid_close: float | None = pa.Field(nullable=True, gt=0)
    spread_mean: float | None = pa.Field(nullable=True, ge=0)
    mark_price: float | None = pa.Field(nullable=True, gt=0)
    mark_iv: float | None = pa.Field(nullable=True, ge=0)
    quote_count: pl.Int64 = pa.Field(ge=1)
    date: pl.Date = pa.Field()

    class Config:
        strict = True
        unique = ["venue", "instrument", "open_time"]

    @pa.dataframe_check(name="mid_range_consistent")
    def mid_range(cls, data: pa.PolarsData) -> pl.LazyFrame:
        hi, lo = pl.col("mid_high"), pl.col("mid_low")
        ok = le_tol(pl.max_horizontal("mid_open", "mid_close"), hi) & le_tol(
            lo, pl.min_horizontal("mid_open", "mid_close")
        )
        return data.lazyframe.select(ok_or_null(ok))


FUNDING_SOURCES = ("rest", "stream")
HOUR_MS = 3_600_000


class SilverFunding(pa.DataFrameModel):
    """silver/funding: one settled funding rate per (venue, instrument, funding_time).

    Unlike the bar tables' contracts, this one screens what the silver run is about to write (settlements
    from the venues: REST history, streamed predictions): a settlement that breaks it goes to
    silver/quarantine with the rule, the others are written."""

    venue: str = pa.Field()
    instrument: str = pa.Field()
    funding_time: UtcTs = pa.Field()
    funding_rate: float = pa.Field()
    interval_hours: float | None = pa.Field(nullable=True, gt=0)
    rate_cap: float = pa.Field(gt=0)
    source: str = pa.Field(isin=FUNDING_SOURCES)

    class Config:
        strict = True
        unique = ["venue", "instrument", "funding_time"]

    @pa.dataframe_check(name="rate_within_cap")
    def rate_within_cap(cls, data: pa.PolarsData) -> pl.LazyFrame:
        """|rate| <= the instrument's cap (the venue's own maxFundingRate/minFundingRate where streamed)."""
        return data.lazyframe.select(le_tol(pl.col("funding_rate").abs(), pl.col("rate_cap")))

    @pa.dataframe_check(name="funding_time_on_schedule")
    def on_schedule(cls, data: pa.PolarsData) -> pl.LazyFrame:
        """The funding time is a multiple of the instrument's interval (taken from the data) counted from the
        epoch: 8 h settlements fall at 00:00, 08:00, 16:00 UTC. A first settlement (no interval) passes."""
        interval_ms = (pl.col("interval_hours") * HOUR_MS).round(0).cast(pl.Int64)
        return data.lazyframe.select(ok_or_null(pl.col("funding_time").dt.epoch("ms") % interval_ms == 0))


DERIVATIVE_BAR_MARKETS = ("swap", "future")


class SilverDerivativeBars(pa.DataFrameModel):
    """silver/derivative_bars: 1-minute bars of the derivatives state of a swap or future
    (``pipeline.silver.derivative_bars``). A minute may carry only some of the columns (liquidations
    without a mark, say); what is there obeys the rules below."""

    venue: str = pa.Field()
    market: str = pa.Field(isin=DERIVATIVE_BAR_MARKETS)
    instrument: str = pa.Field()
    open_time: UtcTs = pa.Field()
    close_time: UtcTs = pa.Field()
    mark_open: float | None = pa.Field(nullable=True, gt=0)
    mark_high: float | None = pa.Field(nullable=True, gt=0)
    mark_low: float | None = pa.Field(nullable=True, gt=0)
    mark_close: float | None = pa.Field(nullable=True, gt=0)
    index_close: float | None = pa.Field(nullable=True, gt=0)
    basis: float | None = pa.Field(nullable=True)  # finite (basis_finite)
    open_interest: float | None = pa.Field(nullable=True, ge=0)
    open_interest_ccy: float | None = pa.Field(nullable=True, ge=0)
    open_interest_usd: float | None = pa.Field(nullable=True, ge=0)
    funding_rate: float | None = pa.Field(nullable=True)  # finite (basis_finite)
    liq_buy_volume: float = pa.Field(ge=0)
    liq_sell_volume: float = pa.Field(ge=0)
    liq_buy_count: pl.Int64 = pa.Field(ge=0)
    liq_sell_count: pl.Int64 = pa.Field(ge=0)
    date: pl.Date = pa.Field()

    class Config:
        strict = True
        unique = ["venue", "instrument", "open_time"]

    @pa.dataframe_check(name="basis_finite")
    def basis_finite(cls, data: pa.PolarsData) -> pl.LazyFrame:
        """Basis and the predicted rate are numbers where present (never inf or NaN)."""
        return data.lazyframe.select(
            ok_or_null(pl.col("basis").is_finite()) & ok_or_null(pl.col("funding_rate").is_finite())
        )

    @pa.dataframe_check(name="mark_range_consistent")
    def mark_range(cls, data: pa.PolarsData) -> pl.LazyFrame:
        hi, lo = pl.col("mark_high"), pl.col("mark_low")
        ok = le_tol(pl.max_horizontal("mark_open", "mark_close"), hi) & le_tol(
            lo, pl.min_horizontal("mark_open", "mark_close")
        )
        return data.lazyframe.select(ok_or_null(ok))

    @pa.dataframe_check(name="bar_aligned")
    def bar_aligned(cls, data: pa.PolarsData) -> pl.LazyFrame:
        """open_time on the minute (UTC) and close_time = open_time + 1 minute."""
        open_ms = pl.col("open_time").dt.epoch("ms")
        return data.lazyframe.select(
            ((open_ms % 60_000) == 0) & (pl.col("close_time").dt.epoch("ms") == open_ms + 60_000)
        )


# --- books (issue #16) ----------------------------------------------------------------------------------
def _strictly_monotone(column: str, descending: bool) -> pl.Expr:
    step = pl.element().diff().drop_nulls()
    return pl.col(column).list.eval((step < 0).all() if descending else (step > 0).all()).list.first().fill_null(True)


class SilverBookSnapshots(pa.DataFrameModel):
    """silver/book_snapshots: the top N of a verified book at a grid instant, best first per side."""

    venue: str = pa.Field()
    instrument: str = pa.Field()
    channel: str = pa.Field()
    ts: UtcTs = pa.Field()
    segment_id: str = pa.Field()
    bid_px: pl.List(pl.Float64) = pa.Field()  # type: ignore[valid-type]
    bid_sz: pl.List(pl.Float64) = pa.Field()  # type: ignore[valid-type]
    ask_px: pl.List(pl.Float64) = pa.Field()  # type: ignore[valid-type]
    ask_sz: pl.List(pl.Float64) = pa.Field()  # type: ignore[valid-type]
    last_seq: pl.Int64 | None = pa.Field(nullable=True)
    last_ts: UtcTs = pa.Field()
    age_ms: pl.Int64 = pa.Field(ge=0)
    date: pl.Date = pa.Field()

    class Config:
        strict = True
        unique = ["venue", "instrument", "channel", "ts"]

    @pa.dataframe_check(name="book_not_crossed")
    def not_crossed(cls, data: pa.PolarsData) -> pl.LazyFrame:
        bid, ask = pl.col("bid_px").list.first(), pl.col("ask_px").list.first()
        return data.lazyframe.select((bid < ask).fill_null(True))

    @pa.dataframe_check(name="bid_prices_strictly_descending")
    def bids_ordered(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(_strictly_monotone("bid_px", descending=True))

    @pa.dataframe_check(name="ask_prices_strictly_ascending")
    def asks_ordered(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(_strictly_monotone("ask_px", descending=False))

    @pa.dataframe_check(name="sizes_positive")
    def sizes_positive(cls, data: pa.PolarsData) -> pl.LazyFrame:
        positive = [
            pl.col(c).list.eval((pl.element() > 0).all()).list.first().fill_null(True) for c in ("bid_sz", "ask_sz")
        ]
        return data.lazyframe.select(pl.all_horizontal(positive))

    @pa.dataframe_check(name="prices_positive_and_levels_complete")
    def levels_complete(cls, data: pa.PolarsData) -> pl.LazyFrame:
        same = (pl.col("bid_px").list.len() == pl.col("bid_sz").list.len()) & (
            pl.col("ask_px").list.len() == pl.col("ask_sz").list.len()
        )
        lows = [pl.col(c).list.min().fill_null(1.0) > 0 for c in ("bid_px", "ask_px")]
        return data.lazyframe.select(same & pl.all_horizontal(lows))

    @pa.dataframe_check(name="age_matches_last_message")
    def age(cls, data: pa.PolarsData) -> pl.LazyFrame:
        gap_ms = (pl.col("ts") - pl.col("last_ts")).dt.total_milliseconds()
        return data.lazyframe.select(gap_ms == pl.col("age_ms"))


class SilverBookFeatures(pa.DataFrameModel):
    """silver/book_features: one minute of a verified book (time weights only inside verified segments)."""

    venue: str = pa.Field()
    instrument: str = pa.Field()
    channel: str = pa.Field()
    open_time: UtcTs = pa.Field()
    session: str = pa.Field()
    mid_open: pl.Float64 = pa.Field(gt=0)
    mid_high: pl.Float64 = pa.Field(gt=0)
    mid_low: pl.Float64 = pa.Field(gt=0)
    mid_close: pl.Float64 = pa.Field(gt=0)
    spread_bps: pl.Float64 = pa.Field(ge=0)
    imb1_mean: pl.Float64 = pa.Field(ge=0, le=1)
    imb1_last: pl.Float64 = pa.Field(ge=0, le=1)
    imb5_mean: pl.Float64 = pa.Field(ge=0, le=1)
    imb5_last: pl.Float64 = pa.Field(ge=0, le=1)
    microprice: pl.Float64 = pa.Field(gt=0)
    depth10_bid: pl.Float64 = pa.Field(ge=0)
    depth10_ask: pl.Float64 = pa.Field(ge=0)
    depth50_bid: pl.Float64 = pa.Field(ge=0)
    depth50_ask: pl.Float64 = pa.Field(ge=0)
    ofi: pl.Float64 = pa.Field()
    messages: pl.Int64 = pa.Field(ge=0)
    book_cover: pl.Float64 = pa.Field(gt=0, le=1)
    date: pl.Date = pa.Field()

    class Config:
        strict = True
        unique = ["venue", "instrument", "channel", "open_time"]

    @pa.dataframe_check(name="mid_within_high_low")
    def mid_range(cls, data: pa.PolarsData) -> pl.LazyFrame:
        lo, hi = pl.col("mid_low"), pl.col("mid_high")
        inside = [(lo <= pl.col(c)) & (pl.col(c) <= hi) for c in ("mid_open", "mid_close")]
        return data.lazyframe.select(pl.all_horizontal(inside))

    @pa.dataframe_check(name="ofi_finite")
    def ofi_finite(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("ofi").is_finite())
