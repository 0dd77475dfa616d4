"""One instrument's limit-order book: L2 levels on the tick grid, a seeded order flow, trades that take
liquidity, a sequence number per level update and a bounded history to answer "the book at seq S".

Prices are integer ticks and sizes integer lots (``lots * unit`` is the venue size), so the book is exact and
its strings never drift. The book lives in a *band*: bids at or below ``bmax``, asks at or above
``amin > bmax``, each side within ``span`` ticks of its edge -- so it never crosses and never holds more than
``span`` (<= 400) levels a side. Every step (one ``BOOK_SLOT_MS`` slot of simulated time):

1. order flow: ``Poisson(rate * slot)`` events, each on one level near the band edge (geometric distance):
   add to a level, cancel part of it, or cancel it whole (a cancel where no level rests becomes an add);
2. the slot's trades, in time order: the resting side is made to sit at the trade price (levels it would have
   hit first are pulled, an order arrives if the level is too small), then the trade takes its size there, so
   every trade prints at the touch and moves the book when it empties the level;
3. re-centring on the fair price at the slot's end (quotes the price moved through are pulled), and an
   order joining an empty band edge (most of the time), so the spread stays near its floor.

Each level change is one sequence number. The change log is kept in chunks of ``CHUNK`` updates, each with a
snapshot of the book at its start; ``at(seq)`` copies the nearest snapshot and replays, and only the last
``KEEP_CHUNKS`` chunks are kept (bounded memory; older seqs raise ``KeyError``).
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from dataclasses import dataclass

import numpy as np

BOOK_SLOT_MS = 100
MAX_LEVELS = 400  # OKX ``books`` depth
CHUNK = 2048
KEEP_CHUNKS = 4
BID, ASK = 0, 1


@dataclass(frozen=True, slots=True)
class BookSpec:
    """Constants of one instrument's book."""

    tick_size: float
    unit: float  # venue size of one lot
    px_dec: int
    sz_dec: int
    span: int  # ticks a side may reach from its edge (= maximum levels a side)
    fill: float  # share of the span holding a level at start
    half_spread: int  # ticks between the fair price and each edge of the band
    rate: float  # order-flow events per second
    median_lots: float  # typical resting order


@dataclass(slots=True)
class BookView:
    """The top of a book at one sequence number: levels best first as ``(price, size)`` floats."""

    seq: int
    ts_ms: int
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]


class _Chunk:
    """The book at ``start_seq`` (sorted ticks and lots) plus the level updates after it, in order."""

    __slots__ = ("ask_lots", "ask_ticks", "bid_lots", "bid_ticks", "new", "old", "side", "start_seq", "tick")

    def __init__(self, start_seq: int, bids: dict[int, int], asks: dict[int, int]) -> None:
        self.start_seq = start_seq
        self.bid_ticks, self.bid_lots = array("q", bids.keys()), array("q", bids.values())
        self.ask_ticks, self.ask_lots = array("q", asks.keys()), array("q", asks.values())
        self.side = array("b")
        self.tick = array("q")
        self.old = array("q")
        self.new = array("q")


class LimitOrderBook:
    """The book of one instrument (not thread-safe: the simulator's loop drives it)."""

    __slots__ = ("amin", "asks", "bids", "bmax", "chunks", "rng", "seq", "spec", "ts_ms")

    def __init__(self, spec: BookSpec, rng: np.random.Generator, first_seq: int, fair_ticks: float, ts_ms: int) -> None:
        self.spec = spec
        self.rng = rng
        self.seq = first_seq
        self.ts_ms = ts_ms
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.amin, self.bmax = self._band(fair_ticks)
        span = spec.span
        lots = self._lots(2 * span)
        keep = rng.random(2 * span) < spec.fill
        for d in range(span):  # best first, so dict order is price order at start
            if keep[d] and self.bmax - d >= 1:
                self.bids[self.bmax - d] = int(lots[d])
            if keep[span + d]:
                self.asks[self.amin + d] = int(lots[span + d])
        self.chunks: deque[_Chunk] = deque([_Chunk(self.seq, self.bids, self.asks)], maxlen=KEEP_CHUNKS)

    # -- the one way a level changes -------------------------------------------------------------------------
    def _set(self, side: int, tick: int, lots: int) -> None:
        book = self.bids if side == BID else self.asks
        old = book.get(tick, 0)
        if old == lots:
            return
        if lots:
            book[tick] = lots
        else:
            del book[tick]
        self.seq += 1
        c = self.chunks[-1]
        c.side.append(side)
        c.tick.append(tick)
        c.old.append(old)
        c.new.append(lots)
        if len(c.tick) >= CHUNK:
            self.chunks.append(_Chunk(self.seq, self.bids, self.asks))

    # -- generation --------------------------------------------------------------------------------------------
    def _band(self, fair_ticks: float) -> tuple[int, int]:
        amin = max(2, math.ceil(fair_ticks - 1e-9)) + self.spec.half_spread
        return amin, amin - 1 - 2 * self.spec.half_spread

    def _lots(self, n: int) -> np.ndarray:
        return np.maximum(1, np.rint(self.rng.lognormal(math.log(self.spec.median_lots), 1.0, n))).astype(np.int64)

    def step(self, ts_ms: int, fair_ticks: float, trades: list[tuple[int, int, int]]) -> None:
        """One slot ending at ``ts_ms``: order flow, then ``trades`` as ``(tick, lots, side 1=buy)``, then the
        band re-centred on ``fair_ticks``."""
        spec, rng = self.spec, self.rng
        n = int(rng.poisson(spec.rate * BOOK_SLOT_MS / 1000.0))
        if n:
            u = rng.random(n).tolist()
            # most events near the touch, some deep in the book
            scale = np.where(rng.random(n) < 0.6, 3.0, spec.span / 6.0)
            far = np.minimum(rng.exponential(scale), spec.span - 1).astype(np.int64).tolist()
            sizes = self._lots(n).tolist()
            bids, asks, put = self.bids, self.asks, self._set
            for k in range(n):
                x = u[k]
                if x < 0.5:
                    side, tick, book = BID, self.bmax - far[k], bids
                    if tick < 1:
                        continue
                else:
                    side, tick, book = ASK, self.amin + far[k], asks
                    x -= 0.5
                old = book.get(tick, 0)
                size = sizes[k]
                if x < 0.25 or not old:  # add (a cancel where nothing rests is an add too)
                    put(side, tick, old + size)
                elif x < 0.4:  # partial cancel
                    put(side, tick, old - size if old > size else 0)
                else:
                    put(side, tick, 0)
        for tick, lots, buy in trades:
            self._trade(tick, lots, buy)
        amin, bmax = self._band(fair_ticks)
        self._move_band(bmax, amin)
        # market makers join an empty edge of the band, which keeps the spread near its floor
        refill = rng.random(2)
        if refill[0] < 0.8 and self.bmax >= 1 and self.bmax not in self.bids:
            self._set(BID, self.bmax, int(self._lots(1)[0]))
        if refill[1] < 0.8 and self.amin not in self.asks:
            self._set(ASK, self.amin, int(self._lots(1)[0]))
        self.ts_ms = ts_ms

    def _trade(self, tick: int, lots: int, buy: int) -> None:
        if buy:  # lifts the ask at ``tick``: nothing may rest below it on the ask side or at/above it as a bid
            self._move_band(min(self.bmax, tick - 1), tick)
            side, book = ASK, self.asks
        else:
            self._move_band(tick, max(self.amin, tick + 1))
            side, book = BID, self.bids
        old = book.get(tick, 0)
        if old < lots:  # the order that was hit arrives first (with some size left over, or none)
            old = lots + int(self._lots(1)[0]) * int(self.rng.random() < 0.7)
            self._set(side, tick, old)
        self._set(side, tick, old - lots)

    def _move_band(self, bmax: int, amin: int) -> None:
        """Set the band edges, pulling bids above ``bmax``, asks below ``amin`` and levels beyond the span."""
        span = self.spec.span
        if bmax < self.bmax:
            self._clear(BID, bmax + 1, self.bmax)
        elif bmax > self.bmax:
            self._clear(BID, self.bmax - span + 1, bmax - span)
        if amin > self.amin:
            self._clear(ASK, self.amin, amin - 1)
        elif amin < self.amin:
            self._clear(ASK, amin + span, self.amin + span - 1)
        self.bmax, self.amin = bmax, amin

    def _clear(self, side: int, lo: int, hi: int) -> None:
        """Delete the levels of ``side`` with ``lo <= tick <= hi`` (walks the range or the side, whichever is
        shorter; both in a fixed order, so the log stays deterministic)."""
        book = self.bids if side == BID else self.asks
        if hi - lo + 1 <= len(book):
            ticks = [t for t in range(lo, hi + 1) if t in book]
        else:
            ticks = sorted(t for t in book if lo <= t <= hi)
        for t in ticks:
            self._set(side, t, 0)

    # -- reading -------------------------------------------------------------------------------------------------
    def top(self, n: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The best ``n`` levels a side now, as ``(tick, lots)``, best first."""
        bids, asks = self.bids, self.asks
        bt = sorted(bids, reverse=True)[:n]
        at = sorted(asks)[:n]
        return [(t, bids[t]) for t in bt], [(t, asks[t]) for t in at]

    def levels_at(self, seq: int) -> tuple[dict[int, int], dict[int, int]]:
        """The whole book (tick -> lots per side) right after update ``seq``; ``KeyError`` when ``seq`` is older
        than the kept history or not reached yet."""
        if seq > self.seq:
            raise KeyError(f"seq {seq} is not reached yet (the book is at {self.seq})")
        if seq == self.seq:
            return dict(self.bids), dict(self.asks)
        for c in reversed(self.chunks):
            if c.start_seq <= seq:
                break
        else:
            raise KeyError(f"seq {seq} is older than the kept history (from {self.chunks[0].start_seq})")
        bids = dict(zip(c.bid_ticks, c.bid_lots, strict=True))
        asks = dict(zip(c.ask_ticks, c.ask_lots, strict=True))
        sides = (bids, asks)
        for i in range(seq - c.start_seq):
            book, tick, lots = sides[c.side[i]], c.tick[i], c.new[i]
            if lots:
                book[tick] = lots
            else:
                del book[tick]
        return bids, asks

    def changes_since(self, seq: int) -> tuple[dict[int, tuple[int, int]], dict[int, tuple[int, int]]]:
        """Levels whose size differs between ``seq`` and now: tick -> (lots then, lots now) per side.
        ``KeyError`` when ``seq`` is older than the kept history."""
        out: tuple[dict[int, tuple[int, int]], dict[int, tuple[int, int]]] = ({}, {})
        if seq >= self.seq:
            return out
        if seq < self.chunks[0].start_seq:
            raise KeyError(f"seq {seq} is older than the kept history (from {self.chunks[0].start_seq})")
        now = (self.bids, self.asks)
        for c in self.chunks:
            end = c.start_seq + len(c.tick)
            if end <= seq:
                continue
            first = max(0, seq - c.start_seq)
            for side, tick, old in zip(c.side[first:], c.tick[first:], c.old[first:], strict=True):
                seen = out[side]
                if tick not in seen:
                    seen[tick] = (old, 0)
        for side in (BID, ASK):
            seen, book = out[side], now[side]
            for tick, (old, _) in list(seen.items()):
                lots = book.get(tick, 0)
                if lots == old:
                    del seen[tick]
                else:
                    seen[tick] = (old, lots)
        return out

    def updates_since(self, seq: int) -> list[tuple[int, int, int, int]]:
        """The level updates after ``seq``, in order, as ``(seq, side, tick, lots now)``; ``KeyError`` when
        ``seq`` is older than the kept history."""
        if seq >= self.seq:
            return []
        if seq < self.chunks[0].start_seq:
            raise KeyError(f"seq {seq} is older than the kept history (from {self.chunks[0].start_seq})")
        out: list[tuple[int, int, int, int]] = []
        for c in self.chunks:
            first = max(0, seq - c.start_seq)
            if first >= len(c.tick):
                continue
            base = c.start_seq + 1
            for i in range(first, len(c.tick)):
                out.append((base + i, c.side[i], c.tick[i], c.new[i]))
        return out

    def first_seq(self) -> int:
        """The oldest seq ``levels_at`` can still answer."""
        return self.chunks[0].start_seq
