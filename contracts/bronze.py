"""Contracts of the bronze tables (what the silver flow accepts from them).

Each model checks the columns of one table in ``pipeline/lake/schemas.py``. Row failures are quarantined
by the silver flow with the rule name (``column:check`` or the dataframe check's name); a missing column
or a changed type fails the whole table (schema drift).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandera.polars as pa
import polars as pl

from contracts.common import (
    EXCHANGE_VWAP_TOL,
    MARKETS,
    SIDES,
    SOURCES,
    KeyRepeats,
    UtcTs,
    le_tol,
    ok_or_null,
    row_hash,
    with_time_window,
)

TRADE_KEY = ("venue", "instrument", "trade_id")
_TRADE_VALUES = ("price", "size", "side")
TRADE_ID_CONSISTENT = "trade_id_consistent"  # the rule silver's dedupe can decide on the way (see check(decided=))


def disagreeing_trade_keys(trades: pl.DataFrame | pl.LazyFrame, repeats: KeyRepeats | None = None) -> pl.Series:
    """The hashes of the trade keys whose rows do not all hold the same (price, size, side).

    Keys are compared through 64-bit hashes (7x cheaper than n_unique over string keys); two different
    trades sharing a key hash is a ~1e-7 event at a billion rows and only quarantines them. Only a key seen
    more than once can fail: those few rows are grouped, not all of them. Silver's dedupe hands in the
    ``repeats`` it finds anyway (``pipeline.silver.trades``), so a batch's keys are hashed and sorted once."""
    return KeyRepeats.of(trades, TRADE_KEY, reuse=repeats).disagreeing(trades, _TRADE_VALUES)


class BronzeTrades(pa.DataFrameModel):
    """bronze/trades: one trade as the venue sent it (duplicates across sources are expected)."""

    venue: str = pa.Field(str_length={"min_value": 1})
    market: str = pa.Field(isin=MARKETS)
    instrument: str = pa.Field(str_length={"min_value": 1})
    trade_id: str = pa.Field(str_length={"min_value": 1})
    price: float = pa.Field(gt=0)
    size: float = pa.Field(gt=0)
    side: str = pa.Field(isin=SIDES)
    exchange_ts: UtcTs = pa.Field()
    receive_ts: UtcTs = pa.Field()
    source: str = pa.Field(isin=SOURCES)
    seq: pl.Int64 | None = pa.Field(nullable=True, ge=0)
    trade_count: pl.Int64 | None = pa.Field(nullable=True, ge=1)
    index_price: float | None = pa.Field(nullable=True, gt=0)
    # A worthless option about to expire can be marked at exactly 0; a negative mark is never right.
    mark_price: float | None = pa.Field(nullable=True, ge=0)
    iv: float | None = pa.Field(nullable=True, ge=0, le=1000)
    liquidation: str | None = pa.Field(nullable=True)
    date: pl.Date = pa.Field()

    class Config:
        strict = True  # an unknown column is schema drift too

    @pa.dataframe_check(name="sequence_order")
    def sequence_order(cls, data: pa.PolarsData) -> pl.LazyFrame:
        """Per instrument, a trade with a higher venue sequence is not older than the one before it."""
        ts = pl.col("exchange_ts")
        # One window per instrument (rows without a sequence in a partition of their own), keyed by a
        # hash: ~4x cheaper than partitioning on the two strings and shifting twice.
        group = row_hash("venue", "instrument") + pl.col("seq").is_null().cast(pl.UInt64)
        in_order = ts.diff().over(group, order_by="seq") >= pl.duration(microseconds=0)
        return data.lazyframe.select(pl.col("seq").is_null() | in_order.fill_null(True))

    @pa.dataframe_check(name=TRADE_ID_CONSISTENT)
    def trade_id_consistent(cls, data: pa.PolarsData) -> pl.LazyFrame:
        """The same (venue, instrument, trade_id) seen twice (ws and rest) must be the same trade."""
        repeats = KeyRepeats.of(data.lazyframe, TRADE_KEY)
        bad = disagreeing_trade_keys(data.lazyframe, repeats)
        return data.lazyframe.select(~pl.lit(repeats.hashes).is_in(bad.implode()))


class BronzeQuotes(pa.DataFrameModel):
    """bronze/quotes: one top-of-book / ticker update."""

    venue: str = pa.Field(str_length={"min_value": 1})
    market: str = pa.Field(isin=MARKETS)
    instrument: str = pa.Field(str_length={"min_value": 1})
    channel: str = pa.Field()
    exchange_ts: UtcTs = pa.Field()
    receive_ts: UtcTs = pa.Field()
    source: str = pa.Field(isin=SOURCES)
    seq: pl.Int64 | None = pa.Field(nullable=True)
    bid_px: float | None = pa.Field(nullable=True, gt=0)
    bid_sz: float | None = pa.Field(nullable=True, ge=0)
    ask_px: float | None = pa.Field(nullable=True, gt=0)
    ask_sz: float | None = pa.Field(nullable=True, ge=0)
    last_px: float | None = pa.Field(nullable=True, gt=0)
    mark_price: float | None = pa.Field(nullable=True, ge=0)  # 0: a worthless option near expiry
    index_price: float | None = pa.Field(nullable=True, gt=0)
    underlying_price: float | None = pa.Field(nullable=True, gt=0)
    open_interest: float | None = pa.Field(nullable=True, ge=0)
    # Deribit sends ivs in percent (65.3), OKX as fractions (0.653): both fit [0, 1000].
    mark_iv: float | None = pa.Field(nullable=True, ge=0, le=1000)
    bid_iv: float | None = pa.Field(nullable=True, ge=0, le=1000)
    ask_iv: float | None = pa.Field(nullable=True, ge=0, le=1000)
    delta: float | None = pa.Field(nullable=True, ge=-1, le=1)
    gamma: float | None = pa.Field(nullable=True, ge=0)
    vega: float | None = pa.Field(nullable=True, ge=0)
    theta: float | None = pa.Field(nullable=True)
    rho: float | None = pa.Field(nullable=True)
    date: pl.Date = pa.Field()

    class Config:
        strict = False  # levels 2..5 columns are carried through unchecked

    @pa.dataframe_check(name="bid_below_ask")
    def bid_below_ask(cls, data: pa.PolarsData) -> pl.LazyFrame:
        """A crossed or locked book is corrupt (cryptofeed #232)."""
        return data.lazyframe.select(ok_or_null(pl.col("bid_px") < pl.col("ask_px")))

    @pa.dataframe_check(name="greeks_finite")
    def greeks_finite(cls, data: pa.PolarsData) -> pl.LazyFrame:
        """theta and rho have no natural bound, but inf/NaN are broken numbers."""
        return data.lazyframe.select(ok_or_null(pl.col("theta").is_finite() & pl.col("rho").is_finite()))


class BronzeCandles(pa.DataFrameModel):
    """bronze/candles: exchange bars from backfill (OKX history-candles, candle channels)."""

    venue: str = pa.Field(str_length={"min_value": 1})
    market: str = pa.Field(isin=MARKETS)
    instrument: str = pa.Field(str_length={"min_value": 1})
    timeframe: str = pa.Field(str_length={"min_value": 1})
    open_time: UtcTs = pa.Field()
    open: float = pa.Field(gt=0)
    high: float = pa.Field(gt=0)
    low: float = pa.Field(gt=0)
    close: float = pa.Field(gt=0)
    vol: float = pa.Field(ge=0)
    vol_ccy: float | None = pa.Field(nullable=True, ge=0)
    vol_ccy_quote: float | None = pa.Field(nullable=True, ge=0)
    confirm: bool | None = pa.Field(nullable=True)
    receive_ts: UtcTs = pa.Field()
    source: str = pa.Field(isin=SOURCES)
    date: pl.Date = pa.Field()

    class Config:
        strict = True

    @pa.dataframe_check(name="high_covers_open_close")
    def high_covers(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(le_tol(pl.max_horizontal("open", "close"), pl.col("high")))

    @pa.dataframe_check(name="low_under_open_close")
    def low_under(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(le_tol(pl.col("low"), pl.min_horizontal("open", "close")))

    @pa.dataframe_check(name="vwap_within_range")
    def vwap_within(cls, data: pa.PolarsData) -> pl.LazyFrame:
        """The average price the volumes imply (what silver publishes as vwap) lies in [low, high]."""
        vwap = exchange_vwap()
        slack = pl.lit(EXCHANGE_VWAP_TOL)
        ok = (vwap >= pl.col("low") * (1 - slack)) & (vwap <= pl.col("high") * (1 + slack))
        return data.lazyframe.select(ok_or_null(ok))


def exchange_vwap() -> pl.Expr:
    """Spot: quote volume / base volume; derivatives: vol_ccy_quote / vol_ccy (quote per base currency)."""
    spot = pl.col("market") == "spot"
    quote = pl.coalesce("vol_ccy_quote", "vol_ccy")
    return (
        pl.when(spot & (pl.col("vol") > 0))
        .then(quote / pl.col("vol"))
        .when(~spot & (pl.col("vol_ccy") > 0))
        .then(pl.col("vol_ccy_quote") / pl.col("vol_ccy"))
    )


def trades_schema(now: dt.datetime, **window: Any) -> pa.DataFrameSchema:
    """BronzeTrades with the clock window on exchange_ts (see ``with_time_window``)."""
    return with_time_window(BronzeTrades, ("exchange_ts",), now=now, **window)


def quotes_schema(now: dt.datetime, **window: Any) -> pa.DataFrameSchema:
    return with_time_window(BronzeQuotes, ("exchange_ts",), now=now, **window)


def candles_schema(now: dt.datetime, **window: Any) -> pa.DataFrameSchema:
    return with_time_window(BronzeCandles, ("open_time",), now=now, **window)


# --- derivatives state (issue #17) -----------------------------------------------------------------
INDEX_MARKET = "index"  # bronze/derivatives rows of an index (OKX index-tickers, deribit_price_index)
_STATE_COLUMNS = (
    "funding_rate", "next_funding_rate", "open_interest", "open_interest_ccy", "open_interest_usd", "mark_price",
    "index_price",
)  # fmt: skip


class BronzeDerivatives(pa.DataFrameModel):
    """bronze/derivatives: one derivatives-state update (funding, open interest, mark/index price)."""

    venue: str = pa.Field(str_length={"min_value": 1})
    market: str = pa.Field(isin=(*MARKETS, INDEX_MARKET))
    instrument: str = pa.Field(str_length={"min_value": 1})  # the index name on index rows
    channel: str = pa.Field(str_length={"min_value": 1})
    exchange_ts: UtcTs = pa.Field()
    receive_ts: UtcTs = pa.Field()
    source: str = pa.Field(isin=SOURCES)
    funding_rate: float | None = pa.Field(nullable=True)  # signed; finite (rates_finite)
    next_funding_rate: float | None = pa.Field(nullable=True)
    funding_time: UtcTs | None = pa.Field(nullable=True)
    next_funding_time: UtcTs | None = pa.Field(nullable=True)
    open_interest: float | None = pa.Field(nullable=True, ge=0)
    open_interest_ccy: float | None = pa.Field(nullable=True, ge=0)
    open_interest_usd: float | None = pa.Field(nullable=True, ge=0)
    mark_price: float | None = pa.Field(nullable=True, ge=0)  # 0 only for an option (mark_positive)
    index_price: float | None = pa.Field(nullable=True, gt=0)
    raw: str | None = pa.Field(nullable=True)  # JSON object of the fields without a column
    date: pl.Date = pa.Field()

    class Config:
        strict = True

    @pa.dataframe_check(name="rates_finite")
    def rates_finite(cls, data: pa.PolarsData) -> pl.LazyFrame:
        """A funding rate may be negative, never inf/NaN (the range checks of the other columns catch those)."""
        return data.lazyframe.select(
            ok_or_null(pl.col("funding_rate").is_finite()) & ok_or_null(pl.col("next_funding_rate").is_finite())
        )

    @pa.dataframe_check(name="mark_positive")
    def mark_positive(cls, data: pa.PolarsData) -> pl.LazyFrame:
        """Only an option about to expire worthless is marked at 0."""
        return data.lazyframe.select(ok_or_null((pl.col("mark_price") > 0) | (pl.col("market") == "option")))

    @pa.dataframe_check(name="carries_state")
    def carries_state(cls, data: pa.PolarsData) -> pl.LazyFrame:
        """A row says something: at least one of the state columns has a value."""
        return data.lazyframe.select(pl.any_horizontal(pl.col(c).is_not_null() for c in _STATE_COLUMNS))

    @pa.dataframe_check(name="raw_is_object")
    def raw_is_object(cls, data: pa.PolarsData) -> pl.LazyFrame:
        raw = pl.col("raw")
        return data.lazyframe.select(ok_or_null(raw.str.starts_with("{") & raw.str.ends_with("}")))


class BronzeLiquidations(pa.DataFrameModel):
    """bronze/liquidations: one liquidation order (OKX liquidation-orders: one row per detail)."""

    venue: str = pa.Field(str_length={"min_value": 1})
    market: str = pa.Field(isin=MARKETS)
    instrument: str = pa.Field(str_length={"min_value": 1})
    side: str = pa.Field(isin=SIDES)  # the side of the liquidation order
    price: float = pa.Field(gt=0)  # OKX: the bankruptcy price
    size: float = pa.Field(gt=0)
    exchange_ts: UtcTs = pa.Field()
    receive_ts: UtcTs = pa.Field()
    source: str = pa.Field(isin=SOURCES)
    raw: str | None = pa.Field(nullable=True)
    date: pl.Date = pa.Field()

    class Config:
        strict = True


def derivatives_schema(now: dt.datetime, **window: Any) -> pa.DataFrameSchema:
    """BronzeDerivatives with the clock window on exchange_ts (see ``with_time_window``)."""
    return with_time_window(BronzeDerivatives, ("exchange_ts",), now=now, **window)


def liquidations_schema(now: dt.datetime, **window: Any) -> pa.DataFrameSchema:
    return with_time_window(BronzeLiquidations, ("exchange_ts",), now=now, **window)


# --- full-depth books (issue #15) ------------------------------------------------------------------
BOOK_SIDES = ("bid", "ask")
BOOK_ACTIONS = ("new", "change", "delete")  # Deribit's; OKX rows have none


class BronzeBookDeltas(pa.DataFrameModel):
    """bronze/book_deltas: one level of one book message (a message without levels: one row, side null).

    Chains and checksums are verified on ingest (``pipeline.ingest.book_chain``, breaks in bronze/gaps);
    these are the rules a row must keep on its own and within its message."""

    venue: str = pa.Field(str_length={"min_value": 1})
    market: str = pa.Field(isin=MARKETS)
    instrument: str = pa.Field(str_length={"min_value": 1})
    channel: str = pa.Field(str_length={"min_value": 1})
    exchange_ts: UtcTs = pa.Field()
    receive_ts: UtcTs = pa.Field()
    source: str = pa.Field(isin=SOURCES)
    session: str | None = pa.Field(nullable=True)
    seq: pl.Int64 | None = pa.Field(nullable=True)  # OKX resets seqId after maintenance: no order claimed
    prev_seq: pl.Int64 | None = pa.Field(nullable=True, ge=-1)  # -1: an OKX snapshot
    checksum: pl.Int64 | None = pa.Field(nullable=True, ge=-(2**31), lt=2**31)  # signed 32-bit CRC
    is_snapshot: bool = pa.Field()
    side: str | None = pa.Field(nullable=True, isin=BOOK_SIDES)
    price: float | None = pa.Field(nullable=True, gt=0)
    size: float | None = pa.Field(nullable=True, ge=0)  # the level's new size; 0 deletes it
    orders: pl.Int64 | None = pa.Field(nullable=True, ge=0)
    action: str | None = pa.Field(nullable=True, isin=BOOK_ACTIONS)
    date: pl.Date = pa.Field()

    class Config:
        strict = True

    @pa.dataframe_check(name="level_complete")
    def level_complete(cls, data: pa.PolarsData) -> pl.LazyFrame:
        """A level has a side, a price and a size; a row without a level (keep-alive) has none of them."""
        present = [pl.col(c).is_not_null() for c in ("side", "price", "size")]
        return data.lazyframe.select(pl.all_horizontal(present) | ~pl.any_horizontal(present))

    @pa.dataframe_check(name="delete_empties_the_level")
    def delete_empties(cls, data: pa.PolarsData) -> pl.LazyFrame:
        """A Deribit delete leaves nothing at that price."""
        return data.lazyframe.select(ok_or_null((pl.col("action") != "delete") | (pl.col("size") == 0)))


def book_deltas_schema(now: dt.datetime, **window: Any) -> pa.DataFrameSchema:
    """BronzeBookDeltas with the clock window on exchange_ts (see ``with_time_window``)."""
    return with_time_window(BronzeBookDeltas, ("exchange_ts",), now=now, **window)
