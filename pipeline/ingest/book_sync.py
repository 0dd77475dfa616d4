"""Order books on the live stream (issue #15): every book message verified on arrival, a broken book
resynchronised on its own, per instrument, without dropping the connection.

The collector hands ``BookSync.check`` each frame's book messages (``BOOK_FIELDS`` tuples, levels as sent) on
the event loop, in arrival order. ``BookSync`` stamps the message's ``session`` (one id per subscription
incarnation: a new one at every subscribe, resubscribe, reconnect and REST snapshot) and runs them through
``BookVerifier`` (the chain always, the checksum when it is not 0, crossing). The messages are stored
whatever the verdict; a break (``chain``, ``checksum``, ``crossed``) becomes a ``bronze/gaps`` row of kind
"book" and starts the recovery of THAT book:

- resubscribe: ``unsubscribe`` + ``subscribe`` of that one stream on its live connection. The new session
  starts at the venue's first answer to it (OKX's unsubscribe/subscribe event, Deribit's response naming the
  channel) or at the new snapshot, whichever comes first, so updates still in flight stay in the old session;
- REST snapshot, when the venue sent an update with no snapshot before it in a session (OKX's announced 2026
  behaviour: that is a cue, not a gap) or ``book_rest_snapshots`` is set: the next session starts at once,
  its updates are buffered by the verifier, ``GET`` the venue's snapshot (``book_snapshot_path`` /
  ``book_snapshot_row`` of the venue module: a ``BOOK_FIELDS`` message with source "rest", stored in
  bronze/book_deltas like any other) and chain the buffered updates onto it (``seq <= S`` skipped, the first
  applied has ``prev_seq <= S < seq``).

While a book recovers its further breaks are not new gaps and start nothing (no resubscription storm: the
verifier itself stays silent until the next snapshot). A recovery that brings no good snapshot within
``book_resync_timeout_secs`` is retried, at most ``book_resync_retries`` times (logged, counted), then given
up until the connection reconnects. Duplicated updates are chain breaks, as OKX's rule has it (an update's
``prevSeqId`` must be the previous message's ``seqId``); the copy the wire sent twice is stored twice.

Session ids: ``{prefix}/{instrument}/{channel}/{n}``, the prefix naming the collector and its start, so ids
never repeat across restarts and a chain can be followed in bronze/book_deltas by ``session``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import aiohttp

from pipeline.errors import FrameError
from pipeline.ingest.book_chain import BookBreak, BookVerifier
from pipeline.ingest.instruments import http_base_for
from pipeline.ingest.stats import StreamStats
from pipeline.stream_settings import StreamSettings
from pipeline.venues.base import Control, Subscription, Venue

log = logging.getLogger(__name__)

# Our channel names that are full-depth books (snapshot + chained updates); books5/bbo-tbt are whole snapshots.
BOOK_CHANNELS = frozenset(("book", "option_book", "book_tbt", "book50_tbt"))
# BOOK_FIELDS positions (pipeline.lake.schemas).
_VENUE, _INSTRUMENT, _CHANNEL, _SOURCE, _SESSION, _SEQ, _SNAPSHOT = 0, 2, 3, 6, 7, 8, 11

Key = tuple[str, str, str]  # (venue, instrument, venue channel): the verifier's book key
Recovery = Literal["resubscribe", "rest"]


class BookConnection(Protocol):
    """What ``BookSync`` needs of a connection (``pipeline.ingest.connection.Connection``)."""

    venue: Venue
    url: str
    connected: bool

    async def resubscribe(self, sub: Subscription) -> bool: ...


@dataclass(slots=True)
class _Book:
    conn: BookConnection
    sub: Subscription
    key: Key
    incarnation: int = 0
    session: str = ""
    recovering: Recovery | None = None
    switch_pending: bool = False  # resubscribed: the next answer or snapshot of this stream opens the session
    attempts: int = 0
    since: float = 0.0  # monotonic time the current attempt started
    after_break: bool = False  # the recovery follows a recorded break (counted as a resync when it ends)
    rest_seq: int | None = None  # the REST snapshot's seq while no update chained onto it yet
    max_seq: int | None = None  # the highest seq of this session's updates so far


def venue_channel(venue: Venue, sub: Subscription) -> str:
    """The venue's channel name of a subscription (``books``; ``book.ETH-PERPETUAL.100ms``)."""
    return venue.venue_channel(sub)


class BookSync:
    """Verification, sessions and recovery of every book of one collector; event loop only."""

    def __init__(
        self,
        settings: StreamSettings,
        stats: StreamStats,
        prefix: str,
        store: Callable[[tuple[Any, ...]], None],
        record_gap: Callable[[tuple[Any, ...]], None],
    ) -> None:
        self.settings = settings
        self.stats = stats
        self.prefix = prefix
        self.store = store  # keeps a REST snapshot message in the buffers (bronze/book_deltas)
        self.record_gap = record_gap  # a bronze/gaps row
        self.verifier = BookVerifier(prefix)
        self.books: dict[Key, _Book] = {}
        self._by_channel: dict[tuple[str, str], list[_Book]] = {}  # (venue, venue channel) -> books
        self.rest_venues: set[str] = set()  # venues seen sending updates with no snapshot: resync by REST
        self.breaks: Counter[tuple[str, str]] = Counter()  # (venue, kind) -> breaks recorded (metrics)
        self.resyncs: Counter[str] = Counter()  # venue -> books resynchronised
        self.check_seconds = 0.0  # time spent in check(): the cost of verification on the event loop
        self._http: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # ---- subscriptions --------------------------------------------------------------------------------------
    def opened(self, conn: BookConnection, subs: Sequence[Subscription]) -> None:
        """``conn`` (re)connected and is about to subscribe ``subs``: each book starts a new session."""
        for sub in subs:
            if sub.channel not in BOOK_CHANNELS:
                continue
            key = (conn.venue.NAME, sub.instrument, venue_channel(conn.venue, sub))
            book = self.books.get(key)
            if book is None:
                book = self.books[key] = _Book(conn, sub, key)
                self._by_channel.setdefault((key[0], key[2]), []).append(book)
            book.conn, book.sub = conn, sub
            book.recovering, book.switch_pending, book.attempts, book.after_break = None, False, 0, False
            self._new_session(book)

    def dropped(self, instruments: set[str], venue: str) -> None:
        """Instruments unsubscribed for good (the universe moved on): forget their books."""
        for key in [k for k in self.books if k[0] == venue and k[1] in instruments]:
            book = self.books.pop(key)
            self._by_channel[(key[0], key[2])].remove(book)

    def _new_session(self, book: _Book) -> None:
        book.incarnation += 1
        venue, instrument, channel = book.key
        book.session = f"{self.prefix}/{instrument}/{channel}/{book.incarnation}"
        book.rest_seq = book.max_seq = None
        self.verifier.begin(venue, instrument, channel, book.session)

    def on_control(self, venue: str, control: Control) -> None:
        """An (un)subscribe answer of a resubscribed book opens its new session."""
        if control.kind not in ("ack", "unsubscribed"):
            return
        channels = (
            control.payload if control.channel is None and isinstance(control.payload, list) else [control.channel]
        )
        for channel in channels:
            for book in self._by_channel.get((venue, channel), ()) if isinstance(channel, str) else ():
                if book.switch_pending and (control.instrument is None or control.instrument == book.key[1]):
                    book.switch_pending = False
                    self._new_session(book)

    # ---- messages -------------------------------------------------------------------------------------------
    def check(self, rows: list[tuple[Any, ...]], start: int = 0) -> None:
        """Verify ``rows[start:]`` (book messages in arrival order), stamping each one's session in place."""
        started = time.perf_counter()
        books, check = self.books, self.verifier.check
        for i in range(start, len(rows)):
            row = rows[i]
            book = books.get((row[_VENUE], row[_INSTRUMENT], row[_CHANNEL]))
            if book is None:  # not subscribed by this collector (an unsubscribed stream's last frames)
                rows[i], broke = check(row)
                if broke is not None and broke.kind != "no_snapshot":
                    self._record(broke)
                continue
            snapshot = row[_SNAPSHOT]
            if snapshot and book.switch_pending:
                book.switch_pending = False
                self._new_session(book)
            rows[i], broke = check((*row[:_SESSION], book.session, *row[_SESSION + 1 :]))
            seq = row[_SEQ]
            if snapshot:
                if row[_SOURCE] == "rest":
                    book.rest_seq = seq
            elif seq is not None and (book.max_seq is None or seq > book.max_seq):
                book.max_seq = seq
            if broke is not None:
                self._on_break(book, broke)
            elif book.recovering is not None:
                self._maybe_recovered(book, row)
        self.stats.book_messages += len(rows) - start
        self.stats.book_checksums_verified = self.verifier.checksums_verified
        self.check_seconds += time.perf_counter() - started

    def _maybe_recovered(self, book: _Book, row: tuple[Any, ...]) -> None:
        """A recovery ends with a good snapshot; a REST one only once an update chained onto it."""
        if row[_SNAPSHOT] and row[_SOURCE] != "rest":
            self._recovered(book)
            return
        if book.rest_seq is not None and book.max_seq is not None and book.max_seq > book.rest_seq:
            if self.verifier.is_valid(*book.key):
                self._recovered(book)

    def _recovered(self, book: _Book) -> None:
        if book.after_break:
            self.stats.book_resyncs += 1
            self.resyncs[book.key[0]] += 1
            log.info("%s %s %s: book resynchronised (%s, session %s)", *book.key, book.recovering, book.session)
        book.recovering, book.attempts, book.rest_seq, book.after_break = None, 0, None, False

    def _on_break(self, book: _Book, broke: BookBreak) -> None:
        venue = book.key[0]
        if broke.kind == "no_snapshot":
            # The venue sends no WebSocket snapshot (OKX from 2026): the session's updates are buffered by the
            # verifier; the REST snapshot completes it. Nothing was lost, so no gap.
            self.rest_venues.add(venue)
            if book.recovering != "rest":
                book.recovering, book.after_break = "rest", book.recovering is not None
                self._attempt(book, new_session=False)
            return
        if book.recovering == "rest" and book.rest_seq is not None:
            # The updates did not chain onto the REST snapshot (taken too early or too late): take another.
            self._retry(book, f"updates do not chain onto the REST snapshot: {broke.detail}")
            return
        if book.recovering is not None:
            self.stats.book_breaks_ignored += 1  # already recovering: the same outage, not a new gap
            return
        self._record(broke)
        rest = self.settings.book_rest_snapshots or venue in self.rest_venues
        book.recovering = "rest" if rest else "resubscribe"
        book.attempts, book.after_break = 0, True
        self._attempt(book, new_session=True)

    def _record(self, broke: BookBreak) -> None:
        self.record_gap(broke.gap_row())
        self.stats.book_breaks += 1
        self.breaks[(broke.venue, broke.kind)] += 1
        log.warning(
            "%s %s %s: book broken (%s: %s)", broke.venue, broke.instrument, broke.channel, broke.kind, broke.detail
        )

    # ---- recovery -------------------------------------------------------------------------------------------
    def _attempt(self, book: _Book, *, new_session: bool) -> None:
        book.attempts += 1
        book.since = time.monotonic()
        if book.recovering == "rest":
            if new_session:
                self._new_session(book)
            self._spawn(self._fetch_rest(book, book.incarnation))
        else:
            book.switch_pending = True
            self._spawn(self._resubscribe(book))

    def _retry(self, book: _Book, why: str) -> None:
        if book.attempts >= self.settings.book_resync_retries:
            self.stats.book_resync_failures += 1
            log.error(
                "%s %s %s: book resync given up after %d attempts (%s); it stays unverified until a reconnect",
                *book.key, book.attempts, why,
            )  # fmt: skip
            book.recovering, book.switch_pending = None, False
            return
        self.stats.book_resync_retries += 1
        log.warning("%s %s %s: book resync attempt %d failed (%s); retrying", *book.key, book.attempts, why)
        self._attempt(book, new_session=True)

    def tick(self) -> None:
        """Retry (or give up) recoveries that brought no good snapshot within the timeout. A REST snapshot that
        applied waits for the book's next update however long a quiet book takes: that update either chains
        onto it (recovered) or not (retried at once)."""
        now = time.monotonic()
        timeout = self.settings.book_resync_timeout_secs
        for book in list(self.books.values()):
            if book.recovering is None or book.rest_seq is not None or not book.conn.connected:
                continue
            if now - book.since >= timeout:
                self._retry(book, f"no snapshot within {timeout:g} s")

    async def run(self) -> None:
        """The timeout loop; cancelled with the collector."""
        period = max(0.05, min(1.0, self.settings.book_resync_timeout_secs / 4))
        try:
            while True:
                await asyncio.sleep(period)
                self.tick()
        finally:
            await self.close()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(self._tasks.discard)

    async def _resubscribe(self, book: _Book) -> None:
        if not await book.conn.resubscribe(book.sub):
            log.info("%s %s %s: not connected; the reconnect subscribes the book again", *book.key)

    async def _fetch_rest(self, book: _Book, incarnation: int) -> None:
        venue = book.conn.venue
        parts = urlsplit(book.conn.url)
        url = http_base_for(f"{parts.scheme}://{parts.netloc}", venue) + venue.book_snapshot_path(book.key[1])
        try:
            if self._http is None:
                self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
            async with self._http.get(url) as response:
                if response.status != 200:
                    raise ValueError(f"HTTP {response.status}")
                body = await response.json(content_type=None)
            receive_ts_us = time.time_ns() // 1000
            row = venue.book_snapshot_row(body, book.key[1], book.key[2], receive_ts_us)
        except (aiohttp.ClientError, TimeoutError, ValueError, FrameError) as exc:
            self.stats.book_rest_errors += 1
            log.warning("%s %s: REST book snapshot %s failed: %s", venue.NAME, book.key[1], url, exc)
            return  # the timeout retries
        if book.incarnation != incarnation or self.books.get(book.key) is not book or book.recovering != "rest":
            return  # the book moved on meanwhile (reconnected, resubscribed): this answer belongs to no session
        self.stats.book_rest_snapshots += 1
        rows = [row]
        self.check(rows)
        self.store(rows[0])


__all__ = ["BOOK_CHANNELS", "BookConnection", "BookSync", "venue_channel"]
