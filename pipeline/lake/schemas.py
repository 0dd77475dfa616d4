"""Arrow schemas of the bronze tables, the public contract of the lake.

Parsers emit plain tuples whose field order is the ``*_FIELDS`` tuple of the table (a tuple per row is
the cheapest thing Python can append); ``pipeline.lake.batches`` turns a list of them into an Arrow
table at flush time. Timestamps travel as integers through the hot path (``exchange_ts_ms`` as the
venue sends it, ``receive_ts_us`` from the collector's clock) and become UTC timestamps on the way
into Delta. The partition column ``date`` (UTC date of ``exchange_ts``) is derived at flush time.
"""

from __future__ import annotations

import pyarrow as pa

from contracts.timeframes import TIMEFRAME_MS as TIMEFRAME_MS  # the lake's timeframes
from contracts.timeframes import TIMEFRAMES as TIMEFRAMES

TS = pa.timestamp("us", tz="UTC")

# --- bronze/trades -------------------------------------------------------------------------------
# Row tuple produced by parsers (same order):
TRADE_FIELDS: tuple[str, ...] = (
    "venue",  # "okx" | "deribit"
    "market",  # "spot" | "swap" | "future" | "option"
    "instrument",  # venue-native name, e.g. BTC-USDT-SWAP, ETH-27DEC26-3000-C
    "trade_id",  # venue trade id as a string
    "price",  # float
    "size",  # float, in the venue's own unit (base for spot, contracts for OKX swaps, Deribit amount)
    "side",  # "buy" | "sell" (taker side)
    "exchange_ts_ms",  # int, venue timestamp in ms
    "receive_ts_us",  # int, collector clock in us
    "source",  # "ws" | "rest" | "capture"
    "seq",  # int | None: OKX seqId, Deribit trade_seq
    "trade_count",  # int | None: OKX `count` (fills aggregated into this trade)
    "index_price",  # float | None (Deribit)
    "mark_price",  # float | None (Deribit)
    "iv",  # float | None (Deribit options)
    "liquidation",  # str | None (Deribit: "M", "T", "MT")
)

TRADES_SCHEMA = pa.schema(
    [
        ("venue", pa.string()),
        ("market", pa.string()),
        ("instrument", pa.string()),
        ("trade_id", pa.string()),
        ("price", pa.float64()),
        ("size", pa.float64()),
        ("side", pa.string()),
        ("exchange_ts", TS),
        ("receive_ts", TS),
        ("source", pa.string()),
        ("seq", pa.int64()),
        ("trade_count", pa.int64()),
        ("index_price", pa.float64()),
        ("mark_price", pa.float64()),
        ("iv", pa.float64()),
        ("liquidation", pa.string()),
        ("date", pa.date32()),
    ]
)

# --- bronze/quotes -------------------------------------------------------------------------------
QUOTE_FIELDS: tuple[str, ...] = (
    "venue",
    "market",
    "instrument",
    "channel",  # venue channel the row came from: tickers, books5, bbo-tbt, quote, ticker
    "exchange_ts_ms",
    "receive_ts_us",
    "source",
    "seq",  # int | None: OKX books seqId, Deribit change_id where sent
    "bid_px",
    "bid_sz",
    "ask_px",
    "ask_sz",
    "bids",  # None, or tuple of up to 5 (px, sz) pairs below level 1 -> levels 2..5 columns
    "asks",
    "last_px",
    "mark_price",
    "index_price",
    "underlying_price",
    "open_interest",
    "mark_iv",
    "bid_iv",
    "ask_iv",
    "delta",
    "gamma",
    "vega",
    "theta",
    "rho",
)

_LEVEL_COLUMNS = [
    (f"{side}_{what}_{level}", pa.float64())
    for level in range(2, 6)
    for side in ("bid", "ask")
    for what in ("px", "sz")
]

QUOTES_SCHEMA = pa.schema(
    [
        ("venue", pa.string()),
        ("market", pa.string()),
        ("instrument", pa.string()),
        ("channel", pa.string()),
        ("exchange_ts", TS),
        ("receive_ts", TS),
        ("source", pa.string()),
        ("seq", pa.int64()),
        ("bid_px", pa.float64()),
        ("bid_sz", pa.float64()),
        ("ask_px", pa.float64()),
        ("ask_sz", pa.float64()),
        *_LEVEL_COLUMNS,
        ("last_px", pa.float64()),
        ("mark_price", pa.float64()),
        ("index_price", pa.float64()),
        ("underlying_price", pa.float64()),
        ("open_interest", pa.float64()),
        ("mark_iv", pa.float64()),
        ("bid_iv", pa.float64()),
        ("ask_iv", pa.float64()),
        ("delta", pa.float64()),
        ("gamma", pa.float64()),
        ("vega", pa.float64()),
        ("theta", pa.float64()),
        ("rho", pa.float64()),
        ("date", pa.date32()),
    ]
)

# --- bronze/rejects ------------------------------------------------------------------------------
REJECT_FIELDS: tuple[str, ...] = ("venue", "receive_ts_us", "source", "reason", "frame")

REJECTS_SCHEMA = pa.schema(
    [
        ("venue", pa.string()),
        ("receive_ts", TS),
        ("source", pa.string()),
        ("reason", pa.string()),
        ("frame", pa.string()),  # verbatim text of what arrived
        ("date", pa.date32()),
    ]
)

# --- bronze/gaps ---------------------------------------------------------------------------------
GAP_FIELDS: tuple[str, ...] = (
    "gap_id",  # deterministic id: venue|instrument|kind|from
    "venue",
    "instrument",  # "*" for a whole-connection gap (reconnect, restart) covering every instrument
    "kind",  # "seq" | "trade_id" | "reconnect" | "restart" | "stale"
    "from_ts_ms",  # last good exchange/receive time before the gap
    "to_ts_ms",  # first good time after it
    "from_seq",  # int | None: last seen sequence number
    "to_seq",  # int | None: first sequence after the gap
    "status",  # "open" | "filled" | "unfillable"
    "detected_ts_us",
    "detail",  # str: human-readable reason
)

GAPS_SCHEMA = pa.schema(
    [
        ("gap_id", pa.string()),
        ("venue", pa.string()),
        ("instrument", pa.string()),
        ("kind", pa.string()),
        ("from_ts", TS),
        ("to_ts", TS),
        ("from_seq", pa.int64()),
        ("to_seq", pa.int64()),
        ("status", pa.string()),
        ("detected_ts", TS),
        ("detail", pa.string()),
        ("date", pa.date32()),
    ]
)

# --- silver/candles ------------------------------------------------------------------------------
# One closed bar. Keyed (venue, instrument, timeframe, open_time); higher timeframes are exact rollups
# of 1m. ``source`` says where the bar came from: "trades" (aggregated from silver/trades) or
# "exchange" (bronze/candles from backfill, where trades are missing).

CANDLES_SCHEMA = pa.schema(
    [
        ("venue", pa.string()),
        ("market", pa.string()),
        ("instrument", pa.string()),
        ("timeframe", pa.string()),
        ("open_time", TS),  # inclusive
        ("close_time", TS),  # exclusive: open_time + timeframe
        ("open", pa.float64()),
        ("high", pa.float64()),
        ("low", pa.float64()),
        ("close", pa.float64()),
        ("volume", pa.float64()),  # sum of size
        ("quote_volume", pa.float64()),  # sum of price * size (for OKX swaps: in contracts x price)
        ("trade_count", pa.int64()),
        ("vwap", pa.float64()),  # quote_volume / volume
        ("buy_volume", pa.float64()),
        ("sell_volume", pa.float64()),
        ("source", pa.string()),  # "trades" | "exchange"
        ("date", pa.date32()),  # UTC date of open_time (partition)
    ]
)

# --- bronze/candles ------------------------------------------------------------------------------
# Exchange candles (OKX candle channels and history-candles over REST, Deribit chart data), as sent.
CANDLE_FIELDS: tuple[str, ...] = (
    "venue",
    "market",
    "instrument",
    "timeframe",
    "open_ts_ms",
    "open",
    "high",
    "low",
    "close",
    "vol",  # OKX vol: contracts for derivatives, base currency for spot
    "vol_ccy",  # OKX volCcy: base currency for derivatives, quote currency for spot
    "vol_ccy_quote",  # OKX volCcyQuote: quote currency (None on the 7-field candles of older OKX)
    "confirm",  # True once the venue closed the bar (None where the venue does not say)
    "receive_ts_us",
    "source",
)

BRONZE_CANDLES_SCHEMA = pa.schema(
    [
        ("venue", pa.string()),
        ("market", pa.string()),
        ("instrument", pa.string()),
        ("timeframe", pa.string()),  # our names: 1m 5m 15m 1h 4h 1d
        ("open_time", TS),
        ("open", pa.float64()),
        ("high", pa.float64()),
        ("low", pa.float64()),
        ("close", pa.float64()),
        ("vol", pa.float64()),
        ("vol_ccy", pa.float64()),
        ("vol_ccy_quote", pa.float64()),
        ("confirm", pa.bool_()),  # True once the venue closed the bar
        ("receive_ts", TS),
        ("source", pa.string()),  # ws | rest | capture
        ("date", pa.date32()),
    ]
)

# --- bronze/backfill_jobs ------------------------------------------------------------------------
# The backfill checkpoint: one row per committed chunk (pipeline.backfill). The Delta application
# transaction on the data table is what makes a chunk exactly-once; this table is what people and
# resumed runs read to see how far a job got.
BACKFILL_JOBS_SCHEMA = pa.schema(
    [
        ("job_id", pa.string()),
        ("venue", pa.string()),
        ("kind", pa.string()),  # trades | candles
        ("timeframe", pa.string()),  # candles only
        ("instrument", pa.string()),
        ("chunk", pa.int64()),  # 0-based chunk number within the instrument
        ("chunks", pa.int64()),  # chunks of this instrument in the job
        ("start_time", TS),  # chunk window [start, end)
        ("end_time", TS),
        ("rows", pa.int64()),  # rows written (None: recovered after a crash between the two commits)
        ("committed_at", TS),
    ]
)

# --- silver/instruments --------------------------------------------------------------------------
# The instrument universe (pipeline.universe), one row per membership episode: valid_from when an
# instrument entered the top N, valid_to (None while active) when it dropped out, expired or was delisted.
INSTRUMENTS_SCHEMA = pa.schema(
    [
        ("venue", pa.string()),
        ("instrument", pa.string()),
        ("market", pa.string()),
        ("base", pa.string()),
        ("quote", pa.string()),
        ("settle", pa.string()),
        ("tick_size", pa.float64()),
        ("lot_size", pa.float64()),
        ("contract_value", pa.float64()),
        ("listing_time", TS),
        ("expiry_time", TS),
        ("strike", pa.float64()),
        ("option_type", pa.string()),  # call | put
        ("rank", pa.int64()),  # 1 = largest 24 h quote volume at the last refresh
        ("volume_24h_quote", pa.float64()),
        ("open_interest", pa.float64()),
        ("selected_at", TS),  # last refresh that saw it in the top N
        ("valid_from", TS),
        ("valid_to", TS),
        ("active", pa.bool_()),
    ]
)

# --- silver/quote_bars ---------------------------------------------------------------------------
# 1-minute bars of the quote stream (options trade rarely, their quotes tell the price). Keyed
# (venue, instrument, open_time); mid = (bid_px + ask_px) / 2 where both sides are present.
QUOTE_BARS_SCHEMA = pa.schema(
    [
        ("venue", pa.string()),
        ("market", pa.string()),
        ("instrument", pa.string()),
        ("open_time", TS),
        ("close_time", TS),  # open_time + 1 minute
        ("mid_open", pa.float64()),
        ("mid_high", pa.float64()),
        ("mid_low", pa.float64()),
        ("mid_close", pa.float64()),
        ("spread_mean", pa.float64()),  # mean of ask_px - bid_px over the minute's updates
        ("mark_price", pa.float64()),  # last non-null mark price of the minute
        ("mark_iv", pa.float64()),  # last non-null mark iv of the minute (venue's unit)
        ("quote_count", pa.int64()),  # quote updates in the minute
        ("date", pa.date32()),
    ]
)

# --- silver/quarantine ---------------------------------------------------------------------------
# Rows that failed a contract, one row per (row, rule) failure, with the offending row as JSON.
QUARANTINE_SCHEMA = pa.schema(
    [
        ("table", pa.string()),  # the table the row came from, e.g. "bronze/trades"
        ("rule", pa.string()),  # "price:greater_than(0)", or a row rule such as "sequence_order"
        ("column", pa.string()),  # the column checked (the model name for row rules)
        ("check", pa.string()),  # pandera's check, with its bound
        ("failure_case", pa.string()),  # the offending value (the row for row rules)
        ("row", pa.string()),  # the whole offending row as JSON
        ("venue", pa.string()),
        ("instrument", pa.string()),
        ("run_id", pa.string()),
        ("detected_ts", TS),
        ("date", pa.date32()),  # UTC date of detected_ts (partition)
    ]
)

# --- silver/watermarks ---------------------------------------------------------------------------
# How far the silver flow has read each bronze table (Delta version) and published bars (horizon).
# Rewritten in one commit after the silver writes of a run succeeded.
WATERMARKS_SCHEMA = pa.schema(
    [
        ("name", pa.string()),  # "bronze/trades", ..., "horizon/candles", "horizon/quote_bars"
        ("version", pa.int64()),  # Delta version read up to (bronze tables)
        ("horizon", TS),  # bars with close_time <= horizon are published (horizons)
        ("run_id", pa.string()),
        ("updated_ts", TS),
    ]
)

# --- bronze/book_deltas --------------------------------------------------------------------------
# Every level of every full-depth book message (OKX books / books-l2-tbt / books50-l2-tbt, Deribit
# book.*): one row per level per message. Parsers emit one tuple per *message* (``BOOK_FIELDS``) with its
# levels as sent; ``pipeline.lake.book_batches`` explodes them into rows at flush time (cheap on the hot path).
BOOK_FIELDS: tuple[str, ...] = (
    "venue",
    "market",
    "instrument",
    "channel",  # venue channel: books, books-l2-tbt, books50-l2-tbt, book.{inst}.100ms ...
    "exchange_ts_ms",
    "receive_ts_us",
    "source",
    "session",  # one id per subscription incarnation, so a chain can be followed
    "seq",  # int | None: OKX seqId, Deribit change_id
    "prev_seq",  # int | None: OKX prevSeqId (-1 on a snapshot), Deribit prev_change_id
    "checksum",  # int | None: as sent (OKX CRC32, signed; 0 since 2026-06)
    "is_snapshot",  # bool
    "bids",  # the message's bid levels as the venue sent them (see book_batches for the layouts)
    "asks",
)

BOOK_DELTAS_SCHEMA = pa.schema(
    [
        ("venue", pa.string()),
        ("market", pa.string()),
        ("instrument", pa.string()),
        ("channel", pa.string()),
        ("exchange_ts", TS),
        ("receive_ts", TS),
        ("source", pa.string()),
        ("session", pa.string()),
        ("seq", pa.int64()),
        ("prev_seq", pa.int64()),
        ("checksum", pa.int64()),
        ("is_snapshot", pa.bool_()),
        ("side", pa.string()),  # bid | ask; null on a message with no level (a keep-alive: the chain stays visible)
        ("price", pa.float64()),
        ("size", pa.float64()),  # the level's new absolute size; 0 = delete
        ("orders", pa.int64()),  # OKX order count; null elsewhere
        ("action", pa.string()),  # Deribit new | change | delete; null for OKX
        ("date", pa.date32()),
    ]
)

# --- bronze/derivatives --------------------------------------------------------------------------
# One row per derivatives-state update: OKX funding-rate, open-interest, mark-price, index-tickers; Deribit
# perpetual/option ticker funding and open interest, deribit_price_index. Fields a channel does not carry are
# null; fields the venue sends that have no column stay in ``raw`` (JSON) rather than being dropped.
DERIVATIVE_FIELDS: tuple[str, ...] = (
    "venue",
    "market",
    "instrument",  # for index channels the index name (BTC-USDT, eth_usd)
    "channel",
    "exchange_ts_ms",
    "receive_ts_us",
    "source",
    "funding_rate",  # the current period's rate (predicted until its funding time passes)
    "next_funding_rate",
    "funding_time_ms",
    "next_funding_time_ms",
    "open_interest",  # contracts
    "open_interest_ccy",  # base currency
    "open_interest_usd",
    "mark_price",
    "index_price",
    "raw",  # str | None: JSON object of the fields without a column
)

DERIVATIVES_SCHEMA = pa.schema(
    [
        ("venue", pa.string()),
        ("market", pa.string()),
        ("instrument", pa.string()),
        ("channel", pa.string()),
        ("exchange_ts", TS),
        ("receive_ts", TS),
        ("source", pa.string()),
        ("funding_rate", pa.float64()),
        ("next_funding_rate", pa.float64()),
        ("funding_time", TS),
        ("next_funding_time", TS),
        ("open_interest", pa.float64()),
        ("open_interest_ccy", pa.float64()),
        ("open_interest_usd", pa.float64()),
        ("mark_price", pa.float64()),
        ("index_price", pa.float64()),
        ("raw", pa.string()),
        ("date", pa.date32()),
    ]
)

# --- bronze/liquidations -------------------------------------------------------------------------
LIQUIDATION_FIELDS: tuple[str, ...] = (
    "venue",
    "market",
    "instrument",
    "side",  # buy | sell: the side of the liquidation order
    "price",
    "size",
    "exchange_ts_ms",
    "receive_ts_us",
    "source",
    "raw",  # str | None: JSON object of the fields without a column (OKX bkLoss, posSide, ccy, instFamily ...)
)

LIQUIDATIONS_SCHEMA = pa.schema(
    [
        ("venue", pa.string()),
        ("market", pa.string()),
        ("instrument", pa.string()),
        ("side", pa.string()),
        ("price", pa.float64()),
        ("size", pa.float64()),
        ("exchange_ts", TS),
        ("receive_ts", TS),
        ("source", pa.string()),
        ("raw", pa.string()),
        ("date", pa.date32()),
    ]
)

# --- bronze/funding ------------------------------------------------------------------------------
# Settled funding history over REST (OKX funding-rate-history, Deribit get_funding_rate_history).
FUNDING_FIELDS: tuple[str, ...] = (
    "venue",
    "instrument",
    "funding_time_ms",
    "funding_rate",
    "realized_rate",  # OKX realizedRate; None where the venue has none
    "interval_hours",  # float | None: hours since the previous settlement, where the venue says
    "receive_ts_us",
    "source",
)

FUNDING_SCHEMA = pa.schema(
    [
        ("venue", pa.string()),
        ("instrument", pa.string()),
        ("funding_time", TS),
        ("funding_rate", pa.float64()),
        ("realized_rate", pa.float64()),
        ("interval_hours", pa.float64()),
        ("receive_ts", TS),
        ("source", pa.string()),
    ]
)

# --- silver/funding ------------------------------------------------------------------------------
# One row per settlement (venue, instrument, funding_time): the REST history where bronze/funding has it,
# else the last streamed prediction once its funding time has passed (pipeline.silver.funding).
SILVER_FUNDING_SCHEMA = pa.schema(
    [
        ("venue", pa.string()),
        ("instrument", pa.string()),
        ("funding_time", TS),
        ("funding_rate", pa.float64()),  # settled: OKX realizedRate (else fundingRate), Deribit interest_1h
        ("interval_hours", pa.float64()),  # hours since the instrument's previous settlement; null: none known
        ("rate_cap", pa.float64()),  # |funding_rate| <= rate_cap: the cap the contract checked
        ("source", pa.string()),  # rest | stream
    ]
)


# --- silver/derivative_bars ----------------------------------------------------------------------
# 1-minute bars of the derivatives state per (venue, instrument) of swaps and futures
# (pipeline.silver.derivative_bars). Every value column is null where the minute has nothing for it.
DERIVATIVE_BARS_SCHEMA = pa.schema(
    [
        ("venue", pa.string()),
        ("market", pa.string()),  # swap | future
        ("instrument", pa.string()),
        ("open_time", TS),
        ("close_time", TS),  # open_time + 1 minute
        ("mark_open", pa.float64()),
        ("mark_high", pa.float64()),
        ("mark_low", pa.float64()),
        ("mark_close", pa.float64()),
        ("index_close", pa.float64()),  # last index price of the minute (the instrument's underlying index)
        ("basis", pa.float64()),  # mark_close / index_close - 1, where both exist in the minute
        ("open_interest", pa.float64()),  # last of the minute, in the venue's units (contracts)
        ("open_interest_ccy", pa.float64()),
        ("open_interest_usd", pa.float64()),
        ("funding_rate", pa.float64()),  # last predicted rate of the minute (the current period's)
        ("liq_buy_volume", pa.float64()),  # sizes of the minute's buy liquidation orders (0: none)
        ("liq_sell_volume", pa.float64()),
        ("liq_buy_count", pa.int64()),
        ("liq_sell_count", pa.int64()),
        ("date", pa.date32()),
    ]
)

# --- silver/book_snapshots, silver/book_segments, silver/book_state (issue #16) ----------------------
# Books rebuilt from bronze/book_deltas (pipeline.silver.books). A snapshot is the top N levels per side
# (best first) at a grid instant, inside a verified segment only: from a venue snapshot to the next break.
_LEVELS = pa.list_(pa.float64())
BOOK_SNAPSHOTS_SCHEMA = pa.schema(
    [
        ("venue", pa.string()),
        ("instrument", pa.string()),
        ("channel", pa.string()),
        ("ts", TS),  # the grid instant; the state after the last message at or before it (exchange time)
        ("segment_id", pa.string()),  # "{session}#{n}": the n-th snapshot of that session
        ("bid_px", _LEVELS),
        ("bid_sz", _LEVELS),
        ("ask_px", _LEVELS),
        ("ask_sz", _LEVELS),
        ("last_seq", pa.int64()),  # the last message applied (null where the venue sends no sequence)
        ("last_ts", TS),
        ("age_ms", pa.int64()),  # ts - last_ts
        ("date", pa.date32()),
    ]
)
# One row per verified segment, open or ended; an ended one says what ended it (a break is recorded here).
BOOK_SEGMENTS_SCHEMA = pa.schema(
    [
        ("venue", pa.string()),
        ("instrument", pa.string()),
        ("channel", pa.string()),
        ("session", pa.string()),
        ("segment_id", pa.string()),
        ("segment_no", pa.int64()),
        ("start_ts", TS),  # the venue snapshot that started it
        ("start_seq", pa.int64()),
        ("end_ts", TS),  # the last message applied
        ("end_seq", pa.int64()),
        ("messages", pa.int64()),  # messages applied
        ("status", pa.string()),  # open | ended
        ("end_reason", pa.string()),  # null (open) | snapshot | chain | crossed | gap | rest_chain
        ("break_ts", TS),  # the message that broke it (null when replaced by a snapshot)
        ("break_seq", pa.int64()),
        ("gap_id", pa.string()),  # the bronze/gaps row (kind book) that named the break, if any
        ("detail", pa.string()),
    ]
)
# Per-minute features of a verified book (pipeline.silver.books.features): one row per (venue, instrument,
# channel, minute) with any verified coverage; time weights only inside verified segments, never across a break.
BOOK_FEATURES_SCHEMA = pa.schema(
    [
        ("venue", pa.string()),
        ("instrument", pa.string()),
        ("channel", pa.string()),
        ("open_time", TS),  # the minute
        ("session", pa.string()),  # the chain the row comes from (two sessions of one minute: the most covered)
        ("mid_open", pa.float64()),  # mid of the first verified book in force in the minute
        ("mid_high", pa.float64()),
        ("mid_low", pa.float64()),
        ("mid_close", pa.float64()),  # mid at the end of the minute's last covered stretch
        ("spread_bps", pa.float64()),  # time-weighted (ask - bid) / mid * 1e4
        ("imb1_mean", pa.float64()),  # time-weighted Qb / (Qb + Qa) on the best levels
        ("imb1_last", pa.float64()),
        ("imb5_mean", pa.float64()),  # the same over the sizes of the top 5 levels per side
        ("imb5_last", pa.float64()),
        ("microprice", pa.float64()),  # last (Pa*Qb + Pb*Qa) / (Qb + Qa)
        ("depth10_bid", pa.float64()),  # time-weighted size within 10 bps of mid (top FEATURE_DEPTH levels)
        ("depth10_ask", pa.float64()),
        ("depth50_bid", pa.float64()),
        ("depth50_ask", pa.float64()),
        ("ofi", pa.float64()),  # order-flow imbalance (Cont, Kukanov, Stoikov 2014) summed over the messages
        ("messages", pa.int64()),  # book messages applied in the minute
        ("book_cover", pa.float64()),  # share of the minute covered by a verified two-sided book, (0, 1]
        ("date", pa.date32()),
    ]
)
# The open minute of each chain carried to the next run (per-message values, not levels), at the bronze
# version of silver/book_state it belongs to.
BOOK_FEATURE_STATE_SCHEMA = pa.schema(
    [
        ("venue", pa.string()),
        ("instrument", pa.string()),
        ("channel", pa.string()),
        ("session", pa.string()),
        ("from_time", TS),  # minutes before this one are published
        ("ts", TS),
        ("status", pa.int8()),
        *((c, pa.float64()) for c in ("bid_px", "bid_sz", "ask_px", "ask_sz", "mid", "spread_bps", "imb1",
                                      "imb5", "microprice", "depth10_bid", "depth10_ask", "depth50_bid",
                                      "depth50_ask")),
        ("bronze_version", pa.int64()),
    ]
)  # fmt: skip
# Each chain's book where the last silver run left it: the next run continues from here (one row per chain).
BOOK_STATE_SCHEMA = pa.schema(
    [
        ("venue", pa.string()),
        ("instrument", pa.string()),
        ("channel", pa.string()),
        ("session", pa.string()),
        ("valid", pa.bool_()),  # a segment is open: the levels below are the venue's book
        ("segment_no", pa.int64()),
        ("first_ts", TS),
        ("last_ts", TS),
        ("last_seq", pa.int64()),
        ("position_ts", TS),  # the last message seen (exchange ts, seq, receive ts): later rows continue
        ("position_seq", pa.int64()),
        ("position_receive_ts", TS),
        ("rest_floor", pa.int64()),
        ("bid_px", _LEVELS),  # the full book, best first
        ("bid_sz", _LEVELS),
        ("ask_px", _LEVELS),
        ("ask_sz", _LEVELS),
        ("bronze_version", pa.int64()),  # bronze/book_deltas version the state reflects (same on every row)
        ("updated_ts", TS),
    ]
)
