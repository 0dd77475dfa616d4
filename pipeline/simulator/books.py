"""Every instrument's order book (``orderbook.LimitOrderBook``), driven in fixed slots of simulated time, plus
the ground truth tests ask for: the true top-N at a sequence number and the book faults injected per kind.

Determinism: a book steps once per ``BOOK_SLOT_MS`` slot of simulated time from the market's start, with its
own seeded RNG, the trades the market released in that slot (those at one price and side taken as one fill
of their total size, so a burst of trades costs the book a few updates, not thousands) and the market's fair
price at the slot's end;
when the server's tick loop runs (wall clock, jitter) only decides when a slot is computed, never what it
holds. So the same seed and ``start_ms`` give the same books, seqs and change logs.

Books are stepped lazily: only a book something has looked at (``book``/``view``: a WebSocket stream, REST, the
ground truth) follows the clock; the others keep their slots' trades and catch up through every missed slot, in
order, when first looked at (or when ``CATCH_UP_AFTER_SLOTS`` slots of trades wait). A book's evolution depends
only on its own RNG, its trades and the fair price at each slot's end, so the result is the same book as if it
had been stepped all along; the saving is the option universe nobody subscribes to (830 books of ~0.25 ms a
simulated second each).

Book faults (``FaultSettings.book_*_rate``) are decided per published update of one stream (venue, channel,
instrument) with that stream's own seeded RNG: one draw per update, so the same traffic gets the same faults.
The ``CLEAN_AFTER_FAULT`` updates after a fault are never faulted, so every break shows on its own (two
skips in a row would be one gap on the client) and a client has time to resynchronise before the next.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.simulator.history import stable_id
from pipeline.simulator.instruments import SWAP_BASIS, decimals
from pipeline.simulator.orderbook import BOOK_SLOT_MS, MAX_LEVELS, BookSpec, BookView, LimitOrderBook
from pipeline.simulator.records import SimInstrument, SimTrade

if TYPE_CHECKING:  # pragma: no cover
    from pipeline.simulator.faults import Counters, FaultSettings
    from pipeline.simulator.market import Market

FAULT_KINDS = ("skip", "duplicate", "cross", "checksum")  # the order a single draw is split in
RESTING_NOTIONAL_USD = 8000.0  # typical resting order
CLEAN_AFTER_FAULT = 3
CATCH_UP_AFTER_SLOTS = 3000  # 5 minutes of trades waiting for an unwatched book: step it (bounds the memory)


def book_spec(inst: SimInstrument, fair: float, updates_per_s: float) -> BookSpec:
    """Book constants of one instrument: OKX books reach 400 levels, the Deribit perpetual 200, an option 40
    with a spread of ~1 % and a tenth of the order flow (options trade at a tenth of the rate too)."""
    tick = inst.tick_size
    if inst.market == "option":
        unit = inst.lot_size
        return BookSpec(
            tick, unit, decimals(tick), decimals(unit), 40, 0.35, round(fair / tick * 0.004), updates_per_s / 10, 8.0
        )
    if inst.venue == "deribit":  # perpetual amounts are USD in multiples of 10
        return BookSpec(tick, 10.0, decimals(tick), 0, 200, 0.6, 0, updates_per_s, RESTING_NOTIONAL_USD / 10.0)
    unit = inst.lot_size
    median = RESTING_NOTIONAL_USD / (fair * (inst.contract_value or 1.0)) / unit
    return BookSpec(tick, unit, decimals(tick), decimals(unit), MAX_LEVELS, 0.6, 0, updates_per_s, max(1.0, median))


class BookSet:
    """The books of every instrument of both venues, stepped slot by slot behind the market's clock."""

    def __init__(self, market: Market, updates_per_s: float, seed: int, counters: Counters | None = None) -> None:
        self.market = market
        self.counters = counters
        self.seed = seed
        self.books: dict[tuple[str, str], LimitOrderBook] = {}
        self.insts: dict[tuple[str, str], SimInstrument] = {}
        self.slot_end = market.start_ms + BOOK_SLOT_MS  # the first slot end not reached by the clock yet
        self.next_end: dict[tuple[str, str], int] = {}  # per book: the first slot end it has not stepped yet
        self.watched: set[tuple[str, str]] = set()  # books stepped with the clock
        # (venue, inst) -> slot end -> (tick, buy) -> lots: trades already summed per price and side of a slot
        self.pending: dict[tuple[str, str], dict[int, dict[tuple[int, int], int]]] = {}
        self.faults_injected: Counter[tuple[str, str, str, str]] = Counter()  # (venue, channel, inst, kind)
        self._fault_rngs: dict[tuple[str, str, str], random.Random] = {}
        self._clean: dict[tuple[str, str, str], int] = {}  # updates left that must not be faulted
        self._option_fair: dict[tuple[str, str], tuple[int, float]] = {}
        self._index: dict[int, dict[str, float]] = {}  # slot end -> base -> index price
        for venue in ("okx", "deribit"):
            for inst in market.instruments(venue):
                key = (venue, inst.inst_id)
                fair = market.fair_price(venue, inst.inst_id, market.start_ms)
                spec = book_spec(inst, fair, updates_per_s)
                sid = stable_id(f"{venue}:{inst.inst_id}")
                rng = np.random.default_rng([seed, sid, 23])
                first_seq = int(rng.integers(10**9, 10**10)) if venue == "okx" else int(rng.integers(10**10, 10**11))
                self.books[key] = LimitOrderBook(spec, rng, first_seq, fair / spec.tick_size, market.start_ms)
                self.insts[key] = inst
                self.next_end[key] = self.slot_end

    # -- driving -----------------------------------------------------------------------------------------------
    def advance(self, now_ms: int, events: list[Any]) -> int:
        """Take the trades of ``events`` (the market's release up to ``now_ms``) and step every watched book through
        the slots that ended by ``now_ms``; returns the number of slots the clock passed."""
        pending, books, first = self.pending, self.books, self.market.start_ms + BOOK_SLOT_MS
        for e in events:
            if e.__class__ is SimTrade:
                key = (e.venue, e.inst_id)
                spec = books[key].spec
                end = first + max(0, -((first - e.ts_ms) // BOOK_SLOT_MS)) * BOOK_SLOT_MS  # its slot's end
                end = max(end, self.slot_end)  # a late trade (a burst's, at the last tick's ms) joins the next slot
                fills = pending.setdefault(key, {}).setdefault(end, {})
                at = (round(e.price / spec.tick_size), 1 if e.side == "buy" else 0)
                fills[at] = fills.get(at, 0) + max(1, round(e.size / spec.unit))
        slots = 0
        while self.slot_end <= now_ms:
            self.slot_end += BOOK_SLOT_MS
            slots += 1
        if slots:
            for key in self.watched:
                self._catch_up(key)
            for key, waiting in pending.items():
                if len(waiting) > CATCH_UP_AFTER_SLOTS and key not in self.watched:
                    self._catch_up(key)
        return slots

    def _fair(self, key: tuple[str, str], inst: SimInstrument, end: int, index: dict[str, float]) -> float:
        """The market's fair price at ``end``; an option's (Black-Scholes, slow to move) once a second."""
        if inst.market != "option":
            base = index.get(inst.base)
            if base is None:
                base = index[inst.base] = self.market.index_price(inst.base, end)
            return base * (1.0 + SWAP_BASIS) if inst.market == "swap" else base
        cached = self._option_fair.get(key)
        if cached is None or end - cached[0] >= 1000:
            cached = self._option_fair[key] = (end, self.market.fair_price(key[0], key[1], end))
        return cached[1]

    def _catch_up(self, key: tuple[str, str]) -> None:
        """Step one book through every slot the clock has passed since it was last stepped, in order."""
        end, last = self.next_end[key], self.slot_end
        if end >= last:
            return
        book, inst = self.books[key], self.insts[key]
        tick = book.spec.tick_size
        slots = self.pending.get(key)
        while end < last:
            fills = slots.pop(end, None) if slots else None  # in the order first traded
            trades = [(t, lots, buy) for (t, buy), lots in fills.items()] if fills else []
            index = self._index.get(end)
            if index is None:  # one index price per base and slot, shared by the books stepped through it
                if len(self._index) > 64:
                    self._index.clear()
                index = self._index[end] = {}
            book.step(end, self._fair(key, inst, end, index) / tick, trades)
            end += BOOK_SLOT_MS
        self.next_end[key] = end

    # -- ground truth ------------------------------------------------------------------------------------------
    def book(self, venue: str, inst_id: str) -> LimitOrderBook:
        """The book as of the clock; looking at it makes it a watched book from now on."""
        key = (venue, inst_id)
        try:
            book = self.books[key]
        except KeyError:
            raise KeyError(f"unknown instrument {venue}:{inst_id}") from None
        if key not in self.watched:
            self.watched.add(key)
            self._catch_up(key)
        return book

    def view(self, venue: str, inst_id: str, depth: int, seq: int | None = None) -> BookView:
        """The true top ``depth`` levels a side at ``seq`` (default: now), prices and sizes as floats rounded
        to the grid. ``KeyError`` for an unknown instrument or a seq outside the kept history."""
        book = self.book(venue, inst_id)
        spec = book.spec
        if seq is None or seq == book.seq:
            bids_t, asks_t = book.top(depth)
            seq = book.seq
        else:
            b, a = book.levels_at(seq)
            bids_t = [(t, b[t]) for t in sorted(b, reverse=True)[:depth]]
            asks_t = [(t, a[t]) for t in sorted(a)[:depth]]
        px, sz = spec.px_dec, spec.sz_dec
        return BookView(
            seq,
            book.ts_ms,
            [(round(t * spec.tick_size, px), round(n * spec.unit, sz)) for t, n in bids_t],
            [(round(t * spec.tick_size, px), round(n * spec.unit, sz)) for t, n in asks_t],
        )

    # -- faults --------------------------------------------------------------------------------------------------
    def draw_fault(
        self, venue: str, channel: str, inst_id: str, settings: FaultSettings, checksums: bool
    ) -> str | None:
        """The fault of one update of a stream, or ``None``; counted when not ``None``. One draw per update
        whatever the rates (``checksums``: the stream carries a checksum that can be corrupted)."""
        key = (venue, channel, inst_id)
        rng = self._fault_rngs.get(key)
        if rng is None:
            rng = self._fault_rngs[key] = random.Random(self.seed * 7_919 + stable_id("/".join(key)))
        x = rng.random()
        if self._clean.get(key):
            self._clean[key] -= 1
            return None
        rates = (
            settings.book_skip_rate,
            settings.book_duplicate_rate,
            settings.book_cross_rate,
            settings.book_checksum_rate if checksums else 0.0,
        )
        for kind, rate in zip(FAULT_KINDS, rates, strict=True):
            if x < rate:
                self._clean[key] = CLEAN_AFTER_FAULT
                self.faults_injected[(venue, channel, inst_id, kind)] += 1
                if self.counters is not None:
                    self.counters.inc(f"book_faults.{kind}")
                return kind
            x -= rate
        return None

    def fault_counts(self, venue: str | None = None, inst_id: str | None = None) -> dict[str, int]:
        """Faults injected per kind (all kinds listed), optionally for one venue and/or instrument."""
        out = dict.fromkeys(FAULT_KINDS, 0)
        for (v, _channel, i, kind), n in self.faults_injected.items():
            if (venue is None or v == venue) and (inst_id is None or i == inst_id):
                out[kind] += n
        return out

    def fault_table(self) -> list[dict[str, Any]]:
        """Every stream with a fault: ``{"venue", "channel", "instId", "kind", "count"}`` rows."""
        return [
            {"venue": v, "channel": c, "instId": i, "kind": k, "count": n}
            for (v, c, i, k), n in sorted(self.faults_injected.items())
        ]
