"""Order-book chain and checksum verification, on the strings as the venue sent them (issue #15).

``BookVerifier`` keeps one book per (venue, instrument, channel): price -> the level as sent (OKX
``[px, sz, "0", orders]`` strings, Deribit ``(price, amount, None, None, action)``), keyed by the price as a
float so that "30238.8" and "30238.80" are one level. It is fed every book message (``BOOK_FIELDS`` tuples,
as the venue parsers emit them) in arrival order and reports at most one ``BookBreak`` per message:

- ``no_snapshot``: an update with no snapshot before it in this session (reported once per session; in a
  REST-snapshot stream this is the cue to fetch ``GET /api/v5/market/books``, and need not be a gap);
- ``chain``: ``prev_seq`` is not the previous message's ``seq`` (OKX prevSeqId/seqId, Deribit
  prev_change_id/change_id). One rule serves both venues and OKX's two special cases: a keep-alive has
  ``seqId == prevSeqId ==`` the previous seqId, and a seqId reset after maintenance still chains
  (``prevSeqId`` = the previous seqId, only ``seqId`` is smaller). "No prevSeqId" (OKX 2022 sent no seqId
  at all) is not 0: a chain is checked only from a snapshot that carried a ``seq``;
- ``checksum``: the message's checksum (when not null and not 0) differs from the venue's checksum of the
  rebuilt book (``book_checksum`` of the venue module; only OKX has one);
- ``crossed``: best bid >= best ask after applying the message.

After a break the book is broken: no further checks and no further breaks until the next snapshot (so a
resubscription's snapshot still on its way causes no storm). The messages themselves are all kept by the
caller, break or not; the verifier never drops or changes a level, it only fills ``session``.

REST snapshots (a snapshot row whose ``source`` is ``"rest"``, ``seq`` = the answer's seqId S): the
updates received while no valid book existed are buffered (bounded); those with ``seq <= S`` are skipped for
verification (they are still stored), and the first one applied must have ``prev_seq <= S < seq``.
Updates with ``seq <= S`` arriving after the snapshot are skipped the same way until one applies.

Sessions: a row's ``session`` (one id per subscription incarnation) is used as is when the caller set it;
when it is None (what the parsers emit) the verifier derives ``{prefix}/{instrument}/{channel}/{n}``, ``n``
counting incarnations from 1: a snapshot after a session that already had one starts the next, and so does
``begin()`` (a resubscription). For a capture the prefix is derived from its content hash, so a re-import
gives the same ids; the stream passes its own prefix.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pipeline.ingest.gaps import gap_row
from pipeline.venues import get_venue

BreakKind = Literal["chain", "checksum", "crossed", "no_snapshot"]

# BOOK_FIELDS positions (pipeline.lake.schemas).
_VENUE, _INSTRUMENT, _CHANNEL, _TS, _SOURCE, _SESSION = 0, 2, 3, 4, 6, 7
_SEQ, _PREV, _CHECKSUM, _SNAPSHOT, _BIDS, _ASKS = 8, 9, 10, 11, 12, 13

_BUFFER_MAX = 10_000  # updates held per book while it waits for a REST snapshot
_CHECKSUM_DEPTH = 25  # OKX checksums the top 25 levels of each side


@dataclass(frozen=True, slots=True)
class BookBreak:
    """A book that stopped being trustworthy at one message; ``gap_row()`` records it in bronze/gaps."""

    kind: BreakKind
    venue: str
    instrument: str
    channel: str
    session: str
    from_ts_ms: int  # the last message applied before the break (the break's own time when none)
    to_ts_ms: int  # the message that broke it
    from_seq: int | None
    to_seq: int | None
    detail: str

    def gap_row(self, detected_us: int | None = None) -> tuple[Any, ...]:
        """A ``bronze/gaps`` row (``GAP_FIELDS``) with ``kind = "book"``; the detail names what broke."""
        detail = f"{self.kind}: {self.channel} session {self.session}: {self.detail}"
        return gap_row(
            self.venue, self.instrument, "book", self.from_ts_ms, self.to_ts_ms,
            self.from_seq, self.to_seq, detail, detected_us,
        )  # fmt: skip


@dataclass(slots=True)
class _Book:
    session: str
    ordinal: int
    had_snapshot: bool = False
    valid: bool = False  # a snapshot applied and nothing broke since
    reported: bool = False  # a break was reported in this state: stay silent until the next snapshot
    bids: dict[float, Sequence[Any]] = field(default_factory=dict)
    asks: dict[float, Sequence[Any]] = field(default_factory=dict)
    # Each side's prices in ascending order, kept beside the dict: the best bid is the last, the best ask the
    # first, and a checksum's top 25 is a slice instead of a sort of the whole book per message.
    bid_prices: list[float] = field(default_factory=list)
    ask_prices: list[float] = field(default_factory=list)
    last_seq: int | None = None
    last_ts: int | None = None
    rest_floor: int | None = None  # REST snapshot seqId while no update has been applied after it
    buffer: list[tuple[Any, ...]] = field(default_factory=list)


class BookVerifier:
    """Verifies book messages in arrival order; see the module docstring for the rules."""

    def __init__(self, session_prefix: str) -> None:
        self.prefix = session_prefix
        self._books: dict[tuple[str, str, str], _Book] = {}
        self._checksums: dict[str, Callable[..., int] | None] = {}
        self.messages = 0  # messages checked
        self.checksums_verified = 0  # non-zero checksums that matched

    # --- API -----------------------------------------------------------------------------------------
    def check(self, row: tuple[Any, ...]) -> tuple[tuple[Any, ...], BookBreak | None]:
        """Apply one book message: the row with its ``session`` filled in, and the break it reveals if any."""
        key = (row[_VENUE], row[_INSTRUMENT], row[_CHANNEL])
        book = self._books.get(key)
        given = row[_SESSION]
        if book is None:
            book = self._books[key] = _Book(given or self._session(key, 1), 1)
        elif given is not None and given != book.session:
            book = self._books[key] = _Book(given, book.ordinal + 1)  # the caller's new incarnation
        self.messages += 1
        if row[_SNAPSHOT]:
            if book.had_snapshot and given is None:
                book = self._books[key] = _Book(
                    self._session(key, book.ordinal + 1), book.ordinal + 1, buffer=book.buffer
                )
            found = self._snapshot(book, row)
        elif book.valid:
            found = self._update(book, row)
        else:
            found = self._waiting(book, row)
        if given is None:
            row = (*row[:_SESSION], book.session, *row[_SESSION + 1 :])
        return row, found

    def verify(self, rows: list[tuple[Any, ...]]) -> list[BookBreak]:
        """``check()`` over ``rows`` in order, replacing each row by its session-stamped copy in place."""
        found: list[BookBreak] = []
        check = self.check
        for i, row in enumerate(rows):
            rows[i], broke = check(row)
            if broke is not None:
                found.append(broke)
        return found

    def begin(self, venue: str, instrument: str, channel: str, session: str | None = None) -> str:
        """A (re)subscription starts: a new session whose book waits for its snapshot. Returns its id."""
        key = (venue, instrument, channel)
        old = self._books.get(key)
        ordinal = old.ordinal + 1 if old is not None else 1
        book = self._books[key] = _Book(session or self._session(key, ordinal), ordinal)
        return book.session

    def is_valid(self, venue: str, instrument: str, channel: str) -> bool:
        """Whether that book has a snapshot and no break since (False while it waits for a snapshot)."""
        book = self._books.get((venue, instrument, channel))
        return book is not None and book.valid

    def top(
        self, venue: str, instrument: str, channel: str, depth: int = 25
    ) -> tuple[list[Sequence[Any]], list[Sequence[Any]]]:
        """The book's best ``depth`` levels per side as sent (bids high to low, asks low to high)."""
        return self._top(self._books[(venue, instrument, channel)], depth)

    # --- rules ---------------------------------------------------------------------------------------
    def _session(self, key: tuple[str, str, str], ordinal: int) -> str:
        return f"{self.prefix}/{key[1]}/{key[2]}/{ordinal}"

    def _snapshot(self, book: _Book, row: tuple[Any, ...]) -> BookBreak | None:
        book.had_snapshot = True
        book.valid = True
        book.reported = False
        book.bids.clear()
        book.asks.clear()
        book.bid_prices.clear()
        book.ask_prices.clear()
        book.last_seq = row[_SEQ]
        book.last_ts = row[_TS]
        book.rest_floor = None
        buffered, book.buffer = book.buffer, []
        found = self._apply(book, row)
        if found is not None or row[_SOURCE] != "rest":
            return found
        book.rest_floor = row[_SEQ]
        for update in buffered:  # updates that came before the REST answer: chain them onto it
            if book.valid:
                found = self._update(book, update)
                if found is not None:
                    return found
        return None

    def _waiting(self, book: _Book, row: tuple[Any, ...]) -> BookBreak | None:
        """An update while no valid book exists: buffered for a REST snapshot; reported once if never had one."""
        if row[_SEQ] is not None:
            if len(book.buffer) >= _BUFFER_MAX:
                del book.buffer[: _BUFFER_MAX // 2]
            book.buffer.append(row)
        if book.had_snapshot or book.reported:
            return None  # broken: silent until the next snapshot
        book.reported = True
        return self._break(book, row, "no_snapshot", "an update arrived before any snapshot of this session")

    def _update(self, book: _Book, row: tuple[Any, ...]) -> BookBreak | None:
        seq, prev = row[_SEQ], row[_PREV]
        floor = book.rest_floor
        if floor is not None:
            if seq is not None and seq <= floor:
                return None  # older than the REST snapshot: stored, not applied
            book.rest_floor = None
            if prev is None or not prev <= floor < seq:
                return self._break(
                    book, row, "chain", f"first update after the REST snapshot {floor} has prev_seq {prev}, seq {seq}"
                )
        elif book.last_seq is not None and prev != book.last_seq:
            return self._break(book, row, "chain", f"prev_seq {prev} after seq {book.last_seq}")
        found = self._apply(book, row)
        if found is None:
            book.last_seq = seq
            book.last_ts = row[_TS]
        return found

    def _apply(self, book: _Book, row: tuple[Any, ...]) -> BookBreak | None:
        """Apply the message's levels (size 0 deletes; an unknown deleted level is a no-op), then check the
        crossing and the checksum."""
        for side, prices, levels in (
            (book.bids, book.bid_prices, row[_BIDS]),
            (book.asks, book.ask_prices, row[_ASKS]),
        ):
            if not levels:
                continue
            if not prices and len(levels) > 8:  # a snapshot (or a first big update): one sort, not n inserts
                for level in levels:
                    if float(level[1]) != 0.0:
                        side[float(level[0])] = level
                prices.extend(sorted(side))
                continue
            for level in levels:
                price = float(level[0])
                if float(level[1]) == 0.0:
                    if side.pop(price, None) is not None:
                        del prices[bisect_left(prices, price)]
                else:
                    if price not in side:
                        insort(prices, price)
                    side[price] = level
        if book.bid_prices and book.ask_prices and book.bid_prices[-1] >= book.ask_prices[0]:
            bid, ask = book.bid_prices[-1], book.ask_prices[0]
            return self._break(book, row, "crossed", f"best bid {bid} >= best ask {ask}")
        checksum = row[_CHECKSUM]
        if checksum:
            compute = self._checksum_of(row[_VENUE])
            if compute is not None:
                bids, asks = self._top(book, _CHECKSUM_DEPTH)
                mine = compute(bids, asks)
                if mine != checksum:
                    return self._break(book, row, "checksum", f"checksum {checksum} sent, {mine} rebuilt")
                self.checksums_verified += 1
        return None

    @staticmethod
    def _top(book: _Book, depth: int) -> tuple[list[Sequence[Any]], list[Sequence[Any]]]:
        bids, asks = book.bids, book.asks
        return [bids[p] for p in reversed(book.bid_prices[-depth:])], [asks[p] for p in book.ask_prices[:depth]]

    def _checksum_of(self, venue: str) -> Callable[..., int] | None:
        try:
            return self._checksums[venue]
        except KeyError:
            compute = self._checksums[venue] = getattr(get_venue(venue), "book_checksum", None)
            return compute

    def _break(self, book: _Book, row: tuple[Any, ...], kind: BreakKind, detail: str) -> BookBreak:
        book.valid = False
        book.reported = True
        book.rest_floor = None
        ts = row[_TS]
        return BookBreak(
            kind, row[_VENUE], row[_INSTRUMENT], row[_CHANNEL], book.session,
            book.last_ts if book.last_ts is not None else ts, ts, book.last_seq, row[_SEQ], detail,
        )  # fmt: skip


__all__ = ["BookBreak", "BookVerifier", "BreakKind"]
