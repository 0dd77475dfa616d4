"""OKX v5 REST for backfill, gap filling and the universe: limits, timeframes, history depth, paging.

Paging rules (OKX docs, checked against the simulator which implements the same semantics):
- ``GET /api/v5/market/history-trades``: 100 rows a call, newest first. ``type=1`` pages by trade id
  (``after`` = older than that id, ``before`` = newer than), ``type=2`` by timestamp. Public trade
  history has no ``since``: a window [a, b) is read by seeking once by time (``type=2, after=b``) and then
  paging back by trade id (``type=1``), which never splits trades that share a millisecond.
- ``GET /api/v5/market/history-candles``: 100 bars a call, newest first, ``after`` = open time older than.
  Rows are ``[ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm]``.
- History depth: history-trades serves the last 3 months.

Rows are built by ``pipeline.venues.okx`` (``trade_row``, ``candle_row``), the parser the WebSocket uses:
this module keeps paging, limits and resumption. A row that parser refuses, or paging that does not move
back, raises ``VenueResponseError`` naming the endpoint and the problem (backfill has no rejects table).
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from pipeline.backfill.rest import RestClient
from pipeline.backfill.rows import page_rows
from pipeline.errors import VenueResponseError
from pipeline.lake.schemas import CANDLE_FIELDS, TIMEFRAME_MS, TRADE_FIELDS
from pipeline.venues.okx import INST_TYPES, candle_row, market_of, trade_row

NAME = "okx"
CCXT_CLASS = "okx"
PAGE_ROWS = 100  # history-trades and history-candles
REST_LIMITS: dict[str, tuple[float, float]] = {  # (requests, per seconds), per endpoint and IP
    "market/history-trades": (20, 2.0),
    "market/history-candles": (20, 2.0),
    "market/tickers": (20, 2.0),
    "public/instruments": (20, 2.0),
    "rubik/stat/contracts/open-interest-history": (10, 2.0),  # per IP and instrument: one bucket for all (safe)
}
DEFAULT_REST_LIMIT = (10, 2.0)
LIMIT_SAFETY = 0.95  # stay just under the venue's bucket: its clock and ours drift
RETRY_CODES = frozenset({"50001", "50004", "50011", "50013", "50026"})  # busy, timeout, rate limit, system error
TRADE_HISTORY_MS: int | None = 90 * 86_400_000  # history-trades: last 3 months
# our timeframe -> OKX bar. Daily bars use the UTC-aligned "1Dutc" (plain "1D" opens at 00:00 UTC+8).
TIMEFRAMES: dict[str, str] = {"1m": "1m", "5m": "5m", "15m": "15m", "1h": "1H", "4h": "4H", "1d": "1Dutc"}
TRADES = "market/history-trades"
CANDLES = "market/history-candles"
_ID, _TS = TRADE_FIELDS.index("trade_id"), TRADE_FIELDS.index("exchange_ts_ms")
_OPEN, _CONFIRM = CANDLE_FIELDS.index("open_ts_ms"), CANDLE_FIELDS.index("confirm")


def _now_us() -> int:
    return time.time_ns() // 1000


def _trade_rows(instrument: str, page: list[Any]) -> list[tuple[Any, ...]]:
    receive_us = _now_us()
    rows = page_rows(NAME, TRADES, instrument, page, partial(trade_row, receive_us=receive_us, source="rest"))
    for row in rows:
        if not row[_ID].isdigit():  # paging is by trade id: it must be a number
            raise VenueResponseError(NAME, TRADES, instrument, f"tradeId is not an integer: {row[_ID]!r}")
    return rows


def _did_not_page_back(endpoint: str, instrument: str, past: str) -> VenueResponseError:
    return VenueResponseError(NAME, endpoint, instrument, f"paging did not move back past {past}")


async def _history_trades(client: RestClient, instrument: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    body = await client.call(
        TRADES, "publicGetMarketHistoryTrades", {"instId": instrument, **params, "limit": str(PAGE_ROWS)}
    )
    return _trade_rows(instrument, list(body.get("data") or []))


async def trades_between(client: RestClient, instrument: str, start_ms: int, end_ms: int) -> list[tuple[Any, ...]]:
    """Every trade with ``start_ms <= ts < end_ms``, as bronze rows, oldest first."""
    rows: list[tuple[Any, ...]] = []
    page = await _history_trades(client, instrument, {"type": "2", "after": str(end_ms)})
    last_min_id: int | None = None
    while page:
        rows.extend(r for r in page if start_ms <= r[_TS] < end_ms)
        min_id = min(int(r[_ID]) for r in page)
        if len(page) < PAGE_ROWS or min(r[_TS] for r in page) < start_ms:
            break
        if last_min_id is not None and min_id >= last_min_id:  # a venue that stopped paging backwards
            raise _did_not_page_back(TRADES, instrument, f"trade id {min_id}")
        last_min_id = min_id
        page = await _history_trades(client, instrument, {"type": "1", "after": str(min_id)})
    rows.sort(key=lambda r: int(r[_ID]))
    return rows


async def trades_in_id_gap(client: RestClient, instrument: str, from_id: int, to_id: int) -> list[tuple[Any, ...]]:
    """Trades with ``from_id < trade id < to_id`` (a gap the stream detected), oldest first."""
    rows: list[tuple[Any, ...]] = []
    after = to_id
    while after - 1 > from_id:
        page = await _history_trades(client, instrument, {"type": "1", "after": str(after), "before": str(from_id)})
        rows.extend(r for r in page if from_id < int(r[_ID]) < to_id)
        if len(page) < PAGE_ROWS:
            break
        next_after = min(int(r[_ID]) for r in page)
        if next_after >= after:
            raise _did_not_page_back(TRADES, instrument, f"trade id {after}")
        after = next_after
    rows.sort(key=lambda r: int(r[_ID]))
    return rows


async def candles_between(
    client: RestClient, instrument: str, timeframe: str, start_ms: int, end_ms: int
) -> list[tuple[Any, ...]]:
    """Closed bars opening in [start_ms, end_ms), as bronze/candles rows, oldest first. The bar still
    forming (``confirm`` = "0") is left out: the next run fetches it once it closed. Bars without a
    confirm field (older OKX's 7-field rows) count as closed once their end is past."""
    bar, bar_ms = TIMEFRAMES[timeframe], TIMEFRAME_MS[timeframe]
    rows: list[tuple[Any, ...]] = []
    after = end_ms
    while after > start_ms:
        body = await client.call(
            CANDLES,
            "publicGetMarketHistoryCandles",
            {"instId": instrument, "bar": bar, "after": str(after), "limit": str(PAGE_ROWS)},
        )
        receive_us = _now_us()
        page = page_rows(
            NAME,
            CANDLES,
            instrument,
            body.get("data") or [],
            partial(candle_row, instrument=instrument, timeframe=bar, receive_us=receive_us, source="rest"),
        )
        now_ms = receive_us // 1000
        for row in page:
            ts, confirm = row[_OPEN], row[_CONFIRM]
            if start_ms <= ts < end_ms and (confirm or (confirm is None and ts + bar_ms <= now_ms)):
                rows.append(row)
        if len(page) < PAGE_ROWS:
            break
        oldest = min(r[_OPEN] for r in page)
        if oldest >= after:
            raise _did_not_page_back(CANDLES, instrument, f"bar {after}")
        after = oldest
    rows.sort(key=lambda r: r[_OPEN])
    return rows


async def list_instruments(
    client: RestClient, markets: set[str], names: set[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Live instruments of the given markets: instId -> silver/instruments fields (no rank/volume)."""
    out: dict[str, dict[str, Any]] = {}
    for market in sorted(markets):
        params: dict[str, Any] = {"instType": INST_TYPES[market]}
        if market == "option":  # OKX wants the family for options: one call per family asked for
            families = sorted({"-".join(n.split("-")[:2]) for n in (names or set()) if market_of(n) == "option"})
            calls = [{**params, "instFamily": f} for f in families]
        else:
            calls = [params]
        for p in calls:
            body = await client.call("public/instruments", "publicGetPublicInstruments", p)
            for row in body.get("data") or []:
                out[row["instId"]] = _instrument_fields(row, market)
    return out


def _num(raw: Any) -> float | None:
    return float(raw) if raw not in (None, "") else None


def _instrument_fields(row: dict[str, Any], market: str) -> dict[str, Any]:
    inst = row["instId"]
    parts = inst.split("-")
    return {
        "venue": "okx", "instrument": inst, "market": market,
        "base": row.get("baseCcy") or parts[0], "quote": row.get("quoteCcy") or parts[1],
        "settle": row.get("settleCcy") or None, "tick_size": _num(row.get("tickSz")), "lot_size": _num(row.get("lotSz")),
        "contract_value": _num(row.get("ctVal")), "listing_time_ms": int(row["listTime"]) if row.get("listTime") else None,
        "expiry_time_ms": int(row["expTime"]) if row.get("expTime") else None, "strike": _num(row.get("stk")),
        "option_type": {"C": "call", "P": "put"}.get(row.get("optType") or ""),
    }  # fmt: skip


async def universe_candidates(client: RestClient, markets: tuple[str, ...]) -> list[dict[str, Any]]:
    """Every live instrument of ``markets`` with its 24 h quote volume (from ``market/tickers``).

    OKX ``volCcy24h`` is in quote currency for spot but in base currency for swaps, so swap quote
    volume is ``volCcy24h * last``.
    """
    infos = await list_instruments(client, set(markets))
    out: list[dict[str, Any]] = []
    for market in markets:
        body = await client.call("market/tickers", "publicGetMarketTickers", {"instType": INST_TYPES[market]})
        for t in body.get("data") or []:
            info = infos.get(t["instId"])
            if info is None:
                continue
            vol_ccy = _num(t.get("volCcy24h")) or 0.0
            last = _num(t.get("last")) or 0.0
            quote_volume = vol_ccy if market == "spot" else vol_ccy * last
            out.append({**info, "volume_24h_quote": quote_volume, "open_interest": None})
    return out
