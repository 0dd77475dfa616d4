"""OKX v5 public WebSocket: declarations, symbol rules, subscribe frames and pure parsers.

Wire facts (OKX docs, checked against ../shared/realdata/okx): every number is a JSON string except
``seqId`` (a JSON int since 2024); timestamps are ms strings. Candles live on ``/ws/v5/business``
(subscribing to them on ``/ws/v5/public`` answers error 64001).

Books: ``books5`` and ``bbo-tbt`` are full snapshots on every push, so each push is one quote row.
The full-depth ``books`` (our "book"), ``books-l2-tbt`` and ``books50-l2-tbt`` send one snapshot and then
incremental updates chained by ``seqId``/``prevSeqId``: every message is one book message in
``ParsedBatch.books`` (bronze/book_deltas) with its levels as sent; a snapshot also gives a quote row (top
of book + levels 2..5). Parsing is pure, so the chain and the CRC32 ``checksum`` (``book_checksum``; 0 since
2026-06) are verified by ``pipeline.ingest.book_chain``, which keeps the books.

Derivatives state (``funding-rate``, ``open-interest``, ``mark-price``, ``index-tickers``, ``liquidation-orders``,
all on /ws/v5/public) is parsed in ``okx_derivatives`` into bronze/derivatives and bronze/liquidations; the
index is subscribed by its name and liquidations by instType, and ``channels_for`` says which market takes which.
"""

from __future__ import annotations

import operator
import re
import zlib
from collections.abc import Sequence
from functools import partial
from typing import Any

import orjson

from pipeline.errors import ConfigError, FrameError
from pipeline.venues import okx_derivatives, okx_login
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
NAME = "okx"
WS_BASE = "wss://ws.okx.com:8443"
WS_PATH_PUBLIC = "/ws/v5/public"
WS_PATH_BUSINESS = "/ws/v5/business"  # candles, trades-all
WS_URL = WS_BASE + WS_PATH_PUBLIC
WS_URL_BUSINESS = WS_BASE + WS_PATH_BUSINESS
REST_URL = "https://www.okx.com"
# A recorded URL containing one of these was spoken in OKX's v5 protocol (okcoin runs the same v5 API; the
# paths also match the simulator's): `cryptolake import` refuses an OKX recording read as another venue's.
CAPTURE_URL_MARKERS: tuple[str, ...] = ("okx.com", "okcoin.com", "/ws/v5/", "/api/v5/")

# Our channel names -> OKX channel names.
CHANNELS: dict[str, str] = {
    "trades": "trades",
    "quotes": "books5",
    "ticker": "tickers",
    "candles": "candle1m",
    # Derivatives state (issue #17), all on /ws/v5/public; parsed in okx_derivatives.
    "funding": "funding-rate",
    "open_interest": "open-interest",
    "mark_price": "mark-price",
    "index": "index-tickers",  # subscribed by the instrument's index name (BTC-USDT for BTC-USDT-SWAP)
    "liquidations": "liquidation-orders",  # subscribed by instType: every instrument of that type
    # Full-depth books (issue #15) -> bronze/book_deltas: "book" is public (400 levels, snapshot then updates
    # every 100 ms); the tick-by-tick ones need a logged-in connection (okx_login: API credentials in the env).
    "book": "books",
    "book_tbt": "books-l2-tbt",
    "book50_tbt": "books50-l2-tbt",
}
# Our channels whose OKX channel needs a logged-in connection (an API key; okx_login): only the connections
# that carry one log in, with the credentials from the environment.
_LOGIN_CHANNELS = frozenset(("book_tbt", "book50_tbt"))
# Our channels that only apply to some markets (the rest apply to every market): the stream subscribes a
# channel for an instrument only where ``channels_for(market)`` has it, so OKX never refuses one (funding on spot).
_CHANNEL_MARKETS: dict[str, frozenset[str]] = {
    "funding": frozenset(("swap",)),
    "open_interest": frozenset(("swap", "future", "option")),
    "mark_price": frozenset(("swap", "future", "option")),
    "index": frozenset(("swap", "future")),  # options share it: many options over several connections would repeat it
    "liquidations": frozenset(("swap", "future")),
}
# Streams several instruments share (one index, one instType): an instrument leaving does not unsubscribe them.
_SHARED_CHANNELS = frozenset(("index", "liquidations"))
# Venue channels that are served on /ws/v5/business instead of /ws/v5/public.
BUSINESS_CHANNEL_PREFIXES: tuple[str, ...] = ("candle", "trades-all")

# Limits (OKX docs, "WebSocket" overview).
NEW_CONNECTIONS_PER_SEC = 3  # per IP
SUBSCRIBE_REQUESTS_PER_HOUR = 480  # per connection: subscribe + unsubscribe + login requests
MAX_REQUEST_BYTES = 64 * 1024  # a subscribe request's total length
MAX_ARGS_PER_REQUEST = 100  # our own batch size: far under 64 KB, few requests against the hourly cap
SERVER_IDLE_TIMEOUT_SECS = 30  # OKX closes a connection that received nothing for 30 s
IDLE_PING_AFTER_SECS = 25  # so we send PING after 25 s of silence (must be < 30)
PING = "ping"  # the keepalive is the bare text, not JSON; the answer is the text "pong"

# --- symbol rules --------------------------------------------------------------------------------
# BTC-USDT spot, BTC-USDT-SWAP swap, BTC-USD-220527 future, ETH-USD-220514-1300-C option.
# Anchored patterns also keep path separators and ".." out of instrument names.
_SPOT = re.compile(r"[A-Z0-9]+-[A-Z0-9]+")
_SWAP = re.compile(r"[A-Z0-9]+-[A-Z0-9]+-SWAP")
_FUTURE = re.compile(r"[A-Z0-9]+-[A-Z0-9]+-\d{6}")
_OPTION = re.compile(r"[A-Z0-9]+-[A-Z0-9]+-\d{6}-\d+(?:\.\d+)?-[CP]")


_PATTERNS = (("spot", _SPOT), ("swap", _SWAP), ("future", _FUTURE), ("option", _OPTION))


def market_of(instrument: str) -> str:
    """ "spot" | "swap" | "future" | "option" for an OKX instId; ValueError for anything else."""
    return market_by_name(instrument, _PATTERNS, "an OKX instrument id")


# our market -> OKX instType (REST instrument listings and tickers)
INST_TYPES = {"spot": "SPOT", "swap": "SWAP", "future": "FUTURES", "option": "OPTION"}


def listing_paths(instruments: list[str]) -> list[str]:
    """REST paths whose answers list these instruments, to check names before subscribing.

    Options are listed per underlying (``uly``), everything else per instrument type.
    """
    paths: set[str] = set()
    for inst in instruments:
        market = market_of(inst)
        if market == "option":
            paths.add("/api/v5/public/instruments?instType=OPTION&uly=" + "-".join(inst.split("-")[:2]))
        else:
            paths.add("/api/v5/public/instruments?instType=" + INST_TYPES[market])
    return sorted(paths)


def options_listing_path(currency: str) -> str:
    return f"/api/v5/public/instruments?instType=OPTION&uly={currency}-USD"


def listed_names(body: Any) -> list[str]:
    """Instrument names in a /public/instruments answer: {"code":"0","data":[{"instId":...},...]}."""
    return [row["instId"] for row in body.get("data") or [] if row.get("state", "live") == "live"]


# instId -> market, filled on first sight: the regexes run once per instrument, not once per row.
_MEMO = MarketMemo(market_of, "instId")
_MARKETS = _MEMO.cache  # hot path: a dict hit; ``_market`` on a miss
_market = _MEMO.slow
_Bad = BadField


# --- connections and requests --------------------------------------------------------------------
def venue_channel(sub: Subscription) -> str:
    try:
        channel = CHANNELS[sub.channel]
    except KeyError:
        raise ConfigError(
            "channels", f"okx has no channel {sub.channel!r}", f"use one of {', '.join(CHANNELS)}"
        ) from None
    if sub.channel in _LOGIN_CHANNELS and okx_login.credentials_from_env() is None:
        # refused while planning, before any connection opens
        raise ConfigError(
            "stream.okx.channels",
            f"{sub.channel!r} (OKX {channel}) needs a logged-in connection and no OKX API credentials are set",
            f'{okx_login.SET_ALL}, or use "book" (OKX books: 400 levels, public, every 100 ms)',
        )
    return channel


def ws_path_for(sub: Subscription) -> str:
    """The endpoint path a subscription must use: candles go to /business, the rest to /public."""
    return WS_PATH_BUSINESS if venue_channel(sub).startswith(BUSINESS_CHANNEL_PREFIXES) else WS_PATH_PUBLIC


def ws_url_for(sub: Subscription, base: str = WS_BASE) -> str:
    return base + ws_path_for(sub)


def channels_for(market: str) -> tuple[str, ...]:
    """Our channels that apply to an instrument of ``market`` ("spot" | "swap" | "future" | "option")."""
    return tuple(c for c in CHANNELS if c not in _CHANNEL_MARKETS or market in _CHANNEL_MARKETS[c])


def _arg(sub: Subscription) -> dict[str, str]:
    """One subscribe arg: per instrument, except the index (by index name) and liquidations (by instType)."""
    channel = venue_channel(sub)
    if sub.channel == "index":
        return {"channel": channel, "instId": "-".join(sub.instrument.split("-")[:2])}
    if sub.channel == "liquidations":
        try:
            return {"channel": channel, "instType": INST_TYPES[market_of(sub.instrument)]}
        except ValueError:
            raise ConfigError(
                "instruments", f"{sub.instrument!r} is not an OKX instrument id", "e.g. BTC-USDT-SWAP"
            ) from None
    return {"channel": channel, "instId": sub.instrument}


def _op_frames(op: str, subs: list[Subscription]) -> list[str]:
    paths = {ws_path_for(s) for s in subs}
    if len(paths) > 1:
        # One request goes down one connection; mixing endpoints would subscribe candles on /public (64001).
        raise ConfigError(
            "subscriptions", f"okx {op} mixes endpoints {sorted(paths)}", "group subscriptions by ws_path_for()"
        )
    # Shared streams (index, liquidations) give the same arg for several instruments: sent once.
    args = list({orjson.dumps(a): a for a in map(_arg, subs)}.values())
    frames: list[str] = []
    for start in range(0, len(args), MAX_ARGS_PER_REQUEST):
        frames.append(orjson.dumps({"op": op, "args": args[start : start + MAX_ARGS_PER_REQUEST]}).decode())
    return frames


def subscribe_frames(subs: list[Subscription], request_id: int = 0) -> list[str]:
    """``{"op":"subscribe","args":[...]}`` frames, at most MAX_ARGS_PER_REQUEST args each.

    OKX acks per arg, not per request, so ``request_id`` is unused (kept for the common venue shape).
    Each frame counts against SUBSCRIBE_REQUESTS_PER_HOUR on its connection.
    """
    return _op_frames("subscribe", subs)


def unsubscribe_frames(subs: list[Subscription], request_id: int = 0) -> list[str]:
    """Shared streams stay: another instrument of the connection may still need them (a reconnect drops them)."""
    return _op_frames("unsubscribe", [s for s in subs if s.channel not in _SHARED_CHANNELS])


# --- session hooks (called by pipeline.ingest.connection) ---------------------------------------------
def on_open_frames(heartbeat_secs: int, request_id: int) -> list[str]:
    """Frames to send right after connecting, before subscribing: OKX needs none."""
    return []


def needs_login(sub: Subscription) -> bool:
    return sub.channel in _LOGIN_CHANNELS


def login_frame(subs: Sequence[Subscription]) -> str | None:
    """The signed login a connection carrying ``subs`` must complete before subscribing; None when none of
    them needs one (public connections never send the key)."""
    if not any(map(needs_login, subs)):
        return None
    creds = okx_login.credentials_from_env()
    if creds is None:  # planning refuses this first; the environment changed under a running stream
        raise ConfigError("stream.okx.channels", "a tick-by-tick book needs OKX API credentials", okx_login.SET_ALL)
    return okx_login.login_request(creds)


def login_outcome(control: Control) -> bool | None:
    """True: the login succeeded; False: OKX refused it (the code and message are the control's); None: the
    control is not the login's answer."""
    if control.kind == "response" and control.message == "login":
        return control.code == "0"
    if control.kind == "error" and control.code in okx_login.LOGIN_ERROR_CODES:
        return False
    return None


def idle_frame() -> str | None:
    """Sent after IDLE_PING_AFTER_SECS of silence: OKX closes silent connections after 30 s."""
    return PING


def reply_to(control: Control, request_id: int) -> str | None:
    """OKX expects no reply to any control frame (pong answers our ping)."""
    return None


# --- parsing -------------------------------------------------------------------------------------
_INF = INF
_SIDES = SIDES
_SIDE = {"buy": "buy", "sell": "sell"}
_TRADE_FIELDS = operator.itemgetter("instId", "tradeId", "px", "sz", "side", "ts", "count", "seqId")
_TRADE_FIELDS_2022 = operator.itemgetter("instId", "tradeId", "px", "sz", "side", "ts")
_PONG = Control("pong")
_loads = orjson.loads

# float() of a string costs ~7x a dict hit, and trade prices/sizes repeat a lot (same price level,
# round sizes), so numeric strings are memoised. Only values that passed the positive-finite check
# are stored, so a hit is a valid number by construction. Bounded: cleared when full.
_NUMS: dict[str, float] = {}
_NUMS_MAX = 65_536
_COUNTS: dict[Any, int] = {str(i): i for i in range(1, 1001)}  # OKX `count`: fills per trade, small


def _positive(raw: Any) -> float:
    """float(raw) if it is a positive finite number (then memoised), else ValueError."""
    value = float(raw)
    if not 0.0 < value < _INF:
        raise _Bad(f"not a positive finite number: {raw!r}")
    if raw.__class__ is str:
        if len(_NUMS) >= _NUMS_MAX:
            _NUMS.clear()
        _NUMS[raw] = value
    return value


def parse(text: str, receive_ts_us: int, out: ParsedBatch, source: str = "ws") -> Control | None:
    """Parse one OKX frame: data rows go to ``out``, anything else comes back as a ``Control``.

    Raises ``FrameError`` (and adds nothing to ``out``) when the frame cannot be parsed.
    """
    try:
        msg = _loads(text)
    except orjson.JSONDecodeError as exc:
        if text == "pong":  # not JSON: checked here so data frames do not pay for the comparison
            return _PONG
        raise FrameError(f"okx: invalid JSON: {exc}") from None
    try:
        arg = msg["arg"]
        data = msg["data"]
    except (KeyError, TypeError):
        return _event(msg)
    try:
        channel = arg["channel"]
        handler = _HANDLERS.get(channel)
    except (KeyError, TypeError):
        raise FrameError("okx: data frame without a valid arg.channel") from None
    if handler is None:
        if channel.__class__ is str and channel.startswith("candle"):
            handler = _parse_candles
        else:
            raise FrameError(f"okx: unknown channel {channel!r}")
    if data.__class__ is not list:
        raise FrameError(f"okx {channel}: data is {type(data).__name__}, not a list")
    return handler(msg, arg, data, receive_ts_us, out, source)


_NAME_CLASSES = frozenset((str, type(None)))  # absent, or a name as sent


def _event(msg: Any) -> Control:
    """Frames with "event" instead of "data": acks, errors, notices."""
    if msg.__class__ is not dict:
        raise FrameError(f"okx: frame is a JSON {type(msg).__name__}, not an object")
    event = msg.get("event")
    if event is None:
        raise FrameError("okx: frame has neither data nor event")
    arg = msg.get("arg")
    channel = instrument = None
    if arg.__class__ is dict:
        channel, instrument = arg.get("channel"), arg.get("instId")
        if not (channel.__class__ in _NAME_CLASSES and instrument.__class__ in _NAME_CLASSES):
            raise FrameError(f"okx {event!r} event: arg's channel and instId must be strings: {arg!r}")
    code = msg.get("code")
    code = None if code is None else str(code)
    if event == "subscribe":
        return Control("ack", channel, instrument, payload=arg)
    if event == "unsubscribe":
        return Control("unsubscribed", channel, instrument, payload=arg)
    if event == "error":
        return Control("error", channel, instrument, code=code, message=msg.get("msg"), payload=msg)
    if event == "notice":
        # {"event":"notice","code":"64008","msg":"The connection will soon be closed for a service upgrade..."}
        return Control("notice", code=code, message=msg.get("msg"), payload=msg)
    # login, channel-conn-count, and whatever OKX adds next: not data, keep it for the log.
    return Control("response", channel, instrument, code=code, message=str(event), payload=msg)


_reason = reason


def _parse_trades(
    msg: dict,
    arg: dict,
    data: list,
    receive_ts_us: int,
    out: ParsedBatch,
    source: str,
) -> Control | None:
    """trades / trades-all, each item read by ``trade_row`` (which REST backfill uses too). 2026 (count,
    source and an int seqId are new; 2022 frames lack all three):

    {"arg":{"channel":"trades","instId":"BTC-USDT-SWAP"},"data":[{"instId":"BTC-USDT-SWAP",
     "tradeId":"2832749635","px":"63913.5","sz":"1","side":"buy","ts":"1786540435948","count":"1",
     "source":"0","seqId":333793117432}]}

    2022: {"arg":{"channel":"trades","instId":"BTC-USD-220527"},"data":[{"instId":"BTC-USD-220527",
     "tradeId":"7849","px":"30218.8","sz":"1","side":"buy","ts":"1652459199958"}]}

    ``count`` is the number of fills aggregated into this trade; ``seqId`` goes to ``seq``.
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
    return None


def trade_row(payload: Any, receive_us: int, source: str = "ws") -> tuple[Any, ...]:
    """One trade (a ``trades`` / ``trades-all`` push item, or a ``history-trades`` REST row) as a
    bronze/trades row; ``FrameError`` naming the first bad field otherwise.

    REST rows carry no ``count`` / ``seqId`` (None), like the 2022 pushes:
    {"instId":"BTC-USDT","side":"sell","sz":"0.00001","px":"29963.2","source":"0","tradeId":"242720720",
     "ts":"1654161646974"}
    """
    t = payload
    try:
        try:  # the current wire format: one C call for all eight fields
            inst, tid, px_raw, sz_raw, side, ts_raw, count_raw, seq = _TRADE_FIELDS(t)
        except KeyError:  # drifted formats (2022 and REST: no count/seqId) or a missing field
            inst, tid, px_raw, sz_raw, side, ts_raw = _TRADE_FIELDS_2022(t)
            count_raw = t.get("count")
            seq = t.get("seqId")
        ts_ms = int(ts_raw)
        count = _COUNTS.get(count_raw)
        if tid.__class__ is not str or ts_ms <= 0:
            raise _Bad("bad trade")
        if seq.__class__ is not int and seq is not None:
            seq = int(seq)
        if count is None and count_raw is not None:
            count = int(count_raw)
        # nums holds only validated positive finite values, so a hit needs no range check;
        # sides maps the two valid sides to themselves (KeyError otherwise).
        return (
            "okx", _MARKETS.get(inst) or _market(inst), inst, tid,
            _NUMS.get(px_raw) or _positive(px_raw), _NUMS.get(sz_raw) or _positive(sz_raw),
            _SIDE[side], ts_ms, receive_us, source, seq, count, None, None, None, None,
        )  # fmt: skip
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # Slow path: only trades that are rejected anyway pay for naming the bad field.
        raise FrameError(_trade_problem(t, exc) if t.__class__ is dict else _reason("okx trades", exc)) from None


def _trade_problem(t: dict, exc: BaseException) -> str:
    """Name the first bad field of a trade that failed to parse."""
    problem = first_bad_field(t, "okx trades", required=("instId", "tradeId", "px", "sz", "side", "ts"),
                              positive=("px", "sz"), side=("side", "side"))  # fmt: skip
    if problem:
        return problem
    if t["instId"].__class__ is not str:
        return f"okx trades: instId is not a string: {t['instId']!r}"
    if t["tradeId"].__class__ is not str:
        return f"okx trades: tradeId is not a string: {t['tradeId']!r}"
    try:
        if int(t["ts"]) <= 0:
            return f"okx trades: ts is not positive: {t['ts']!r}"
    except (TypeError, ValueError):
        return f"okx trades: ts is not an integer: {t['ts']!r}"
    for key in ("seqId", "count"):
        if t.get(key) is not None:
            try:
                int(t[key])
            except (TypeError, ValueError):
                return f"okx trades: {key} is not an integer: {t[key]!r}"
    return _reason("okx trades", exc)  # e.g. an unrecognised instId


def _level1(levels: list) -> tuple[float | None, float | None, tuple | None]:
    """Best (px, sz) and levels 2..5 as ((px, sz), ...) from OKX [[px, sz, "0", orders], ...], best first."""
    if not levels:
        return None, None, None
    pairs = []
    for level in levels[:5]:
        px = float(level[0])
        sz = float(level[1])
        if not (0.0 < px < _INF and 0.0 <= sz < _INF):
            raise _Bad(f"book level is not a positive finite price/size: {level!r}")
        pairs.append((px, sz))
    best = pairs[0]
    return best[0], best[1], (tuple(pairs[1:]) if len(pairs) > 1 else None)


def _book_rows(arg: dict, data: list, receive_ts_us: int, source: str) -> list[tuple]:
    inst = arg["instId"]
    market = _MARKETS.get(inst) or _market(inst)
    channel = arg["channel"]
    rows = []
    for b in data:
        bid_px, bid_sz, bids = _level1(b["bids"])
        ask_px, ask_sz, asks = _level1(b["asks"])
        seq = b.get("seqId")
        rows.append(
            (
                "okx", market, inst, channel, int(b["ts"]), receive_ts_us, source,
                None if seq is None else int(seq),
                bid_px, bid_sz, ask_px, ask_sz, bids, asks,
                None, None, None, None, None, None, None, None, None, None, None, None, None,
            )
        )  # fmt: skip
    return rows


def _parse_books5(
    msg: dict, arg: dict, data: list, receive_ts_us: int, out: ParsedBatch, source: str
) -> Control | None:
    """books5 (and bbo-tbt, the same shape with one level): a 5-level snapshot on every push.

    {"arg":{"channel":"books5","instId":"BTC-USDT-SWAP"},"data":[{"asks":[["63921.5","790.41","0","42"],
     ["63921.8","0.32","0","1"],["63922.2","0.03","0","2"],["63922.3","90.81","0","2"],
     ["63922.4","0.32","0","1"]],"bids":[["63921.4","421.93","0","28"],["63921.3","0.25","0","1"],
     ["63920.7","0.34","0","2"],["63920.4","0.32","0","1"],["63920.1","0.08","0","2"]],
     "instId":"BTC-USDT-SWAP","ts":"1786541241006","seqId":333794734980}]}

    Levels are [px, sz, deprecated "0", number of orders]; ``seqId`` goes to ``seq``.
    """
    try:
        rows = _book_rows(arg, data, receive_ts_us, source)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise FrameError(_reason(f"okx {arg.get('channel')}", exc)) from None
    out.quotes.extend(rows)
    return None


def _parse_books(msg: dict, arg: dict, data: list, receive_ts_us: int, out: ParsedBatch, source: str) -> Control | None:
    """books (400 levels; also books-l2-tbt, books50-l2-tbt): snapshot, then incremental updates.

    {"arg":{"channel":"books","instId":"BTC-USD-220527"},"action":"snapshot","data":[{"asks":[["30238.8",
     "2","0","1"],["30249.5","50","0","1"], ...],"bids":[...],"ts":"1652459225464","checksum":-914047754}]}
    {"arg":{"channel":"books","instId":"BTC-USD-220527"},"action":"update","data":[{"asks":[["30249.4",
     "0","0","0"],["30261","4","0","1"],["30310.3","19","0","1"]],"bids":[["30182.6","452","0","1"]],
     "ts":"1652459225464","checksum":-914047754}]}
    Since 2024 items also carry ``seqId`` and ``prevSeqId`` (-1 on a snapshot); since 2026-06 ``checksum`` is 0.

    Every message is one ``BOOK_FIELDS`` tuple in ``out.books`` with its levels exactly as sent (the chain and
    the checksum are verified on those strings by ``pipeline.ingest.book_chain``; ``session`` is left None
    for the verifier to fill). A snapshot also gives a quote row (top of book + levels 2..5), as before.
    A level that is not ``[price > 0, size >= 0, _, orders]`` refuses the whole frame.
    """
    channel = arg.get("channel")
    action = msg.get("action")
    if action == "update":
        snapshot = False
    elif action == "snapshot":
        snapshot = True
    else:
        raise FrameError(f"okx {channel}: unknown action {action!r}")
    try:
        inst = arg["instId"]
        market = _MARKETS.get(inst) or _market(inst)
        rows = []
        for b in data:
            bids, asks = b["bids"], b["asks"]
            _check_levels(bids, "bid")
            _check_levels(asks, "ask")
            rows.append(
                (
                    "okx", market, inst, channel, int(b["ts"]), receive_ts_us, source, None,
                    int64_or_none(b.get("seqId")), int64_or_none(b.get("prevSeqId")), int64_or_none(b.get("checksum")),
                    snapshot, bids, asks,
                )
            )  # fmt: skip
        quotes = _book_rows(arg, data, receive_ts_us, source) if snapshot else ()
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise FrameError(_reason(f"okx {channel}", exc)) from None
    out.books.extend(rows)
    out.quotes.extend(quotes)
    return None


def _check_levels(levels: Any, side: str) -> None:
    """Refuse a side that is not a list of ``[price > 0, size >= 0, _, orders >= 0]`` (strings or numbers)."""
    if levels.__class__ is not list:
        raise _Bad(f"{side}s is not a list: {levels!r}")
    for level in levels:
        try:
            px_raw, sz_raw = level[0], level[1]
            if px_raw.__class__ is bool or sz_raw.__class__ is bool:  # float(True) is 1.0; Arrow refuses a bool
                raise TypeError
            px = float(px_raw)
            sz = float(sz_raw)
        except (TypeError, ValueError, KeyError, IndexError):
            raise _Bad(f"{side} level is not [price, size, ...] numbers: {level!r}") from None
        if not (0.0 < px < _INF and 0.0 <= sz < _INF):
            raise _Bad(f"{side} level needs a positive price and a size >= 0: {level!r}")
        if (px_raw.__class__ is str and not plain_number(px_raw)) or (
            sz_raw.__class__ is str and not plain_number(sz_raw)
        ):
            raise _Bad(f"{side} level is not [price, size, ...] numbers: {level!r}")
        if len(level) > 3:
            orders = level[3]
            # isascii: "²".isdigit() is True, and Arrow could not read it as a count
            if not (
                (orders.__class__ is str and orders.isascii() and orders.isdigit())
                or (orders.__class__ is int and orders >= 0)
            ):
                raise _Bad(f"{side} level's order count is not a count: {level!r}")


def _ticker_side(px_raw: Any, sz_raw: Any) -> tuple[float | None, float | None]:
    # OKX sends "" for an empty side (no resting order): that is a quote with no price, not an error.
    if px_raw is None or px_raw == "":
        return None, None
    px = float(px_raw)
    sz = None if sz_raw is None or sz_raw == "" else float(sz_raw)
    if px == 0.0 and not sz:
        return None, None
    if not 0.0 < px < _INF or (sz is not None and not 0.0 <= sz < _INF):
        raise _Bad(f"side is not a positive finite price/size: {px_raw!r}/{sz_raw!r}")
    return px, sz


def _parse_tickers(
    msg: dict, arg: dict, data: list, receive_ts_us: int, out: ParsedBatch, source: str
) -> Control | None:
    """tickers: last trade and best bid/ask, pushed on change (at most every 100 ms).

    {"arg":{"channel":"tickers","instId":"BTC-USDT-SWAP"},"data":[{"instType":"SWAP","instId":"BTC-USDT-SWAP",
     "last":"63921","lastSz":"0.4","askPx":"63921.1","askSz":"1871.75","bidPx":"63921","bidSz":"779.3",
     "open24h":"64297.6","high24h":"64466","low24h":"63162.7","sodUtc0":"63566","sodUtc8":"63584.6",
     "volCcy24h":"73998.8786","vol24h":"7399887.86","ts":"1786540471710"}]}
    """
    rows = []
    try:
        for t in data:
            inst = t["instId"]
            market = _MARKETS.get(inst) or _market(inst)
            bid_px, bid_sz = _ticker_side(t["bidPx"], t.get("bidSz"))
            ask_px, ask_sz = _ticker_side(t["askPx"], t.get("askSz"))
            last = t.get("last")
            last_px = None if last is None or last == "" else float(last)
            if last_px is not None and not 0.0 < last_px < _INF:
                raise _Bad(f"last is not a positive finite price: {last!r}")
            rows.append(
                (
                    "okx", market, inst, "tickers", int(t["ts"]), receive_ts_us, source, None,
                    bid_px, bid_sz, ask_px, ask_sz, None, None, last_px,
                    None, None, None, None, None, None, None, None, None, None, None, None,
                )
            )  # fmt: skip
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FrameError(_reason("okx tickers", exc)) from None
    out.quotes.extend(rows)
    return None


def _parse_candles(
    msg: dict, arg: dict, data: list, receive_ts_us: int, out: ParsedBatch, source: str
) -> Control | None:
    """candle1m (any candle{bar}); on /ws/v5/business. Arrays of 9 strings, newest bar first:

    {"arg":{"channel":"candle1m","instId":"BTC-USDT-SWAP"},"data":[["1786540440000","63913.0","63951.8",
     "63913.0","63951.8","1803.61","18.0361","1153203.99426000","0"]]}

    Each array is one bar, read by ``candle_row`` (which REST backfill uses too).
    """
    channel = arg["channel"]
    try:
        inst = arg["instId"]
    except (KeyError, TypeError) as exc:
        raise FrameError(_reason(f"okx {channel}", exc)) from None
    timeframe = channel[6:]  # "candle1m" -> "1m", "candle1H" -> "1H"
    out.candles.extend([candle_row(c, inst, timeframe, receive_ts_us, source) for c in data])
    return None


_CANDLE_KEYS = ("ts", "o", "h", "l", "c", "vol", "volCcy", "volCcyQuote")


def candle_row(payload: Any, instrument: str, timeframe: str, receive_us: int, source: str = "ws") -> tuple[Any, ...]:
    """One bar of ``instrument`` (a ``candle{bar}`` push item, or a ``history-candles`` REST row; the two
    have the same shape) as a bronze/candles row, ``timeframe`` in OKX's spelling ("1m", "1H", "1Dutc");
    ``FrameError`` naming the bad field otherwise.

    [open ts ms, o, h, l, c, vol, volCcy, volCcyQuote, confirm]; confirm "1" = bar closed. Older OKX
    sent 7 fields (no volCcyQuote, no confirm): those become None, as does an empty volCcyQuote.
    """
    c = payload
    try:
        market = _MARKETS.get(instrument) or _market(instrument)
        n = len(c)
        if n != 9 and n != 7:
            raise _Bad(f"candle has {n} fields, expected 9")
        o, h, lo, cl = float(c[1]), float(c[2]), float(c[3]), float(c[4])
        if not (0.0 < lo < _INF and 0.0 < h < _INF and 0.0 < o < _INF and 0.0 < cl < _INF):
            raise _Bad(f"OHLC not positive finite: {c[1:5]!r}")
        full = n == 9
        return (
            "okx", market, instrument, timeframe, int(c[0]), o, h, lo, cl, float(c[5]), float(c[6]),
            float(c[7]) if full and c[7] != "" else None, (c[8] == "1") if full else None, receive_us, source,
        )  # fmt: skip
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise FrameError(_candle_problem(c, f"okx candle{timeframe}", exc)) from None


def _candle_problem(c: Any, where: str, exc: BaseException) -> str:
    """Name the first field of a refused candle that is not a number (slow path, refused bars only)."""
    if isinstance(exc, ValueError | TypeError) and not isinstance(exc, BadField) and c.__class__ is list:
        for key, raw in zip(_CANDLE_KEYS, c, strict=False):
            try:
                int(raw) if key == "ts" else float(raw)
            except (TypeError, ValueError):
                if key != "volCcyQuote" or raw != "":
                    return f"{where}: {key} is not a number: {raw!r}"
    return _reason(where, exc)


def funding_row(
    payload: Any, receive_us: int, source: str = "rest", interval_hours: float | None = None
) -> tuple[Any, ...]:
    """One settlement of a ``GET /api/v5/public/funding-rate-history`` answer as a bronze/funding row
    (``FUNDING_FIELDS``); ``FrameError`` naming the bad field otherwise. Only swaps settle funding.

    ``fundingRate`` is the rate as predicted, ``realizedRate`` the one charged (ccxt reports the latter;
    an empty one becomes None). ``interval_hours`` is not in the item: the caller takes it from the series
    (hours since the previous settlement). Nautilus test data, in the venue's documented shape:
    {"instType":"SWAP","instId":"BTC-USDT-SWAP","fundingRate":"0.0001515032","realizedRate":"0.00015",
     "fundingTime":"1704067200000"}  (today's venue adds "method": "current_period" | "next_period")
    """
    f = payload
    try:
        inst = f["instId"]
        if (_MARKETS.get(inst) or _market(inst)) != "swap":
            raise _Bad(f"instId {inst!r} is not a swap: only swaps settle funding")
        time_ms = int(f["fundingTime"])
        if time_ms <= 0:
            raise _Bad(f"fundingTime is not positive: {f['fundingTime']!r}")
        rate = _funding_number(f["fundingRate"], "fundingRate")
        realized_raw = f.get("realizedRate")
        realized = None if realized_raw in (None, "") else _funding_number(realized_raw, "realizedRate")
        return ("okx", inst, time_ms, rate, realized, interval_hours, receive_us, source)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FrameError(_reason("okx funding-rate-history", exc)) from None


def open_interest_history_row(payload: Any, instrument: str, receive_us: int, source: str = "rest") -> tuple[Any, ...]:
    """One ``rubik/stat/contracts/open-interest-history`` item as a bronze/derivatives row (channel
    "open-interest-history"); ``FrameError`` naming the bad field otherwise."""
    try:
        return okx_derivatives.open_interest_history_row(payload, instrument, _market_of_cached, receive_us, source)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FrameError(_reason("okx open-interest-history", exc)) from None


def _funding_number(raw: Any, name: str) -> float:
    # rates are signed; float() would also read "nan"/"inf" and a JSON number, neither of which OKX sends
    if raw.__class__ is not str:
        raise _Bad(f"{name} is not a number string: {raw!r}")
    try:
        value = float(raw)
    except ValueError:
        raise _Bad(f"{name} is not a number: {raw!r}") from None
    if not -_INF < value < _INF:
        raise _Bad(f"{name} is not a finite number: {raw!r}")
    return value


def book_checksum(bids: Sequence[Sequence[Any]], asks: Sequence[Sequence[Any]]) -> int:
    """OKX's CRC32 of a book (pre-2026 data; 0 since 2026-06): the first 25 levels of each side, best first,
    taken alternately bid, ask, bid, ask... as ``px:sz`` with the strings exactly as sent, all joined by
    ``:`` (the longer side's remaining levels follow), as a signed 32-bit int. A level is ``[px, sz, ...]``."""
    parts: list[str] = []
    for i in range(_CHECKSUM_DEPTH):
        if i < len(bids):
            parts.append(f"{bids[i][0]}:{bids[i][1]}")
        if i < len(asks):
            parts.append(f"{asks[i][0]}:{asks[i][1]}")
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


_CHECKSUM_DEPTH = 25
BOOK_SNAPSHOT_DEPTH = 400  # the depth of ``books``: a REST snapshot covers every level the stream updates


def book_snapshot_path(instrument: str, *, depth: int = BOOK_SNAPSHOT_DEPTH) -> str:
    """``GET /api/v5/market/books``: the book a stream's updates chain onto when no WebSocket snapshot came."""
    return f"/api/v5/market/books?instId={instrument}&sz={depth}"


def book_snapshot_row(body: Any, instrument: str, channel: str, receive_ts_us: int) -> tuple[Any, ...]:
    """A ``market/books`` answer as one ``BOOK_FIELDS`` snapshot message (source "rest", levels as sent,
    ``seq`` = its ``seqId``, no prev_seq or checksum), for the stream ``channel`` it stands in for:

    {"code":"0","msg":"","data":[{"asks":[["63921.5","790.41","0","42"],...],"bids":[["63921.4","421.93","0",
     "28"],...],"ts":"1786541241006","seqId":333794734980}]}

    ``FrameError`` with the reason when OKX answered an error or the book is malformed."""
    try:
        if body.get("code") not in ("0", 0):
            raise _Bad(f"code {body.get('code')!r}: {body.get('msg')!r}")
        (book,) = body["data"]
        bids, asks = book["bids"], book["asks"]
        _check_levels(bids, "bid")
        _check_levels(asks, "ask")
        seq = int64_or_none(book.get("seqId"))
        if seq is None:
            raise _Bad("no seqId: updates cannot be chained onto this book")
        return (
            "okx", _MARKETS.get(instrument) or _market(instrument), instrument, channel, int(book["ts"]),
            receive_ts_us, "rest", None, seq, None, None, True, bids, asks,
        )  # fmt: skip
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise FrameError(_reason("okx market/books", exc)) from None


# Venue channel -> parser; candle{bar} channels are matched by prefix in parse().
_HANDLERS = {
    "trades": _parse_trades,
    "trades-all": _parse_trades,
    "books5": _parse_books5,
    "bbo-tbt": _parse_books5,
    "books": _parse_books,
    "books-l2-tbt": _parse_books,
    "books50-l2-tbt": _parse_books,
    "tickers": _parse_tickers,
}


def _market_of_cached(inst: Any) -> str:
    return _MARKETS.get(inst) or _market(inst)


# Derivatives channels (funding-rate, open-interest, mark-price, index-tickers, liquidation-orders): parsed in
# okx_derivatives, given this module's instrument -> market memo.
_HANDLERS.update(
    {channel: partial(parser, market=_market_of_cached) for channel, parser in okx_derivatives.PARSERS.items()}
)
