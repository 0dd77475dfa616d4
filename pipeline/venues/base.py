"""What every venue module provides, so the collector never contains venue special cases.

A venue module (``pipeline/venues/okx.py``, ``deribit.py``) declares its endpoints, channel map and limits,
builds subscribe frames, and parses frames. It is the one place a venue payload becomes a row: its row
builders (``trade_row``, ``candle_row``) serve the WebSocket parser and REST backfill alike, with the same
checks and the same ``FrameError`` naming the bad field. Parsing is pure: it is given the receive clock, appends row
tuples (see ``pipeline.lake.schemas``) to a ``ParsedBatch`` and returns a ``Control`` for anything that is
not market data (acks, errors, pongs, heartbeats). A frame that cannot be parsed raises ``FrameError``
and adds nothing: parsers build a frame's rows locally and extend the batch only when all succeeded
(or, on the hottest path, append and roll back to the frame's starting length on failure).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pipeline.lake import tables
from pipeline.lake.schemas import CANDLE_FIELDS  # noqa: F401 - re-exported for parsers
from pipeline.lake.tables import TableSpec

ControlKind = Literal["ack", "unsubscribed", "error", "pong", "heartbeat", "response", "notice", "ignored"]
# "notice": the venue announces something the session should act on without it being an error (OKX event
# "notice", code 64008: "the connection will soon be closed for a service upgrade" -> reconnect early).
# "ignored": a well-formed frame we deliberately do not store; no parser returns it for a data-bearing channel
# (book updates are kept since issue #15, and tests/ingest/test_frame_accounting.py checks every recording).

# Candle rows use ``CANDLE_FIELDS`` (declared with the other tables in pipeline.lake.schemas): ``timeframe``
# is the venue's own spelling ("1m", "1H"), normalised on the way into bronze/candles.


@dataclass(slots=True)
class ParsedBatch:
    """Rows parsed from one or more frames, one list per bronze table, each in that table's ``*_FIELDS`` order
    (``BATCH_TABLES`` says which list goes to which table)."""

    trades: list[tuple[Any, ...]] = field(default_factory=list)
    quotes: list[tuple[Any, ...]] = field(default_factory=list)
    candles: list[tuple[Any, ...]] = field(default_factory=list)
    books: list[tuple[Any, ...]] = field(default_factory=list)  # one per book message (BOOK_FIELDS)
    derivatives: list[tuple[Any, ...]] = field(default_factory=list)
    liquidations: list[tuple[Any, ...]] = field(default_factory=list)

    def clear(self) -> None:
        for name, _ in BATCH_TABLES:
            getattr(self, name).clear()

    def row_count(self) -> int:
        return sum(len(getattr(self, name)) for name, _ in BATCH_TABLES)

    def rows_by_table(self) -> dict[TableSpec, list[tuple[Any, ...]]]:
        """Each non-empty list under the table it is written to."""
        return {spec: rows for name, spec in BATCH_TABLES if (rows := getattr(self, name))}

    def extend(self, other: ParsedBatch) -> None:
        for name, _ in BATCH_TABLES:
            getattr(self, name).extend(getattr(other, name))


# Which ParsedBatch list is written to which bronze table: the one map the collector, replay and importer use.
BATCH_TABLES: tuple[tuple[str, TableSpec], ...] = (
    ("trades", tables.BRONZE_TRADES),
    ("quotes", tables.BRONZE_QUOTES),
    ("candles", tables.BRONZE_CANDLES),
    ("books", tables.BRONZE_BOOK_DELTAS),
    ("derivatives", tables.BRONZE_DERIVATIVES),
    ("liquidations", tables.BRONZE_LIQUIDATIONS),
)


@dataclass(frozen=True, slots=True)
class Control:
    """A non-data frame the session must act on or log."""

    kind: ControlKind
    channel: str | None = None  # our or venue channel name the frame refers to, where known
    instrument: str | None = None
    code: str | None = None  # venue error code, e.g. OKX "60012", Deribit "13778"
    message: str | None = None
    request_id: int | None = None  # JSON-RPC id (Deribit)
    payload: Any = None


@dataclass(frozen=True, slots=True)
class Subscription:
    """One (channel, instrument) stream in the collector's own vocabulary.

    ``channel`` is one of "trades", "quotes" (top of book / books5 / quote), "ticker" (tickers incl.
    greeks), "candles", the derivatives state "funding", "open_interest", "mark_price", "index",
    "liquidations" (which apply to some markets only: ``channels_for``) ... -- the venue module's ``CHANNELS``
    maps each to its own channel names.
    """

    channel: str
    instrument: str


class Venue(Protocol):
    """The shape every venue module has (module-level names; checked by mypy in ``pipeline.venues`` and by
    tests at run time)."""

    NAME: str
    WS_BASE: str  # scheme + host (+ port) of the real endpoint; a simulator replaces only this
    WS_URL: str  # real public endpoint (WS_BASE + the default path)
    REST_URL: str
    CAPTURE_URL_MARKERS: tuple[str, ...]  # substrings of a recorded URL that name this venue's protocol
    CHANNELS: dict[str, str]  # our channel name -> venue channel (template)

    def market_of(self, instrument: str) -> str: ...

    def channels_for(self, market: str) -> tuple[str, ...]: ...  # our channels that apply to that market

    def ws_path_for(self, sub: Subscription) -> str: ...

    def subscribe_frames(self, subs: list[Subscription], request_id: int) -> list[str]: ...

    def unsubscribe_frames(self, subs: list[Subscription], request_id: int) -> list[str]: ...

    def on_open_frames(self, heartbeat_secs: int, request_id: int) -> list[str]: ...  # sent before subscribing

    def needs_login(self, sub: Subscription) -> bool: ...  # planning gives such subscriptions their own connections

    # A connection whose subscriptions need a login sends this first and subscribes only after
    # login_outcome(control) says True (False: refused; None: not the login's answer).
    def login_frame(self, subs: Sequence[Subscription]) -> str | None: ...

    def login_outcome(self, control: Control) -> bool | None: ...

    def idle_frame(self) -> str | None: ...  # keepalive after a silence (OKX "ping")

    def reply_to(self, control: Control, request_id: int) -> str | None: ...  # e.g. Deribit test_request

    def parse(self, text: str, receive_ts_us: int, out: ParsedBatch, source: str = "ws") -> Control | None: ...

    # One payload item -> one row, for the WebSocket parser and REST backfill; FrameError when refused.
    def trade_row(self, payload: Any, receive_us: int, source: str = "ws") -> tuple[Any, ...]: ...

    def candle_row(
        self, payload: Any, instrument: str, timeframe: str, receive_us: int, source: str = "ws"
    ) -> tuple[Any, ...]: ...

    # Instrument listings over REST, to check names before subscribing.
    def listing_paths(self, instruments: list[str]) -> list[str]: ...

    def options_listing_path(self, currency: str) -> str: ...

    def listed_names(self, body: Any) -> list[str]: ...

    # Order books (issue #15): a subscription's venue channel (the book's key), and the REST snapshot a broken
    # or snapshot-less book is resynchronised from, as one BOOK_FIELDS message with source "rest".
    def venue_channel(self, sub: Subscription) -> str: ...

    def book_snapshot_path(self, instrument: str) -> str: ...

    def book_snapshot_row(self, body: Any, instrument: str, channel: str, receive_ts_us: int) -> tuple[Any, ...]: ...
