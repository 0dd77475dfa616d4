"""Deribit v2 REST for backfill, gap filling and the universe: limits, timeframes, history depth, paging.

Paging rules (Deribit docs, checked against the simulator which implements the same semantics):
- ``public/get_last_trades_by_instrument_and_time``: up to 1000 trades a call; ``sorting=asc`` gives the
  oldest of [start_timestamp, end_timestamp] (both inclusive) and ``has_more``. The next page starts at
  the last timestamp seen, dropping the ``trade_seq`` already read (trades can share a millisecond).
  ``include_old=true``, otherwise only the last few days are served.
- ``public/get_last_trades_by_instrument``: the same, selected by ``start_seq``/``end_seq`` (``trade_seq``
  is contiguous per instrument, so a seq gap is read exactly).
- ``public/get_tradingview_chart_data``: bars by resolution, at most 5000 a call, oldest first; the last
  bar may still be forming and has no confirm flag, so only bars that closed before now are kept.
- Limits: public calls share one credit pool (~20 requests/s sustained, burst 100);
  ``public/get_instruments`` is limited to about 1 request/s.

Rows are built by ``pipeline.venues.deribit`` (``trade_row``, ``candle_row``), the parser the WebSocket
uses: this module keeps paging, limits and resumption. A row that parser refuses raises
``VenueResponseError`` naming the method and the problem (backfill has no rejects table).
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from pipeline.backfill.rest import RestClient
from pipeline.backfill.rows import page_rows
from pipeline.lake.schemas import CANDLE_FIELDS, TIMEFRAME_MS, TRADE_FIELDS
from pipeline.venues.deribit import candle_row, market_of, trade_row

NAME = "deribit"
CCXT_CLASS = "deribit"
PAGE_TRADES = 1000
PAGE_BARS = 5000
REST_LIMITS: dict[str, tuple[float, float]] = {
    "credits": (100, 5.0),  # every public method but get_instruments
    "public/get_instruments": (5, 5.0),
}
DEFAULT_REST_LIMIT = REST_LIMITS["credits"]
LIMIT_SAFETY = 0.95
RETRY_CODES = frozenset({"10028", "10040", "11051", "11094", "13028"})  # too many, retry, maintenance, 5xx
TRADE_HISTORY_MS: int | None = None  # include_old=true serves the whole history
# our timeframe -> Deribit resolution (bars are UTC-aligned, daily "1D" included)
TIMEFRAMES: dict[str, str] = {"1m": "1", "5m": "5", "15m": "15", "1h": "60", "4h": "240", "1d": "1D"}
BY_TIME = "public/get_last_trades_by_instrument_and_time"
BY_SEQ = "public/get_last_trades_by_instrument"
CHART = "public/get_tradingview_chart_data"
_TS, _SEQ = TRADE_FIELDS.index("exchange_ts_ms"), TRADE_FIELDS.index("seq")
_OPEN = CANDLE_FIELDS.index("open_ts_ms")
# chart data columns (one value per bar) -> the fields of a chart.trades push, which candle_row reads
_BAR_COLUMNS = {
    "tick": "ticks",
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "volume": "volume",
    "cost": "cost",
}


def _bar(columns: dict[str, Any], i: int) -> dict[str, Any]:
    """Bar ``i`` of a chart data answer; a value missing from a short column stays None for candle_row to name."""
    return {
        key: col[i] if isinstance(col := columns.get(name), list) and i < len(col) else None
        for key, name in _BAR_COLUMNS.items()
    }


def _trade_rows(method: str, instrument: str, page: list[Any]) -> list[tuple[Any, ...]]:
    receive_us = time.time_ns() // 1000
    return page_rows(NAME, method, instrument, page, partial(trade_row, receive_us=receive_us, source="rest"))


async def trades_between(client: RestClient, instrument: str, start_ms: int, end_ms: int) -> list[tuple[Any, ...]]:
    """Every trade with ``start_ms <= ts < end_ms``, as bronze rows, oldest first."""
    rows: list[tuple[Any, ...]] = []
    cursor_ms, last_seq = start_ms, -1
    while cursor_ms < end_ms:
        body = await client.call(
            "credits",
            "publicGetGetLastTradesByInstrumentAndTime",
            {"instrument_name": instrument, "start_timestamp": cursor_ms, "end_timestamp": end_ms - 1,
             "count": PAGE_TRADES, "sorting": "asc", "include_old": "true"},
        )  # fmt: skip
        result = body.get("result") or {}
        page = [r for r in _trade_rows(BY_TIME, instrument, result.get("trades") or []) if r[_SEQ] > last_seq]
        rows.extend(page)
        if not result.get("has_more"):
            break
        if not page:  # a full page inside one millisecond: read the rest of it by sequence number
            rows.extend(await _trades_by_seq(client, instrument, last_seq, None, cursor_ms, cursor_ms))
            cursor_ms += 1
            last_seq = max([last_seq] + [r[_SEQ] for r in rows])
            continue
        last_seq = page[-1][_SEQ]
        cursor_ms = page[-1][_TS]
    return rows


async def _trades_by_seq(
    client: RestClient, instrument: str, after_seq: int, before_seq: int | None, start_ms: int, end_ms: int
) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    next_seq = after_seq + 1
    while before_seq is None or next_seq < before_seq:
        params: dict[str, Any] = {"instrument_name": instrument, "start_seq": next_seq, "count": PAGE_TRADES,
                                  "sorting": "asc", "include_old": "true", "start_timestamp": start_ms,
                                  "end_timestamp": end_ms}  # fmt: skip
        if before_seq is not None:
            params["end_seq"] = before_seq - 1
        body = await client.call("credits", "publicGetGetLastTradesByInstrument", params)
        result = body.get("result") or {}
        page = _trade_rows(BY_SEQ, instrument, result.get("trades") or [])
        rows.extend(page)
        if not page or not result.get("has_more"):
            break
        next_seq = page[-1][_SEQ] + 1
    return rows


async def trades_in_id_gap(
    client: RestClient, instrument: str, from_seq: int, to_seq: int, from_ms: int = 0, to_ms: int | None = None
) -> list[tuple[Any, ...]]:
    """Trades with ``from_seq < trade_seq < to_seq`` (a gap the stream detected), oldest first.
    The time bounds only narrow the venue's search."""
    end_ms = to_ms if to_ms is not None else time.time_ns() // 1_000_000
    return await _trades_by_seq(client, instrument, from_seq, to_seq, from_ms, end_ms)


async def candles_between(
    client: RestClient, instrument: str, timeframe: str, start_ms: int, end_ms: int
) -> list[tuple[Any, ...]]:
    """Closed bars opening in [start_ms, end_ms), as bronze/candles rows (timeframe in our names, since
    Deribit's "1D" would read as OKX's UTC+8 bar), oldest first. Deribit does not flag the bar still
    forming: bars are kept (confirm True) once their end is past."""
    bar_ms = TIMEFRAME_MS[timeframe]
    rows: list[tuple[Any, ...]] = []
    cursor = start_ms
    while cursor < end_ms:
        window_end = min(end_ms, cursor + PAGE_BARS * bar_ms)
        body = await client.call(
            "credits",
            "publicGetGetTradingviewChartData",
            {"instrument_name": instrument, "resolution": TIMEFRAMES[timeframe],
             "start_timestamp": cursor, "end_timestamp": window_end - 1},
        )  # fmt: skip
        columns = body.get("result") or {}
        now_ms = time.time_ns() // 1_000_000
        receive_us = now_ms * 1000
        bars = [_bar(columns, i) for i in range(len(columns.get("ticks") or []))]
        page = page_rows(
            NAME,
            CHART,
            instrument,
            bars,
            partial(
                candle_row,
                instrument=instrument,
                timeframe=timeframe,
                receive_us=receive_us,
                source="rest",
                confirm=True,
            ),
        )
        rows += [row for row in page if start_ms <= row[_OPEN] < end_ms and row[_OPEN] + bar_ms <= now_ms]
        cursor = window_end
    rows.sort(key=lambda row: row[_OPEN])
    return rows


def _currency(name: str) -> str:
    return name.split("-")[0].split("_")[0]


async def list_instruments(
    client: RestClient, markets: set[str], names: set[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Live instruments (every kind) of the currencies named in ``names`` (ETH when none)."""
    del markets  # one call per currency lists every kind
    out: dict[str, dict[str, Any]] = {}
    for currency in sorted({_currency(n) for n in names or ()} or {"ETH"}):
        body = await client.call(
            "public/get_instruments", "publicGetGetInstruments", {"currency": currency, "expired": "false"}
        )
        for row in body.get("result") or []:
            out[row["instrument_name"]] = _instrument_fields(row)
    return out


def _instrument_fields(row: dict[str, Any]) -> dict[str, Any]:
    name = row["instrument_name"]
    try:
        market = market_of(name)
    except ValueError:
        market = row.get("kind") or "unknown"
    perpetual = market == "swap"
    return {
        "venue": "deribit", "instrument": name, "market": market, "base": row.get("base_currency"),
        "quote": row.get("counter_currency") or row.get("quote_currency"), "settle": row.get("settlement_currency"),
        "tick_size": row.get("tick_size"), "lot_size": row.get("min_trade_amount"),
        "contract_value": row.get("contract_size"), "listing_time_ms": row.get("creation_timestamp"),
        "expiry_time_ms": None if perpetual else row.get("expiration_timestamp"), "strike": row.get("strike"),
        "option_type": row.get("option_type"),
    }  # fmt: skip


async def universe_candidates(client: RestClient, currency: str = "ETH") -> list[dict[str, Any]]:
    """Every live ``currency`` option with 24 h volume in USD and open interest.

    ``volume_usd`` where Deribit sends it, else ``volume`` (contracts of 1 coin) x the underlying price.
    """
    infos = await list_instruments(client, {"option"}, {currency})
    body = await client.call("credits", "publicGetGetBookSummaryByCurrency", {"currency": currency, "kind": "option"})
    out: list[dict[str, Any]] = []
    for s in body.get("result") or []:
        info = infos.get(s["instrument_name"])
        if info is None or info["market"] != "option":
            continue
        volume_usd = float(s.get("volume_usd") or 0.0) or float(s.get("volume") or 0.0) * float(
            s.get("underlying_price") or 0.0
        )
        out.append({**info, "volume_24h_quote": volume_usd, "open_interest": float(s.get("open_interest") or 0.0)})
    return out
