"""The derivatives state of the simulated market: funding, mark and index prices, open interest, liquidations.

``Market`` owns one ``Derivatives`` and feeds it every released trade (``on_events``). What is a pure function
of time is computed on demand, so any past instant can be answered again (the tests' ground truth):

- funding of every perpetual (``funding.FundingBook``), the mark ``index * (1 + premium)``;
- the index at any time, before the live window too (the synthetic minute history);
- liquidations: in each one-second slot where the index moved more than 2.2 sigma over the last 30 s, a
  seeded draw decides whether positions on the losing side were liquidated (longs in a fall: a sell at a
  bankruptcy price below the mark; shorts in a rise: a buy above it).

Open interest is state, because it follows trading: each trade on a contract opens (+size) or closes
(-size) positions, more often opening when open interest is below its starting level, and liquidations close
positions. A bounded log of its values answers "what was it at ts" for recent times; its history on OKX's
period grid (``oi_history``: seeded before the start, snapshots after) answers ``open_interest_history``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pipeline.simulator import oi_history
from pipeline.simulator.funding import FundingBook, FundingNow, Settlement, deribit_spec, okx_spec, uniforms
from pipeline.simulator.history import MINUTE_MS, BasePath, stable_id
from pipeline.simulator.instruments import OKX_BASES, decimals
from pipeline.simulator.records import SimInstrument, SimTrade

if TYPE_CHECKING:  # pragma: no cover
    from pipeline.simulator.config import SimConfig

LIQ_LOOKBACK_S = 30
LIQ_SIGMAS = 2.2
LIQ_PROBABILITY = 0.35
LIQ_MEDIAN_USD = 5000.0
OI_LOG = 4096  # open-interest values kept per instrument
_MASK = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class Liquidation:
    """One liquidation order: ``side`` of the order (sell closes a long), ``pos_side`` of the position."""

    inst_id: str
    ts: int
    side: str
    pos_side: str
    price: float
    size: float  # contracts


@dataclass(frozen=True, slots=True)
class IndexTicker:
    base: str
    ts: int
    price: float
    open_24h: float
    high_24h: float
    low_24h: float
    sod_utc0: float
    sod_utc8: float


class _Oi:
    __slots__ = ("base", "dec", "log", "snaps", "value")

    def __init__(self, value: float, dec: int, ts: int) -> None:
        self.value = self.base = value
        self.dec = dec
        self.log: deque[tuple[int, float]] = deque([(ts, value)], maxlen=OI_LOG)
        self.snaps = oi_history.Snapshots()


class Derivatives:
    """Funding, marks, open interest and liquidations of every contract of the market."""

    def __init__(
        self,
        config: SimConfig,
        paths: dict[str, BasePath],
        instruments: list[SimInstrument],
        open_interest: dict[str, float],
        start_ms: int,
    ) -> None:
        self.seed = config.seed
        self.scale = config.funding_interval_scale
        self.history_ms = round(config.funding_history_days * 86_400_000 * self.scale)
        self.paths = paths
        self.instruments = {(i.venue, i.inst_id): i for i in instruments}
        self.books: dict[tuple[str, str], FundingBook] = {}
        for inst in instruments:
            if inst.market != "swap":
                continue
            spec = (
                okx_spec(inst.inst_id, inst.base, start_ms, self.scale)
                if inst.venue == "okx"
                else deribit_spec(inst.inst_id, self.scale)
            )
            self.books[(inst.venue, inst.inst_id)] = FundingBook(self.seed, spec)
        self.oi = {
            (i.venue, i.inst_id): _Oi(open_interest[f"{i.venue}:{i.inst_id}"], decimals(i.lot_size), start_ms)
            for i in instruments
            if i.market != "spot"
        }
        self.okx_swaps = [i for i in instruments if i.venue == "okx" and i.market == "swap"]
        self.now_ms = self.start_ms = start_ms
        self.recent_liquidations: deque[Liquidation] = deque(maxlen=10_000)  # what the venues publish from
        self._liq_slot = start_ms // 1000 - 1  # last one-second slot drawn
        self._liq_pending: list[Liquidation] = []
        self._index_day: dict[tuple[str, int], tuple[float, float, float]] = {}

    # -- prices -------------------------------------------------------------------------------------------
    def index_at(self, base: str, ts: int) -> float:
        """The index of ``base`` at ``ts``; before the live path, the synthetic minute history."""
        path = self.paths[base]
        if ts >= path.t0_ms:
            return path.index_at_one(ts)
        m = max((ts - path.t0_ms) // MINUTE_MS, -path.history_days * 1440)
        o, c, _, _ = path.minutes(m, m)
        frac = min(1.0, (ts - path.t0_ms - m * MINUTE_MS) / MINUTE_MS)
        return math.exp(float(o[0]) + (float(c[0]) - float(o[0])) * frac)

    def book(self, venue: str, inst_id: str) -> FundingBook:
        try:
            return self.books[(venue, inst_id)]
        except KeyError:
            raise KeyError(f"{venue}:{inst_id} is not a perpetual of this market") from None

    def mark_at(self, venue: str, inst_id: str, ts: int) -> float:
        """Mark price: the index times one plus the funding premium, on the tick grid."""
        inst = self.instruments[(venue, inst_id)]
        raw = self.index_at(inst.base, ts) * (1.0 + self.book(venue, inst_id).premium_at(ts))
        return round(round(raw / inst.tick_size) * inst.tick_size, decimals(inst.tick_size))

    def index_ticker(self, base: str, ts: int) -> IndexTicker:
        """OKX ``index-tickers`` state: price now, 24 h open/high/low (minute samples), start-of-day prices."""
        minute = ts // MINUTE_MS * MINUTE_MS
        key = (base, minute)
        window = self._index_day.get(key)
        if window is None:
            path = self.paths[base]
            t = np.arange(minute - 1440 * MINUTE_MS, minute + 1, MINUTE_MS)
            past = t[t < path.t0_ms]
            parts = [path.index_at(t[t >= path.t0_ms])]
            if len(past):  # minute opens of the synthetic history (t0 is on a minute)
                first = max(int(past[0] - path.t0_ms) // MINUTE_MS, -path.history_days * 1440)
                opens = path.minutes(first, int(past[-1] - path.t0_ms) // MINUTE_MS)[0]
                parts.insert(0, np.exp(opens))
            allpx = np.concatenate(parts)
            window = (float(allpx[0]), float(allpx.max()), float(allpx.min()))
            if len(self._index_day) > 256:
                self._index_day.clear()
            self._index_day[key] = window
        price = self.index_at(base, ts)
        day0 = ts // 86_400_000 * 86_400_000
        day8 = (ts + 8 * 3_600_000) // 86_400_000 * 86_400_000 - 8 * 3_600_000
        return IndexTicker(
            base,
            ts,
            price,
            window[0],
            max(window[1], price),
            min(window[2], price),
            self.index_at(base, day0),
            self.index_at(base, day8),
        )

    def price_decimals(self, base: str) -> int:
        return decimals(OKX_BASES[base][1]) if base in OKX_BASES else 2

    # -- funding (ground truth) ---------------------------------------------------------------------------
    def funding_now(self, venue: str, inst_id: str, ts: int | None = None) -> FundingNow:
        return self.book(venue, inst_id).now(self.now_ms if ts is None else ts)

    def settlements(self, venue: str, inst_id: str, start_ms: int, end_ms: int) -> list[Settlement]:
        """Every settlement the simulator made or will make with ``start_ms <= funding_time <= end_ms``."""
        return self.book(venue, inst_id).settlements(start_ms, end_ms)

    def all_settlements(self, start_ms: int, end_ms: int) -> list[Settlement]:
        return [s for (venue, iid) in self.books for s in self.settlements(venue, iid, start_ms, end_ms)]

    def interest_8h(self, venue: str, inst_id: str, start_ms: int, end_ms: int) -> list[tuple[Settlement, float]]:
        """Hourly settlements with ``start_ms <= funding_time <= end_ms``, each with the sum of the eight hourly
        rates ending at it (Deribit's ``interest_8h``; Deribit's ``interest_1h`` is the settlement's rate)."""
        book = self.book(venue, inst_id)
        hour = book.spec.plan[-1][1]
        rows = book.settlements(start_ms - 7 * hour, end_ms)
        rates = np.concatenate(([0.0], np.cumsum([s.rate for s in rows])))
        return [
            (s, float(round(rates[i + 1] - rates[i - 7], 10)))
            for i, s in enumerate(rows)
            if i >= 7 and s.funding_time >= start_ms
        ]

    def ticker_funding(self, venue: str, inst_id: str, ts: int) -> tuple[float, float]:
        """Deribit's ticker ``current_funding`` (the running hour's predicted rate) and ``funding_8h`` (the
        last eight hourly settlements, summed)."""
        book = self.book(venue, inst_id)
        last, _ = book.last_at_or_before(ts)
        return book.now(ts).rate, self.interest_8h(venue, inst_id, last, last)[0][1]

    def history_start(self, now_ms: int | None = None) -> int:
        """The oldest funding time the venues' history endpoints still serve (OKX: about 3 months)."""
        return (self.now_ms if now_ms is None else now_ms) - self.history_ms

    # -- liquidations (pure in time) ----------------------------------------------------------------------
    def liquidations(self, inst_id: str, start_ms: int, end_ms: int) -> list[Liquidation]:
        """Liquidations of an OKX swap with ``start_ms < ts <= end_ms``, oldest first."""
        inst = self.instruments[("okx", inst_id)]
        path = self.paths[inst.base]
        slots = np.arange(start_ms // 1000, end_ms // 1000 + 1, dtype=np.int64)
        now_px = path.index_at(slots * 1000.0)
        then_px = path.index_at(slots * 1000.0 - LIQ_LOOKBACK_S * 1000.0)
        move = now_px / then_px - 1.0
        threshold = LIQ_SIGMAS * path.sigma_s * math.sqrt(LIQ_LOOKBACK_S)
        sid = stable_id(f"liq:{inst_id}")
        hit = (np.abs(move) > threshold) & (uniforms(self.seed, sid, slots) < LIQ_PROBABILITY)
        if not hit.any():
            return []
        slots, move = slots[hit], move[hit]
        ts = slots * 1000 + (uniforms(self.seed, sid + 1, slots) * 1000).astype(np.int64)
        keep = (ts > start_ms) & (ts <= end_ms)
        out: list[Liquidation] = []
        sz_dec = decimals(inst.lot_size)
        z = np.sqrt(-2 * np.log(uniforms(self.seed, sid + 2, slots))) * np.cos(
            2 * np.pi * uniforms(self.seed, sid + 3, slots)
        )
        for t, mv, zz, ok in zip(ts.tolist(), move.tolist(), z.tolist(), keep.tolist(), strict=True):
            if not ok:
                continue
            long_hit = mv < 0  # a fall liquidates longs
            mark = self.mark_at("okx", inst_id, t)
            px = mark * (0.996 if long_hit else 1.004)
            px = round(round(px / inst.tick_size) * inst.tick_size, decimals(inst.tick_size))
            notional = LIQ_MEDIAN_USD * math.exp(1.2 * zz)
            lots = max(1, round(notional / mark / (inst.contract_value or 1.0) / inst.lot_size))
            size = round(lots * inst.lot_size, sz_dec)
            out.append(
                Liquidation(inst_id, t, "sell" if long_hit else "buy", "long" if long_hit else "short", px, size)
            )
        return out

    # -- open interest (follows trading) ------------------------------------------------------------------
    def on_events(self, prev_ms: int, now_ms: int, events: Sequence[object]) -> None:
        """Apply the trades of one market step to open interest, then the liquidations of (prev, now]."""
        oi = self.oi
        live_from = max(prev_ms, self.start_ms)  # grid times up to the start are the seeded history
        if now_ms // oi_history.GRID_MS > live_from // oi_history.GRID_MS:
            for contract in oi.values():
                contract.snaps.cross(live_from, now_ms, contract.value)
        for e in events:
            if not isinstance(e, SimTrade):
                continue
            st = oi.get((e.venue, e.inst_id))
            if st is None:
                continue
            # seeded by the trade id: the same trades move open interest the same way
            u = (((e.trade_id * 0x9E3779B97F4A7C15) & _MASK) >> 11) / 2.0**53
            p_open = min(0.9, max(0.1, 0.5 + 0.5 * (1.0 - st.value / st.base)))
            st.value = round(max(st.value + (e.size if u < p_open else -e.size), 0.0), st.dec)
        # whole one-second slots are drawn once (cheaper than per tick), then released as time reaches them
        while self._liq_slot < now_ms // 1000:
            self._liq_slot += 1
            lo = self._liq_slot * 1000 - 1
            for inst in self.okx_swaps:
                self._liq_pending.extend(self.liquidations(inst.inst_id, lo, lo + 1000))
            self._liq_pending.sort(key=lambda x: x.ts)
        while self._liq_pending and self._liq_pending[0].ts <= now_ms:
            liq = self._liq_pending.pop(0)
            if liq.ts > prev_ms:
                st = oi[("okx", liq.inst_id)]
                st.value = round(max(st.value - liq.size, 0.0), st.dec)
                self.recent_liquidations.append(liq)
        for st in oi.values():
            if st.log[-1][1] != st.value:
                st.log.append((now_ms, st.value))
        self.now_ms = now_ms

    def open_interest(self, venue: str, inst_id: str, ts: int | None = None) -> float:
        """Open interest now, or the value in force at ``ts`` (within the kept log)."""
        st = self.oi[(venue, inst_id)]
        if ts is None:
            return st.value
        value = st.log[0][1]
        for t, v in st.log:
            if t > ts:
                break
            value = v
        return value

    def open_interest_log(self, venue: str, inst_id: str) -> list[tuple[int, float]]:
        return list(self.oi[(venue, inst_id)].log)

    def open_interest_history(
        self, venue: str, inst_id: str, period: str, start_ms: int, end_ms: int
    ) -> list[tuple[int, float]]:
        """Ground truth of the open-interest history: ``(ts, contracts)`` of every ``period`` point with
        ``start_ms <= ts < end_ms`` that has happened (ts <= now), oldest first."""
        ts = oi_history.points(period, start_ms, min(end_ms, self.now_ms + 1))
        return list(zip(ts, self.open_interest_points(venue, inst_id, ts), strict=True))

    def open_interest_points(self, venue: str, inst_id: str, ts: list[int]) -> list[float]:
        """Open interest at grid times ``ts`` (ascending, none after now): seeded up to the start, then the
        snapshots the clock took."""
        st = self.oi[(venue, inst_id)]
        past = [t for t in ts if t <= self.start_ms]
        live = [st.snaps.values.get(t, st.value) for t in ts[len(past) :]]
        return oi_history.synthetic(self.seed, inst_id, st.base, st.dec, self.start_ms, past) + live
