"""Deribit API v2 WebSocket (JSON-RPC 2.0): declarations, symbol rules, subscribe frames, pure parsers.

Wire facts (Deribit docs, checked against ../shared/realdata/deribit): numbers are JSON numbers,
timestamps are ms ints, ``trade_id`` is a string, ``trade_seq`` is contiguous per instrument (a gap
detector). Public sessions must use the ``.100ms`` (or ``agg2``) channels: ``.raw`` needs an
authenticated session and answers error 13778.

Books: ``book.{inst}.100ms`` (our "book" and "option_book") sends a snapshot, then "change" frames chained
by ``prev_change_id``: every message is one book message in ``ParsedBatch.books`` (bronze/book_deltas),
verified by ``pipeline.ingest.book_chain`` (a pure parser keeps no book); the snapshot also gives a quote
row (top of book + levels 2..5, ``change_id`` as ``seq``). Our "quotes" channel is ``quote.{inst}`` (best
bid/ask on every change), which needs no book.

Empty sides: Deribit reports "no order on this side" as price 0 and amount 0 (or null) in ticker and
quote; those become None, not an error. Any other non-positive or non-finite price is an error.

Derivatives state: the ticker of a perpetual, future or option also gives a bronze/derivatives row (funding,
open interest, mark and index price), and ``deribit_price_index.{index}`` one per push (``deribit_derivatives``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson

from pipeline.errors import ConfigError, FrameError
from pipeline.venues import deribit_derivatives
from pipeline.venues._parsing import (
    INF,
    SIDES,
    BadField,
    MarketMemo,
    first_bad_field,
    int64_or_none,
    market_by_name,
    plain_number,
    reason,
)
from pipeline.venues.base import Control, ParsedBatch, Subscription

# --- declarations --------------------------------------------------------------------------------
NAME = "deribit"
WS_BASE = "wss://www.deribit.com"
WS_PATH = "/ws/api/v2"
WS_URL = WS_BASE + WS_PATH
REST_URL = "https://www.deribit.com/api/v2"
# A recorded URL containing one of these was spoken in Deribit's protocol (the paths match the simulator's too).
CAPTURE_URL_MARKERS: tuple[str, ...] = ("deribit.com", "/ws/api/v2", "/api/v2/")

# Our channel names -> Deribit channel templates.
CHANNELS: dict[str, str] = {
    "trades": "trades.{inst}.100ms",
    "quotes": "quote.{inst}",
    "ticker": "ticker.{inst}.100ms",
    "candles": "chart.trades.{inst}.1",  # 1-minute bars
    # Funding, open interest, mark and index prices come with "ticker" (issue #17); the price index has its own:
    "index": "deribit_price_index.{index}",  # the instrument's index: eth_usd for ETH-PERPETUAL and ETH options
    # Full-depth books (issue #15) -> bronze/book_deltas; public sessions use .100ms (.raw needs auth).
    # "book" for perpetuals, futures and spot; "option_book" for options, so a configuration with the whole
    # option universe as instruments can still take books for the perpetual only.
    "book": "book.{inst}.100ms",
    "option_book": "book.{inst}.100ms",
}
# Our channels that only apply to some markets (the rest apply to every market): the stream subscribes a
# channel for an instrument only where ``channels_for(market)`` has it.
# The index only with perpetuals and futures: an option shares its perpetual's index (eth_usd), and hundreds of
# options spread over several connections would each subscribe it again.
_CHANNEL_MARKETS: dict[str, frozenset[str]] = {
    "index": frozenset(("swap", "future")),
    "book": frozenset(("swap", "future", "spot")),
    "option_book": frozenset(("option",)),
}
# Streams several instruments share: an instrument leaving does not unsubscribe them.
_SHARED_CHANNELS = frozenset(("index",))

# Limits and keepalive (Deribit docs: "Rate Limits", public/set_heartbeat).
HEARTBEAT_INTERVAL_SECS = 30  # public/set_heartbeat interval; Deribit's minimum is 10
REQUESTS_PER_SEC = 20  # non-matching-engine credit refill for an unauthenticated session
MAX_CHANNELS_PER_REQUEST = 100  # our own batch size for public/subscribe


# --- symbol rules --------------------------------------------------------------------------------
# ETH-PERPETUAL / BTC_USDC-PERPETUAL swap, BTC-30SEP22 future, ETH-27DEC26-3000-C option (strikes may
# carry a decimal "d": XRP_USDC-27DEC24-0d625-C), BTC_USDC spot. Combos (BTC-FS-..., -CS-) are not
# supported. Anchored patterns also keep path separators and ".." out of instrument names.
_UNDERLYING = r"[A-Z0-9]+(?:_[A-Z0-9]+)?"
_EXPIRY = r"\d{1,2}[A-Z]{3}\d{2}"
_SWAP = re.compile(_UNDERLYING + r"-PERPETUAL")
_FUTURE = re.compile(_UNDERLYING + "-" + _EXPIRY)
_OPTION = re.compile(_UNDERLYING + "-" + _EXPIRY + r"-\d+(?:d\d+)?-[CP]")
_SPOT = re.compile(r"[A-Z0-9]+_[A-Z0-9]+")


_PATTERNS = (("swap", _SWAP), ("option", _OPTION), ("future", _FUTURE), ("spot", _SPOT))


def market_of(instrument: str) -> str:
    """ "spot" | "swap" | "future" | "option" for a Deribit instrument_name; ValueError otherwise."""
    return market_by_name(instrument, _PATTERNS, "a Deribit instrument name")


def listing_paths(instruments: list[str]) -> list[str]:
    """REST paths whose answers list these instruments (one per currency, every kind), to check names
    before subscribing: Deribit refuses a whole subscribe request when one channel in it is invalid."""
    currencies = {inst.split("-")[0].split("_")[0] for inst in instruments}  # BTC-PERPETUAL, ETH_USDC -> currency
    return [f"/api/v2/public/get_instruments?currency={c}&expired=false" for c in sorted(currencies)]


def options_listing_path(currency: str) -> str:
    return f"/api/v2/public/get_instruments?currency={currency}&kind=option&expired=false"


def listed_names(body: Any) -> list[str]:
    """Instrument names in a get_instruments answer: {"jsonrpc":"2.0","result":[{"instrument_name":...}]}."""
    return [row["instrument_name"] for row in body.get("result") or [] if row.get("is_active", True)]


_MEMO = MarketMemo(market_of, "instrument_name")
_MARKETS = _MEMO.cache  # hot path: a dict hit; ``_market`` on a miss
_market = _MEMO.slow
_Bad = BadField


# --- connections and requests --------------------------------------------------------------------
def venue_channel(sub: Subscription) -> str:
    try:
        template = CHANNELS[sub.channel]
    except KeyError:
        raise ConfigError(
            "channels", f"deribit has no channel {sub.channel!r}", f"use one of {', '.join(CHANNELS)}"
        ) from None
    if sub.channel == "index":
        return template.format(index=deribit_derivatives.index_name(sub.instrument))
    return template.format(inst=sub.instrument)


def channels_for(market: str) -> tuple[str, ...]:
    """Our channels that apply to an instrument of ``market`` ("spot" | "swap" | "future" | "option")."""
    return tuple(c for c in CHANNELS if c not in _CHANNEL_MARKETS or market in _CHANNEL_MARKETS[c])


def ws_path_for(sub: Subscription) -> str:
    return WS_PATH  # one endpoint for everything


def ws_url_for(sub: Subscription, base: str = WS_BASE) -> str:
    return base + WS_PATH


def _rpc(method: str, params: dict, request_id: int) -> str:
    return orjson.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}).decode()


def _channel_frames(method: str, subs: list[Subscription], request_id: int) -> list[str]:
    channels = list(dict.fromkeys(venue_channel(s) for s in subs))  # a shared index is subscribed once
    return [
        _rpc(method, {"channels": channels[start : start + MAX_CHANNELS_PER_REQUEST]}, request_id + n)
        for n, start in enumerate(range(0, len(channels), MAX_CHANNELS_PER_REQUEST))
    ]


def subscribe_frames(subs: list[Subscription], request_id: int) -> list[str]:
    """``public/subscribe`` frames; the k-th frame has id ``request_id + k`` (the ack echoes it)."""
    return _channel_frames("public/subscribe", subs, request_id)


def unsubscribe_frames(subs: list[Subscription], request_id: int) -> list[str]:
    """``public/unsubscribe`` frames. Its result is a channel list like subscribe's, so parse() returns
    Control("ack") for both: the session tells them apart by ``request_id``."""
    return _channel_frames("public/unsubscribe", [s for s in subs if s.channel not in _SHARED_CHANNELS], request_id)


def set_heartbeat_frame(interval_secs: int = HEARTBEAT_INTERVAL_SECS, request_id: int = 0) -> str:
    """Ask Deribit to send heartbeats; it then expects every test_request answered (test_frame)."""
    return _rpc("public/set_heartbeat", {"interval": interval_secs}, request_id)


def test_frame(request_id: int = 0) -> str:
    """The answer to ``{"method":"heartbeat","params":{"type":"test_request"}}``."""
    return _rpc("public/test", {}, request_id)


# --- session hooks (called by pipeline.ingest.connection) ---------------------------------------------
def on_open_frames(heartbeat_secs: int, request_id: int) -> list[str]:
    """Ask for heartbeats first, so a dead connection is noticed within ~2 intervals."""
    return [set_heartbeat_frame(max(10, int(heartbeat_secs)), request_id)]


def needs_login(sub: Subscription) -> bool:
    return False


def login_frame(subs: Sequence[Subscription]) -> str | None:
    """Deribit's public channels need no login (``.raw`` books would: not supported)."""
    return None


def login_outcome(control: Control) -> bool | None:
    return None


def idle_frame() -> str | None:
    """A harmless request whose answer proves the connection is alive."""
    return test_frame(0)


def reply_to(control: Control, request_id: int) -> str | None:
    """Answer every heartbeat test_request with public/test, or Deribit closes the connection."""
    if control.kind == "heartbeat" and control.message == "test_request":
        return test_frame(request_id)
    return None


# --- parsing -------------------------------------------------------------------------------------
_INF = INF
_SIDES = SIDES


def parse(text: str, receive_ts_us: int, out: ParsedBatch, source: str = "ws") -> Control | None:
    """Parse one Deribit frame: data rows go to ``out``, anything else comes back as a ``Control``.

    Raises ``FrameError`` (and adds nothing to ``out``) when the frame cannot be parsed.
    """
    try:
        msg = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise FrameError(f"deribit: invalid JSON: {exc}") from None
    try:
        params = msg["params"]
        channel = params["channel"]
        data = params["data"]
    except (KeyError, TypeError):
        return _rpc_frame(msg)
    try:
        handler = _HANDLERS.get(channel[: channel.index(".")])
    except (ValueError, TypeError, AttributeError):
        raise FrameError(f"deribit: bad channel {channel!r}") from None
    if handler is None:
        raise FrameError(f"deribit: unknown channel {channel!r}")
    return handler(channel, data, receive_ts_us, out, source)


def _rpc_frame(msg: Any) -> Control:
    """JSON-RPC responses and heartbeats:

    {"jsonrpc":"2.0","id":1,"result":["trades.BTC-PERPETUAL.100ms"],"usIn":1786563102527368,...}
    {"jsonrpc":"2.0","id":7,"error":{"message":"not_allowed_for_public_access","code":13778}}
    {"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}
    """
    if msg.__class__ is not dict:
        raise FrameError(f"deribit: frame is a JSON {type(msg).__name__}, not an object")
    method = msg.get("method")
    if method == "heartbeat":
        params = msg.get("params")
        kind = params.get("type") if params.__class__ is dict else None
        # "test_request" must be answered with test_frame() or Deribit closes the connection.
        return Control("heartbeat", message=kind, payload=msg)
    request_id = msg.get("id")
    if request_id is not None and request_id.__class__ is not int:
        try:
            request_id = int(request_id)
        except (TypeError, ValueError):
            request_id = None
    if "error" in msg:
        err = msg["error"]
        if err.__class__ is dict:
            code = err.get("code")
            return Control(
                "error", code=None if code is None else str(code), message=err.get("message"),
                request_id=request_id, payload=err,
            )  # fmt: skip
        return Control("error", message=str(err), request_id=request_id, payload=err)
    if "result" in msg:
        result = msg["result"]
        if result.__class__ is list:  # subscribe / unsubscribe: the channels now (un)subscribed
            return Control("ack", request_id=request_id, payload=result)
        return Control("response", request_id=request_id, payload=result)  # set_heartbeat "ok", test
    if method == "subscription":
        raise FrameError("deribit: subscription frame without params.channel/data")
    raise FrameError("deribit: neither a subscription, a response nor a heartbeat")


_reason = reason


def _parse_trades(channel: str, data: Any, receive_ts_us: int, out: ParsedBatch, source: str) -> Control | None:
    """trades.{inst}.100ms: a list of trades, each read by ``trade_row`` (which REST backfill uses too).

    {"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.BTC-PERPETUAL.100ms","data":[
     {"timestamp":1786563104514,"price":63344.5,"direction":"buy","index_price":63325.19,
      "trade_id":"440192723","instrument_name":"BTC-PERPETUAL","trade_seq":296152987,"amount":20,
      "mark_price":63341.87,"tick_direction":1,"starbase_match_id":"213378943477100544","contracts":2,
      "starbase_timestamp":1786563104514208300}]}}

    direction -> side, amount -> size (USD for inverse perps/futures, base coin for options),
    trade_seq -> seq; options add ``iv``; liquidations add ``liquidation`` ("M", "T" or "MT").
    """
    trades = out.trades
    start = len(trades)
    append = trades.append
    try:
        for t in data:
            append(trade_row(t, receive_ts_us, source))
    except FrameError:
        del trades[start:]  # all or nothing: roll back the rows of this frame appended so far
        raise
    except TypeError as exc:  # data is not a list (null, a number)
        raise FrameError(_reason("deribit trades", exc)) from None
    return None


def trade_row(payload: Any, receive_us: int, source: str = "ws") -> tuple[Any, ...]:
    """One trade (a ``trades`` push item, or a REST ``get_last_trades_by_*`` item: Deribit sends the same
    object on both) as a bronze/trades row; ``FrameError`` naming the first bad field otherwise."""
    t = payload
    try:
        inst = t["instrument_name"]
        market = _MARKETS.get(inst) or _market(inst)
        tid = t["trade_id"]
        px = float(t["price"])
        sz = float(t["amount"])
        side = t["direction"]
        ts_ms = t["timestamp"]
        seq = t["trade_seq"]
        if not (0.0 < px < _INF and 0.0 < sz < _INF and side in _SIDES):
            raise _Bad("bad trade")
        if tid.__class__ is not str:
            tid = _trade_id(tid)
        if ts_ms.__class__ is not int:
            ts_ms = int(ts_ms)
        if seq.__class__ is not int:
            seq = int(seq)
        index_px = t.get("index_price")
        mark_px = t.get("mark_price")
        iv = t.get("iv")
        return (
            "deribit", market, inst, tid, px, sz, side, ts_ms, receive_us, source, seq, None,
            None if index_px is None else _finite(index_px, "index_price"),
            None if mark_px is None else _finite(mark_px, "mark_price"),
            None if iv is None else _finite(iv, "iv"),
            t.get("liquidation"),
        )  # fmt: skip
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FrameError(_trade_problem(t, exc) if t.__class__ is dict else _reason("deribit trades", exc)) from None


def _finite(value: Any, name: str) -> float:
    # float() reads "nan" and "inf" from a string; no number the venue sends is either.
    number = float(value)
    if not -_INF < number < _INF:
        raise _Bad(f"{name} is not a finite number: {value!r}")
    return number


def _trade_id(tid: Any) -> str:
    # ccxt re-serialized captures carry ints; anything else (object, float, bool) is not an id.
    if tid.__class__ is int:
        return str(tid)
    raise _Bad(f"trade_id is not a string: {tid!r}")


def _trade_problem(t: dict, exc: BaseException) -> str:
    """Name the first bad field of a trade that failed to parse (slow path, rejected frames only)."""
    if isinstance(exc, _Bad) and str(exc) != "bad trade":
        return f"deribit trades: {exc}"
    problem = first_bad_field(
        t, "deribit trades", required=("instrument_name", "trade_id", "price", "amount", "direction", "timestamp", "trade_seq"),
        positive=("price", "amount"), side=("direction", "direction"),
    )  # fmt: skip
    if problem:
        return problem
    return _reason("deribit trades", exc)


def _side(px: Any, sz: Any) -> tuple[float | None, float | None]:
    if px is None:
        return None, None
    px = float(px)
    sz = None if sz is None else float(sz)
    if px == 0.0 and not sz:  # Deribit's "no order on this side"
        return None, None
    if not 0.0 < px < _INF or (sz is not None and not 0.0 <= sz < _INF):
        raise _Bad(f"best price/amount is not positive finite: {px!r}/{sz!r}")
    return px, sz


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)


def _parse_quote(channel: str, data: Any, receive_ts_us: int, out: ParsedBatch, source: str) -> Control | None:
    """quote.{inst}: best bid/ask on every change (example from Deribit's API docs; none recorded):

    {"jsonrpc":"2.0","method":"subscription","params":{"channel":"quote.BTC-PERPETUAL","data":{
     "timestamp":1550658624149,"instrument_name":"BTC-PERPETUAL","best_bid_price":3914.97,
     "best_bid_amount":40,"best_ask_price":3996.61,"best_ask_amount":50}}}
    """
    try:
        inst = data["instrument_name"]
        market = _MARKETS.get(inst) or _market(inst)
        bid_px, bid_sz = _side(data["best_bid_price"], data.get("best_bid_amount"))
        ask_px, ask_sz = _side(data["best_ask_price"], data.get("best_ask_amount"))
        row = (
            "deribit", market, inst, "quote", int(data["timestamp"]), receive_ts_us, source, None,
            bid_px, bid_sz, ask_px, ask_sz, None, None,
            None, None, None, None, None, None, None, None, None, None, None, None, None,
        )  # fmt: skip
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FrameError(_reason("deribit quote", exc)) from None
    out.quotes.append(row)
    return None


def _parse_ticker(channel: str, data: Any, receive_ts_us: int, out: ParsedBatch, source: str) -> Control | None:
    """ticker.{inst}.100ms (the 2021 recording used .raw). Options carry greeks, IVs, underlying:

    {"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.ETH-30JUL21-2800-C.raw","data":{
     "underlying_price":2003.61,"underlying_index":"ETH-30JUL21","timestamp":1626993723632,
     "stats":{"volume":869.0,"price_change":0.0,"low":0.0015,"high":0.0025},"state":"open",
     "settlement_price":0.0,"open_interest":12685.0,"min_price":0.0001,"max_price":0.025,
     "mark_price":0.001972,"mark_iv":120.74,"last_price":0.002,"interest_rate":0.0,
     "instrument_name":"ETH-30JUL21-2800-C","index_price":2006.72,"greeks":{"vega":0.20072,
     "theta":-1.64029,"rho":0.01188,"gamma":0.0002,"delta":0.03127},"estimated_delivery_price":2006.72,
     "bid_iv":115.62,"best_bid_price":0.0015,"best_bid_amount":4714.0,"best_ask_price":0.0025,
     "best_ask_amount":873.0,"ask_iv":125.63}}}

    Perpetuals and futures have no greeks/IVs/underlying (None). Every market but spot also gives a
    bronze/derivatives row (funding, open interest, mark/index price: ``deribit_derivatives.ticker_row``).
    """
    try:
        inst = data["instrument_name"]
        market = _MARKETS.get(inst) or _market(inst)
        bid_px, bid_sz = _side(data["best_bid_price"], data.get("best_bid_amount"))
        ask_px, ask_sz = _side(data["best_ask_price"], data.get("best_ask_amount"))
        get = data.get
        greeks = get("greeks")
        if greeks is None:
            delta = gamma = vega = theta = rho = None
        else:
            g = greeks.get
            delta, gamma, vega, theta, rho = (
                _opt(g("delta")), _opt(g("gamma")), _opt(g("vega")), _opt(g("theta")), _opt(g("rho"))
            )  # fmt: skip
        last_px = _opt(get("last_price"))
        if last_px is not None and not 0.0 < last_px < _INF:
            raise _Bad(f"last_price is not positive finite: {last_px!r}")
        row = (
            "deribit", market, inst, "ticker", int(data["timestamp"]), receive_ts_us, source, None,
            bid_px, bid_sz, ask_px, ask_sz, None, None, last_px,
            _opt(get("mark_price")), _opt(get("index_price")), _opt(get("underlying_price")),
            _opt(get("open_interest")), _opt(get("mark_iv")), _opt(get("bid_iv")), _opt(get("ask_iv")),
            delta, gamma, vega, theta, rho,
        )  # fmt: skip
        derivative = (
            None if market == "spot"
            else deribit_derivatives.ticker_row(data, market, inst, row[4], receive_ts_us, source)
        )  # fmt: skip
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FrameError(_reason("deribit ticker", exc)) from None
    out.quotes.append(row)
    if derivative is not None:
        out.derivatives.append(derivative)
    return None


def _levels(levels: list) -> tuple[float | None, float | None, tuple | None]:
    """Best (px, sz) and levels 2..5 from ["new", px, amount] (or [px, amount] for grouped books)."""
    if not levels:
        return None, None, None
    pairs = []
    for level in levels[:5]:
        if len(level) == 3:
            px, sz = float(level[1]), float(level[2])
        else:
            px, sz = float(level[0]), float(level[1])
        if not (0.0 < px < _INF and 0.0 <= sz < _INF):
            raise _Bad(f"book level is not a positive finite price/amount: {level!r}")
        pairs.append((px, sz))
    return pairs[0][0], pairs[0][1], (tuple(pairs[1:]) if len(pairs) > 1 else None)


def _parse_book(channel: str, data: Any, receive_ts_us: int, out: ParsedBatch, source: str) -> Control | None:
    """book.{inst}.100ms (also .raw, .agg2; the 2021 recording used .raw): a snapshot, then changes chained
    by change_id.

    {"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.BTC-31DEC21-34000-P.raw","data":{
     "type":"snapshot","timestamp":1626993721943,"instrument_name":"BTC-31DEC21-34000-P",
     "change_id":33195894133,"bids":[["new",0.2325,0.8],["new",0.232,5.3],["new",0.2315,0.7],
     ["new",0.2295,8.2],["new",0.229,3.6],["new",0.0995,2.0],["new",0.0945,3.0],["new",0.0005,0.1]],
     "asks":[["new",0.236,4.8],["new",0.2365,3.6],["new",0.2375,1.0],["new",0.238,1.0],
     ["new",0.2385,1.1],["new",0.239,8.2]]}}}
    {"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.BTC-24SEP21-8000-P.raw","data":{
     "type":"change","timestamp":1626993724318,"prev_change_id":33195894164,
     "instrument_name":"BTC-24SEP21-8000-P","change_id":33195894355,"bids":[],"asks":[["new",0.001,2.6]]}}}

    Every message is one ``BOOK_FIELDS`` tuple in ``out.books`` (channel as sent, change_id -> seq,
    prev_change_id -> prev_seq, no checksum), each level ``[action, price, amount]`` passed as
    ``(price, amount, None, None, action)``; ``session`` is left None for ``pipeline.ingest.book_chain``.
    A snapshot also gives a quote row (top of book + levels 2..5; an empty book gives a row with no bid/ask).
    A level with an unknown action, a price that is not positive or a negative amount refuses the frame.
    """
    try:
        kind = data.get("type")
        if kind == "change":
            snapshot = False
        elif kind == "snapshot":
            snapshot = True
        else:
            raise _Bad(f"unknown book type {kind!r}")
        inst = data["instrument_name"]
        market = _MARKETS.get(inst) or _market(inst)
        bids = _book_levels(data["bids"], "bid")
        asks = _book_levels(data["asks"], "ask")
        change_id = data["change_id"]
        prev = data.get("prev_change_id")
        ts_ms = int(data["timestamp"])
        book = (
            "deribit", market, inst, channel, ts_ms, receive_ts_us, source, None,
            _change_id(change_id), int64_or_none(prev), None, snapshot, bids, asks,
        )  # fmt: skip
        quote = None
        if snapshot:
            bid_px, bid_sz, top_bids = _levels(data["bids"])
            ask_px, ask_sz, top_asks = _levels(data["asks"])
            quote = (
                "deribit", market, inst, "book", ts_ms, receive_ts_us, source, book[8],
                bid_px, bid_sz, ask_px, ask_sz, top_bids, top_asks,
                None, None, None, None, None, None, None, None, None, None, None, None, None,
            )  # fmt: skip
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise FrameError(_reason("deribit book", exc)) from None
    out.books.append(book)
    if quote is not None:
        out.quotes.append(quote)
    return None


_BOOK_ACTIONS = frozenset(("new", "change", "delete"))


def _change_id(raw: Any) -> int:
    change_id = int64_or_none(raw)
    if change_id is None:
        raise _Bad("change_id is null")
    return change_id


def _book_levels(levels: Any, side: str) -> list[tuple[Any, Any, None, None, str]]:
    """``[[action, price, amount], ...]`` -> ``[(price, amount, None, None, action), ...]`` (the layout
    ``pipeline.lake.book_batches`` reads), each checked: known action, price > 0, amount >= 0."""
    if levels.__class__ is not list:
        raise _Bad(f"{side}s is not a list: {levels!r}")
    out = []
    for level in levels:
        try:
            action, px, amount = level
            ok = (
                action in _BOOK_ACTIONS
                and px.__class__ is not bool  # float(True) is 1.0, but Arrow refuses a bool in a number column
                and amount.__class__ is not bool
                and 0.0 < float(px) < _INF
                and 0.0 <= float(amount) < _INF
            )
            if ok and (px.__class__ is str or amount.__class__ is str):  # ccxt re-serialised captures
                ok = all(plain_number(v) for v in (px, amount) if v.__class__ is str)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise _Bad(f"{side} level is not [new|change|delete, price > 0, amount >= 0]: {level!r}")
        out.append((px, amount, None, None, action))
    return out


def _parse_chart(channel: str, data: Any, receive_ts_us: int, out: ParsedBatch, source: str) -> Control | None:
    """chart.trades.{inst}.{resolution}: one bar (example from Deribit's API docs; none recorded):

    {"jsonrpc":"2.0","method":"subscription","params":{"channel":"chart.trades.BTC-PERPETUAL.1","data":{
     "volume":0.05219351,"tick":1573645080000,"open":8869.79,"low":8788.25,"high":8870.31,
     "cost":460,"close":8791.25}}}

    The bar is read by ``candle_row`` (which REST backfill uses too).
    """
    try:
        _, _, rest = channel.partition(".")  # "trades.BTC-PERPETUAL.1"
        _, inst, resolution = rest.split(".")
    except ValueError as exc:
        raise FrameError(_reason("deribit chart", exc)) from None
    out.candles.append(candle_row(data, inst, resolution, receive_ts_us, source))
    return None


def candle_row(
    payload: Any, instrument: str, timeframe: str, receive_us: int, source: str = "ws", *, confirm: bool | None = None
) -> tuple[Any, ...]:
    """One bar of ``instrument`` as a bronze/candles row; ``FrameError`` naming the bad field otherwise.

    ``payload`` is a ``chart.trades`` push, {"tick","open","high","low","close","volume","cost"}; REST
    ``get_tradingview_chart_data`` answers the same fields as columns, one dict per bar is cut from them.
    Deribit ``volume`` is in the base coin and ``cost`` in USD: they go to ``vol`` and ``vol_ccy_quote``.
    Deribit does not say whether a bar closed: ``confirm`` is what the caller knows (None on the stream).
    """
    try:
        market = _MARKETS.get(instrument) or _market(instrument)
        get = payload.get
        o, h = _bar_price(get("open"), "open"), _bar_price(get("high"), "high")
        lo, c = _bar_price(get("low"), "low"), _bar_price(get("close"), "close")
        return (
            "deribit", market, instrument, timeframe, int(payload["tick"]), o, h, lo, c,
            _opt(get("volume")), None, _opt(get("cost")), confirm, receive_us, source,
        )  # fmt: skip
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FrameError(_reason("deribit chart", exc)) from None


def _bar_price(value: Any, name: str) -> float:
    try:
        px = float(value)
    except (TypeError, ValueError):
        raise _Bad(f"{name} is not a number: {value!r}") from None
    if not 0.0 < px < _INF:
        raise _Bad(f"{name} is not a positive finite price: {value!r}")
    return px


def funding_row(
    payload: Any, instrument: str, receive_us: int, source: str = "rest", interval_hours: float | None = None
) -> tuple[Any, ...]:
    """One hour of a ``public/get_funding_rate_history`` answer for the perpetual ``instrument`` as a
    bronze/funding row (``FUNDING_FIELDS``); ``FrameError`` naming the bad field otherwise.

    Deribit funds perpetuals continuously and reports it per hour: ``interest_1h`` (the rate of that
    hour, ending at ``timestamp``) is the funding rate; ``interest_8h`` (the same premium scaled to 8 h)
    and the index prices have no column. Deribit has no realized rate (None). ``interval_hours`` comes
    from the series (hours since the previous item). Example from Deribit's API docs (as quoted by ccxt):
    {"timestamp":1569891600000,"index_price":8222.87,"prev_index_price":8305.72,
     "interest_8h":-0.00009234260068476106,"interest_1h":-4.739622041017375e-7}
    """
    try:
        if (_MARKETS.get(instrument) or _market(instrument)) != "swap":
            raise _Bad(f"{instrument!r} is not a perpetual: only perpetuals settle funding")
        time_ms = payload["timestamp"]
        if time_ms.__class__ is not int or time_ms <= 0:
            raise _Bad(f"timestamp is not a positive integer: {time_ms!r}")
        rate = payload["interest_1h"]
        if rate.__class__ not in (int, float):  # JSON numbers only: a string here is not Deribit's shape
            raise _Bad(f"interest_1h is not a number: {rate!r}")
        return ("deribit", instrument, time_ms, _finite(rate, "interest_1h"), None, interval_hours, receive_us, source)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FrameError(_reason("deribit get_funding_rate_history", exc)) from None


BOOK_SNAPSHOT_DEPTH = 10_000  # get_order_book's largest depth: the whole book the stream updates


def book_snapshot_path(instrument: str, *, depth: int = BOOK_SNAPSHOT_DEPTH) -> str:
    """``public/get_order_book``: the book a stream's changes chain onto (by ``change_id``)."""
    return f"/api/v2/public/get_order_book?instrument_name={instrument}&depth={depth}"


def book_snapshot_row(body: Any, instrument: str, channel: str, receive_ts_us: int) -> tuple[Any, ...]:
    """A ``get_order_book`` answer as one ``BOOK_FIELDS`` snapshot message (source "rest", ``seq`` =
    ``change_id``, levels ``(price, amount, None, None, "new")`` like a WebSocket snapshot's) for ``channel``:

    {"jsonrpc":"2.0","result":{"timestamp":1786563104514,"change_id":169600103676,"instrument_name":
     "BTC-PERPETUAL","bids":[[63344.0,12340.0],...],"asks":[[63344.5,2000.0],...],"best_bid_price":63344.0,...}}

    ``FrameError`` with the reason for an error answer or a malformed book."""
    try:
        if "error" in body:
            raise _Bad(f"error {body['error']!r}")
        book = body["result"]
        sides = []
        for side in ("bids", "asks"):
            levels = book[side]
            if levels.__class__ is not list:
                raise _Bad(f"{side} is not a list")
            sides.append(_book_levels([["new", *level] for level in levels], side[:-1]))
        return (
            "deribit", _MARKETS.get(instrument) or _market(instrument), instrument, channel,
            int(book["timestamp"]), receive_ts_us, "rest", None, _change_id(book["change_id"]), None, None, True,
            sides[0], sides[1],
        )  # fmt: skip
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise FrameError(_reason("deribit get_order_book", exc)) from None


# First dot-separated part of the channel -> parser.
_HANDLERS = {
    "trades": _parse_trades,
    "quote": _parse_quote,
    "ticker": _parse_ticker,
    "book": _parse_book,
    "chart": _parse_chart,
    deribit_derivatives.PRICE_INDEX_CHANNEL: deribit_derivatives.parse_price_index,
}
