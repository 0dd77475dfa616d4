"""OKX order-book channels over the true books: ``books`` (400 levels), ``books-l2-tbt``, ``books50-l2-tbt``
(snapshot, then updates chained by ``seqId``/``prevSeqId``), ``books5`` and ``bbo-tbt`` (whole top-5 / top-1
snapshots when the top changes), and the ``GET /api/v5/market/books`` body.

Wire rules, as OKX: levels ``[px, sz, "0", orders]`` with the strings OKX would send, size ``"0"`` deletes,
asks ascending and bids descending; a snapshot has ``prevSeqId = -1``; an update's ``prevSeqId`` is the
previous message's ``seqId``; an update with nothing changed comes after ``KEEPALIVE_MS`` as a keep-alive with
``prevSeqId == seqId``. ``checksum``: CRC32 of the top 25 levels, bid and ask alternating, ``px:sz`` as sent,
joined by ``:``, signed 32-bit (``book_checksum = "crc32"``, the pre-2026 rule) or always 0 (``"zero"``, from
2026-06). With ``book_ws_snapshot = False`` a subscription gets no snapshot: the client takes the REST one.

``books`` and ``books50-l2-tbt`` send the change of each 100 ms slot; ``books-l2-tbt`` sends every level change
as its own update (tick by tick, so several per slot, each with its seqId and checksum). One stream per
(channel, instrument), shared by its subscribers: a new first subscriber starts it at the
book's current seq; a later one gets the snapshot at the stream's last seq, so its chain joins the others'.
Book faults are drawn per update of a stream (``BookSet.draw_fault``): ``skip`` (the update is not sent:
the next one's ``prevSeqId`` points at it), ``duplicate`` (sent twice), ``cross`` (an extra bid at or above the
best ask; the checksum is that of the crossed book, so only the crossing shows) and ``checksum`` (a wrong
non-zero checksum).
"""

from __future__ import annotations

import heapq
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from pipeline.simulator.okx_frames import fmt

if TYPE_CHECKING:  # pragma: no cover
    from pipeline.simulator.books import BookSet
    from pipeline.simulator.faults import Faults
    from pipeline.simulator.orderbook import BookSpec, LimitOrderBook

DEPTH_CHANNELS = {"books": 400, "books-l2-tbt": 400, "books50-l2-tbt": 50}
TOP_CHANNELS = {"books5": 5, "bbo-tbt": 1}
CHANNELS = frozenset(DEPTH_CHANNELS) | frozenset(TOP_CHANNELS)
KEEPALIVE_MS = 1000
CHECKSUM_LEVELS = 25
CHECKSUM_MODES = ("crc32", "zero")
_CORRUPT = 0x1F2E3D4C


def signed32(x: int) -> int:
    """An unsigned CRC32 as OKX sends it: a signed 32-bit int."""
    return x - (1 << 32) if x >= 1 << 31 else x


def okx_checksum(bids: list[list[str]], asks: list[list[str]]) -> int:
    """OKX's book checksum over level strings as sent, best first."""
    parts: list[str] = []
    for i in range(CHECKSUM_LEVELS):
        if i < len(bids):
            parts.append(f"{bids[i][0]}:{bids[i][1]}")
        if i < len(asks):
            parts.append(f"{asks[i][0]}:{asks[i][1]}")
    return signed32(zlib.crc32(":".join(parts).encode()))


def okx_level(spec: BookSpec, tick: int, lots: int) -> list[str]:
    """``[px, sz, "0", orders]``; the order count grows with the size (a level of the median size has ~3)."""
    orders = str(min(60, 1 + lots // max(1, int(spec.median_lots / 2)))) if lots else "0"
    return [fmt(tick * spec.tick_size, spec.px_dec), fmt(lots * spec.unit, spec.sz_dec), "0", orders]


@dataclass(slots=True)
class _Stream:
    last_seq: int
    last_ms: int
    # books5/bbo-tbt/books50-l2-tbt: the top last sent; books-l2-tbt: the whole book at ``last_seq``
    view: tuple[dict[int, int], dict[int, int]] = field(default_factory=lambda: ({}, {}))


class OkxBooks:
    """Book frames of the OKX hub: call ``subscribed`` after a subscribe ack and ``publish`` every tick."""

    def __init__(self, books: BookSet, faults: Faults, checksum_mode: str, ws_snapshot: bool) -> None:
        self.books = books
        self.faults = faults
        self.checksum_mode = checksum_mode
        self.ws_snapshot = ws_snapshot
        self.streams: dict[tuple[str, str], _Stream] = {}

    def _book(self, inst_id: str) -> LimitOrderBook:
        return self.books.book("okx", inst_id)

    # -- subscription ----------------------------------------------------------------------------------------
    def subscribed(self, channel: str, inst_id: str, first: bool) -> bytes | None:
        """The frame a new subscriber gets at once (``first``: nobody else follows the stream, so it starts
        now); ``None`` in the no-snapshot mode."""
        book = self._book(inst_id)
        stream = self.streams.get((channel, inst_id))
        if first or stream is None:
            stream = self.streams[(channel, inst_id)] = _Stream(book.seq, book.ts_ms)
            if channel in TOP_CHANNELS or channel == "books50-l2-tbt":
                stream.view = _top_dicts(book, TOP_CHANNELS.get(channel, 50))
            elif channel == "books-l2-tbt":
                stream.view = (dict(book.bids), dict(book.asks))
        if channel in TOP_CHANNELS:
            return self._top_frame(channel, inst_id, book, _top_dicts(book, TOP_CHANNELS[channel]))
        if not self.ws_snapshot:
            return None
        return self._snapshot(channel, inst_id, book, stream.last_seq)

    def _snapshot(self, channel: str, inst_id: str, book: LimitOrderBook, seq: int) -> bytes:
        depth = DEPTH_CHANNELS[channel]
        bids_d, asks_d = book.levels_at(seq)
        spec = book.spec
        bids = [okx_level(spec, t, bids_d[t]) for t in sorted(bids_d, reverse=True)[:depth]]
        asks = [okx_level(spec, t, asks_d[t]) for t in sorted(asks_d)[:depth]]
        data = {
            "asks": asks,
            "bids": bids,
            "ts": str(book.ts_ms),
            "checksum": self._checksum(bids, asks),
            "prevSeqId": -1,
            "seqId": seq,
        }
        return orjson.dumps({"arg": {"channel": channel, "instId": inst_id}, "action": "snapshot", "data": [data]})

    def _checksum(self, bids: list[list[str]], asks: list[list[str]]) -> int:
        return okx_checksum(bids, asks) if self.checksum_mode == "crc32" else 0

    # -- every tick ----------------------------------------------------------------------------------------------
    def publish(self, channel: str, inst_id: str) -> list[bytes]:
        """This tick's frames of one stream for all its subscribers (none, one, or two for a duplicate)."""
        stream = self.streams.get((channel, inst_id))
        if stream is None:
            return []
        book = self._book(inst_id)
        if channel in TOP_CHANNELS:
            view = _top_dicts(book, TOP_CHANNELS[channel])
            if view == stream.view:
                return []
            stream.view, stream.last_seq, stream.last_ms = view, book.seq, book.ts_ms
            return [self._top_frame(channel, inst_id, book, view)]
        if channel == "books-l2-tbt":
            return self._tick_by_tick(stream, inst_id, book)
        if channel == "books50-l2-tbt":
            view = _top_dicts(book, 50)
            changes = (_diff(stream.view[0], view[0]), _diff(stream.view[1], view[1]))
            stream.view = view
        else:
            try:
                changes = book.changes_since(stream.last_seq)
            except KeyError:  # fell behind the kept history (cannot happen while the stream publishes each tick)
                stream.last_seq, stream.last_ms = book.seq, book.ts_ms
                return [self._snapshot(channel, inst_id, book, book.seq)]
        if not changes[0] and not changes[1]:
            if book.ts_ms - stream.last_ms < KEEPALIVE_MS:
                return []
            stream.last_ms = book.ts_ms
            top = book.top(CHECKSUM_LEVELS)
            return [self._update(channel, inst_id, book, [], [], stream.last_seq, stream.last_seq, None, set(), top)]
        spec = book.spec
        bids = [okx_level(spec, t, changes[0][t][1]) for t in sorted(changes[0], reverse=True)]
        asks = [okx_level(spec, t, changes[1][t][1]) for t in sorted(changes[1])]
        prev = stream.last_seq
        stream.last_seq, stream.last_ms = book.seq, book.ts_ms
        fault = self.books.draw_fault("okx", channel, inst_id, self.faults.settings, checksums=True)
        if fault == "skip":
            return []
        top = book.top(CHECKSUM_LEVELS)
        frame = self._update(channel, inst_id, book, bids, asks, prev, book.seq, fault, set(changes[0]), top)
        return [frame, frame] if fault == "duplicate" else [frame]

    def _tick_by_tick(self, stream: _Stream, inst_id: str, book: LimitOrderBook) -> list[bytes]:
        """``books-l2-tbt``: one update per level change, each with its own seqId and the checksum of the book
        right after it (the stream keeps that book in ``view``)."""
        channel = "books-l2-tbt"
        try:
            updates = book.updates_since(stream.last_seq)
        except KeyError:  # fell behind the kept history (cannot happen while the stream publishes each tick)
            stream.last_seq, stream.last_ms, stream.view = book.seq, book.ts_ms, (dict(book.bids), dict(book.asks))
            return [self._snapshot(channel, inst_id, book, book.seq)]
        sides = stream.view
        if not updates:
            if book.ts_ms - stream.last_ms < KEEPALIVE_MS:
                return []
            stream.last_ms = book.ts_ms
            top = _top_of(sides)
            return [self._update(channel, inst_id, book, [], [], stream.last_seq, stream.last_seq, None, set(), top)]
        spec, frames = book.spec, []
        for seq, side, tick, lots in updates:
            if lots:
                sides[side][tick] = lots
            else:
                sides[side].pop(tick, None)
            level = [okx_level(spec, tick, lots)]
            prev, stream.last_seq, stream.last_ms = stream.last_seq, seq, book.ts_ms
            fault = self.books.draw_fault("okx", channel, inst_id, self.faults.settings, checksums=True)
            if fault == "skip":
                continue
            bids, asks = (level, []) if side == 0 else ([], level)
            changed = {tick} if side == 0 else set()
            frame = self._update(channel, inst_id, book, bids, asks, prev, seq, fault, changed, _top_of(sides))
            frames += [frame, frame] if fault == "duplicate" else [frame]
        return frames

    def _update(
        self,
        channel: str,
        inst_id: str,
        book: LimitOrderBook,
        bids: list[list[str]],
        asks: list[list[str]],
        prev: int,
        seq: int,
        fault: str | None,
        changed_bids: set[int],
        top: tuple[list[tuple[int, int]], list[tuple[int, int]]],
    ) -> bytes:
        """One update frame; ``top``: the best 25 levels a side of the book it leads to (for the checksum)."""
        spec = book.spec
        top_b, top_a = top
        top_bids = [okx_level(spec, t, n) for t, n in top_b]
        top_asks = [okx_level(spec, t, n) for t, n in top_a]
        if fault == "cross" and top_a:  # a bid at (or just above) the best ask: the client's book crosses
            tick = top_a[0][0]
            while tick in changed_bids:  # not a price this update also changes on the bid side (it would undo it)
                tick += 1
            bogus = okx_level(spec, tick, max(1, int(spec.median_lots)))
            bids = [bogus, *bids]
            top_bids = [bogus, *top_bids]
        checksum = self._checksum(top_bids, top_asks)
        if fault == "checksum":
            checksum = signed32((checksum & 0xFFFFFFFF) ^ _CORRUPT)
        data = {
            "asks": asks,
            "bids": bids,
            "ts": str(book.ts_ms),
            "checksum": checksum,
            "prevSeqId": prev,
            "seqId": seq,
        }
        return orjson.dumps({"arg": {"channel": channel, "instId": inst_id}, "action": "update", "data": [data]})

    def _top_frame(
        self, channel: str, inst_id: str, book: LimitOrderBook, view: tuple[dict[int, int], dict[int, int]]
    ) -> bytes:
        """``books5``: ``{"asks":[..x5],"bids":[..x5],"instId":..,"ts":..,"seqId":..}``; ``bbo-tbt`` the same
        with one level a side and no ``instId``."""
        spec = book.spec
        data: dict[str, Any] = {
            "asks": [okx_level(spec, t, n) for t, n in view[1].items()],
            "bids": [okx_level(spec, t, n) for t, n in view[0].items()],
        }
        if channel == "books5":
            data["instId"] = inst_id
        data["ts"] = str(book.ts_ms)
        data["seqId"] = book.seq
        return orjson.dumps({"arg": {"channel": channel, "instId": inst_id}, "data": [data]})

    # -- REST ----------------------------------------------------------------------------------------------------
    def rest_body(self, inst_id: str, depth: int) -> dict[str, Any]:
        """One ``GET /api/v5/market/books`` row: the book now, with the ``seqId`` the WS chain continues from."""
        book = self._book(inst_id)
        spec = book.spec
        bids_t, asks_t = book.top(depth)
        return {
            "asks": [okx_level(spec, t, n) for t, n in asks_t],
            "bids": [okx_level(spec, t, n) for t, n in bids_t],
            "ts": str(book.ts_ms),
            "seqId": book.seq,
        }


def _top_of(sides: tuple[dict[int, int], dict[int, int]]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    bids, asks = sides
    return (
        [(t, bids[t]) for t in heapq.nlargest(CHECKSUM_LEVELS, bids)],
        [(t, asks[t]) for t in heapq.nsmallest(CHECKSUM_LEVELS, asks)],
    )


def _top_dicts(book: LimitOrderBook, n: int) -> tuple[dict[int, int], dict[int, int]]:
    bids, asks = book.top(n)
    return dict(bids), dict(asks)


def _diff(old: dict[int, int], new: dict[int, int]) -> dict[int, tuple[int, int]]:
    out = {t: (lots, new.get(t, 0)) for t, lots in old.items() if new.get(t, 0) != lots}
    out.update((t, (0, lots)) for t, lots in new.items() if t not in old)
    return out
