"""Deribit order-book payloads over the true books: ``book.{inst}.{interval}`` (a snapshot, then changes
chained by ``change_id``/``prev_change_id``), ``quote.{inst}`` (the top, when it changes) and the levels of
``public/get_order_book``.

The ``change_id`` is the book's sequence number (one per level update), so a message's ``change_id`` is the
seq of the last update it carries and ``get_order_book``'s ``change_id`` the seq its levels are at. One
stream per channel, shared by its subscribers (a new first subscriber starts it at the current seq, a later
one gets the snapshot at the stream's last ``change_id``). Book faults per change message, as on OKX:
``skip``, ``duplicate``, ``cross`` (an extra ``new`` bid at or above the best ask); Deribit sends no checksum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from pipeline.simulator.books import BookSet
    from pipeline.simulator.faults import Faults
    from pipeline.simulator.orderbook import BookSpec, LimitOrderBook

VENUE = "deribit"


def px_of(spec: BookSpec, tick: int) -> float:
    return float(round(tick * spec.tick_size, spec.px_dec))


def amount_of(spec: BookSpec, lots: int) -> float:
    return float(round(lots * spec.unit, spec.sz_dec))


@dataclass(slots=True)
class _Stream:
    last_seq: int
    top: tuple[tuple[int, int], tuple[int, int]] | None = None  # quote streams: (best bid, best ask) last sent


class DeribitBooks:
    """Book and quote payloads of the Deribit hub: ``snapshot`` at subscribe, ``change``/``quote`` per tick."""

    def __init__(self, books: BookSet, faults: Faults) -> None:
        self.books = books
        self.faults = faults
        self.streams: dict[str, _Stream] = {}

    def _book(self, inst_id: str) -> LimitOrderBook:
        return self.books.book(VENUE, inst_id)

    def snapshot(self, channel: str, inst_id: str, first: bool) -> dict[str, Any]:
        """Real::

        {"type":"snapshot","timestamp":1626993723632,"instrument_name":"ETH-30JUL21-2800-C",
         "change_id":13169025645,"bids":[["new",0.0015,4714.0],...],"asks":[["new",0.0025,873.0],...]}
        """
        book = self._book(inst_id)
        stream = self.streams.get(channel)
        if first or stream is None:
            stream = self.streams[channel] = _Stream(book.seq)
        bids, asks = book.levels_at(stream.last_seq)
        spec = book.spec
        return {
            "type": "snapshot",
            "timestamp": book.ts_ms,
            "instrument_name": inst_id,
            "change_id": stream.last_seq,
            "bids": [["new", px_of(spec, t), amount_of(spec, bids[t])] for t in sorted(bids, reverse=True)],
            "asks": [["new", px_of(spec, t), amount_of(spec, asks[t])] for t in sorted(asks)],
        }

    def changes(self, channel: str, inst_id: str) -> list[dict[str, Any]]:
        """This tick's change messages of one book stream (none, one, or two for a duplicate).

        ``{"type":"change","timestamp":..,"instrument_name":..,"change_id":169600103676,
        "bids":[["delete",62533.0,0.0]],"asks":[["change",63350.5,8250.0]],"prev_change_id":169600103289}``
        """
        stream = self.streams.get(channel)
        if stream is None:
            return []
        book = self._book(inst_id)
        try:
            diff = book.changes_since(stream.last_seq)
        except KeyError:  # fell behind the kept history (cannot happen while the stream publishes each tick)
            stream.last_seq = book.seq
            return [self.snapshot(channel, inst_id, first=False)]
        if not diff[0] and not diff[1]:
            return []
        spec = book.spec
        bids = [_entry(spec, t, *diff[0][t]) for t in sorted(diff[0], reverse=True)]
        asks = [_entry(spec, t, *diff[1][t]) for t in sorted(diff[1])]
        prev, stream.last_seq = stream.last_seq, book.seq
        fault = self.books.draw_fault(VENUE, channel, inst_id, self.faults.settings, checksums=False)
        if fault == "skip":
            return []
        if fault == "cross" and book.asks:  # a bid at (or just above) the best ask: the client's book crosses
            tick = min(book.asks)
            while tick in diff[0]:  # not a price this message also changes on the bid side (it would undo it)
                tick += 1
            bids = [["new", px_of(spec, tick), amount_of(spec, max(1, int(spec.median_lots)))], *bids]
        data = {
            "type": "change",
            "timestamp": book.ts_ms,
            "instrument_name": inst_id,
            "change_id": book.seq,
            "bids": bids,
            "asks": asks,
            "prev_change_id": prev,
        }
        return [data, data] if fault == "duplicate" else [data]

    def quote(self, channel: str, inst_id: str, force: bool = False) -> dict[str, Any] | None:
        """``quote.{inst}`` when the top changed since the last one (``force``: now, for a new subscriber)::

        {"timestamp":1550658624149,"instrument_name":"BTC-PERPETUAL","best_bid_price":3914.97,
         "best_bid_amount":40.0,"best_ask_price":3996.61,"best_ask_amount":50.0}
        """
        book = self._book(inst_id)
        bids, asks = book.top(1)
        top = (bids[0] if bids else (0, 0), asks[0] if asks else (0, 0))
        stream = self.streams.get(channel)
        if stream is None:
            stream = self.streams[channel] = _Stream(book.seq)
        if top == stream.top and not force:
            return None
        stream.top, stream.last_seq = top, book.seq
        spec = book.spec
        return {
            "timestamp": book.ts_ms,
            "instrument_name": inst_id,
            "best_bid_price": px_of(spec, top[0][0]),
            "best_bid_amount": amount_of(spec, top[0][1]),
            "best_ask_price": px_of(spec, top[1][0]),
            "best_ask_amount": amount_of(spec, top[1][1]),
        }

    def order_book(self, inst_id: str, depth: int) -> dict[str, Any]:
        """The book part of ``public/get_order_book``: ``change_id``, ``timestamp``, ``bids``/``asks`` as
        ``[price, amount]`` best first and the ``best_*`` fields, all at the book's current seq."""
        book = self._book(inst_id)
        spec = book.spec
        bids_t, asks_t = book.top(depth)
        bids = [[px_of(spec, t), amount_of(spec, n)] for t, n in bids_t]
        asks = [[px_of(spec, t), amount_of(spec, n)] for t, n in asks_t]
        return {
            "timestamp": book.ts_ms,
            "change_id": book.seq,
            "bids": bids,
            "asks": asks,
            "best_bid_price": bids[0][0] if bids else 0.0,
            "best_bid_amount": bids[0][1] if bids else 0.0,
            "best_ask_price": asks[0][0] if asks else 0.0,
            "best_ask_amount": asks[0][1] if asks else 0.0,
        }


def _entry(spec: BookSpec, tick: int, old: int, new: int) -> list[Any]:
    action = "new" if not old else ("delete" if not new else "change")
    return [action, px_of(spec, tick), amount_of(spec, new)]
