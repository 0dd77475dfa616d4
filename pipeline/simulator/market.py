"""Deterministic market model: instruments, trades, quotes and candles from a seed.

How determinism is kept while live time follows the wall clock: each instrument draws its trades from its
own seeded RNG in fixed-size chunks laid out in *simulated* time (offsets from ``t0``, the start of the
pre-start trade window), and prices them off its base's seeded index path (``history.BasePath``).
``advance(now_ms)`` only decides *when* a pre-drawn trade is released, never *what* it is, so the same seed
and ``start_ms`` give the same trades however the tick loop jitters. Trade ids and sequence numbers are
assigned at release (cumulative counts), which is also deterministic unless the burst fault adds trades.

Candles: minutes before ``t0`` come from the synthetic 1-minute path; minutes from ``t0`` on are the
aggregation of the stored trades, so REST candles and REST trades agree. The synthetic path ends exactly at
the index price at ``t0`` where the trades begin.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pipeline.simulator import instruments as cat
from pipeline.simulator.history import MINUTE_MS, BasePath, stable_id, synthetic_volume_base
from pipeline.simulator.tradestore import TradeStore

if TYPE_CHECKING:  # pragma: no cover
    from pipeline.simulator.config import SimConfig
    from pipeline.simulator.faults import Counters

_YEAR_MS = 365 * 86_400_000
_MEAN_NOTIONAL_USD = 1500.0  # median trade notional; lognormal sigma 1.2 around it


@dataclass(frozen=True, slots=True)
class SimInstrument:
    venue: str  # "okx" | "deribit"
    inst_id: str  # BTC-USDT, BTC-USDT-SWAP, ETH-PERPETUAL, ETH-27DEC26-3000-C
    market: str  # "spot" | "swap" | "option"
    base: str
    quote: str
    settle: str | None
    tick_size: float
    lot_size: float
    min_size: float
    contract_value: float | None  # OKX swap ctVal (in base), Deribit contract_size
    listing_ms: int
    expiry_ms: int | None
    strike: float | None
    option_type: str | None  # "call" | "put"
    underlying: str | None  # OKX uly "BTC-USDT"; Deribit "ETH-27DEC26" / "SYN.ETH-27DEC26" / "eth_usd"
    initial_price: float  # price at t0 (options: in ETH)


@dataclass(frozen=True, slots=True)
class SimTrade:
    venue: str
    inst_id: str
    trade_id: int  # OKX: id of the last fill; id[n] - id[n-1] == count[n]
    seq: int  # OKX seqId (increasing, gaps); Deribit trade_seq (contiguous +1 per instrument)
    price: float
    size: float  # OKX: base (spot) / contracts (swap); Deribit: USD (perp) / contracts (options)
    side: str  # "buy" | "sell" taker side
    ts_ms: int
    count: int
    index_price: float | None  # Deribit extras
    mark_price: float | None
    iv: float | None  # options, in percent like Deribit (62.5)
    tick_direction: int  # Deribit 0 plus, 1 zero-plus, 2 minus, 3 zero-minus


@dataclass(frozen=True, slots=True)
class SimQuote:
    """Top of book + ticker state. ``vol_24h`` is in size units (contracts/base/USD), ``vol_ccy_24h`` in OKX's
    ccy (swap: base, spot: quote; Deribit perp: ETH). IVs in percent."""

    venue: str
    inst_id: str
    ts_ms: int
    seq: int
    bids: tuple[tuple[float, float], ...]  # 5 levels, best first
    asks: tuple[tuple[float, float], ...]
    last: float
    last_size: float
    mark_price: float
    index_price: float
    underlying_price: float | None
    open_interest: float
    mark_iv: float | None
    bid_iv: float | None
    ask_iv: float | None
    greeks: dict | None
    open_24h: float
    high_24h: float
    low_24h: float
    vol_24h: float
    vol_ccy_24h: float


class _Inst:
    """Run-time state of one instrument (private)."""

    def __init__(
        self, inst: SimInstrument, path: BasePath, seed: int, rate: float, t0: int, start: int, history_rate: float
    ) -> None:
        self.inst = inst
        self.path = path
        self.key = f"{inst.venue}:{inst.inst_id}"
        self.rng = np.random.default_rng([seed, stable_id(self.key), 3])
        self.qrng = random.Random(seed * 1_000_003 + stable_id(self.key))
        self.rate = rate
        self.chunk = int(min(8192, max(256, rate * 60)))  # fixed per config: part of determinism
        # trades arrive at ``history_rate`` before ``start`` and at ``rate`` after: unit-rate exponential
        # draws mapped through the cumulative intensity, so the draws do not depend on either rate
        self.t0, self.start, self.hrate = float(t0), float(start), history_rate
        self.lam_start = history_rate * (start - t0) / 1000.0
        self.gen_lam = 0.0
        self.pend: dict[str, np.ndarray] = {}
        self.pos = 0
        self.next_t = math.inf
        self.px_dec = cat.decimals(inst.tick_size)
        self.sz_dec = cat.decimals(inst.lot_size)
        self.basis = cat.SWAP_BASIS if inst.market == "swap" else 0.0
        self.okx = inst.venue == "okx"
        ids = np.random.default_rng([seed, stable_id(self.key), 5])
        self.next_id = int(ids.integers(100_000_000, 3_000_000_000)) if self.okx else int(ids.integers(1, 9) * 10**7)
        self.next_seq = int(ids.integers(10**10, 4 * 10**11)) if self.okx else int(ids.integers(10**5, 10**7))
        self.book_seq = self.next_seq + 7
        self.store = TradeStore(self.next_id, self.next_seq, extras=inst.venue == "deribit")
        self.last_px = inst.initial_price
        self.last_sz = inst.min_size
        self.last_side = 1
        self.last_dir = 0
        self.iv = None
        if inst.market == "option":
            t_years = max(inst.expiry_ms - t0, 3_600_000) / _YEAR_MS
            self.iv = cat.option_iv(inst.strike, path.index_at_one(t0), t_years)
        self.open_interest = 0.0 if inst.market == "spot" else float(ids.integers(1_000, 200_000))
        self.next_quote_ms = 0
        self.stats = [inst.initial_price, inst.initial_price, inst.initial_price, 0.0, 0.0]  # o h l vol volccy
        self.burst_carry = 0.0

    # -- sizes in the instrument's unit -------------------------------------------------------------------
    def sizes(self, rng: np.random.Generator, price: np.ndarray, n: int) -> np.ndarray:
        inst = self.inst
        if inst.market == "option":
            return np.maximum(1.0, np.round(rng.lognormal(1.2, 1.0, n)))
        notional = rng.lognormal(math.log(_MEAN_NOTIONAL_USD), 1.2, n)
        if inst.venue == "deribit":  # perpetual amount in USD, multiples of 10
            return np.maximum(10.0, np.round(notional / 10.0) * 10.0)
        units = notional / price / (inst.contract_value or 1.0)
        lots = np.maximum(1.0, np.round(units / inst.lot_size))
        sz = np.round(lots * inst.lot_size, self.sz_dec)
        return np.maximum(sz, inst.min_size)

    def quote_size(self, r: random.Random) -> float:
        """One resting order size for the book (cheap, pure Python: called ~10x per quote)."""
        inst = self.inst
        if inst.market == "option":
            return float(max(1, round(r.lognormvariate(2.0, 1.0))))
        notional = r.lognormvariate(9.0, 1.3)  # ~8k USD median resting size
        if inst.venue == "deribit":
            return max(10.0, round(notional / 10.0) * 10.0)
        units = notional / self.last_px / (inst.contract_value or 1.0)
        return max(inst.min_size, round(max(1, round(units / inst.lot_size)) * inst.lot_size, self.sz_dec))

    def marks(self, t: np.ndarray, index: np.ndarray, iv: np.ndarray | float | None = None) -> np.ndarray:
        """Fair value at ``t``: index * (1 + basis), or the Black-Scholes option value in ETH."""
        inst = self.inst
        if inst.market != "option":
            return index * (1.0 + self.basis)
        t_years = np.maximum(inst.expiry_ms - t, 60_000) / _YEAR_MS
        vol = self.iv if iv is None else iv
        return _bs_vec(index, inst.strike, t_years, vol, inst.option_type == "call") / index

    def price_ticks(self, mid: np.ndarray, side: np.ndarray) -> np.ndarray:
        """Buys lift the ask (ceil), sells hit the bid (floor): the trade is always at the touch."""
        tick = self.inst.tick_size
        m = mid / tick
        up = np.ceil(m - 1e-9)
        down = np.floor(m + 1e-9)
        down = np.where(down >= up, up - 1, down)
        t = np.where(side == 1, up, down)
        return np.maximum(t, 1.0)

    def gen_chunk(self) -> None:
        """Draw the next ``chunk`` trades of this instrument (deterministic: depends on the RNG only)."""
        rng, n, inst = self.rng, self.chunk, self.inst
        lam = self.gen_lam + np.cumsum(rng.exponential(1.0, n))
        self.gen_lam = float(lam[-1])
        t = np.where(
            lam <= self.lam_start,
            self.t0 + lam * 1000.0 / self.hrate,
            self.start + (lam - self.lam_start) * 1000.0 / self.rate,
        )
        side = (rng.random(n) < 0.5).astype(np.int8)
        index = self.path.index_at(t)
        if inst.market == "option":
            iv = self.iv * (1.0 + rng.normal(0.0, 0.01, n))
            mark = self.marks(t, index, iv)
            mid = mark * (1.0 + rng.normal(0.0, 0.003, n))
        else:
            iv = None
            mark = self.marks(t, index)
            mid = mark + rng.normal(0.0, 0.3, n) * inst.tick_size
        px = np.round(self.price_ticks(mid, side) * inst.tick_size, self.px_dec)
        if self.okx:
            count = rng.geometric(0.6, n).astype(np.int32)
            gap = count.astype(np.int64) + rng.integers(0, 60, n)
        else:
            count = np.ones(n, dtype=np.int32)
            gap = np.ones(n, dtype=np.int64)
        self.pend = {"t": t, "px": px, "sz": self.sizes(rng, px, n), "side": side, "count": count, "gap": gap}
        if not self.okx:
            self.pend |= {"index": index, "mark": mark, "iv": (iv * 100.0) if iv is not None else np.full(n, np.nan)}
        self.pos = 0
        self.next_t = float(t[0])

    def take_until(self, now_ms: int) -> dict[str, np.ndarray] | None:
        """Pre-drawn trades with time <= now, across chunk boundaries."""
        parts: list[dict[str, np.ndarray]] = []
        while True:
            t = self.pend["t"]
            end = int(np.searchsorted(t, now_ms + 1, "left"))  # t < now+1 <=> floor(t) <= now
            if end > self.pos:
                parts.append({k: v[self.pos : end] for k, v in self.pend.items()})
            if end < len(t):
                self.pos = end
                self.next_t = float(t[end])
                break
            self.gen_chunk()
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _bs_vec(spot: np.ndarray, strike: float, t_years: np.ndarray, iv: np.ndarray | float, call: bool) -> np.ndarray:
    sd = np.asarray(iv) * np.sqrt(t_years)
    d1 = (np.log(spot / strike) + 0.5 * sd * sd) / sd
    d2 = d1 - sd
    cdf = _ncdf
    if call:
        return spot * cdf(d1) - strike * cdf(d2)
    return strike * cdf(-d2) - spot * cdf(-d1)


_erf = np.frompyfunc(math.erf, 1, 1)


def _ncdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + _erf(np.asarray(x) / math.sqrt(2.0)).astype(np.float64))


def _tick_directions(px: np.ndarray, prev_px: float, prev_dir: int) -> np.ndarray:
    """Deribit tick_direction per trade: 0 up, 1 same after up, 2 down, 3 same after down."""
    diff = np.sign(np.diff(np.concatenate(([prev_px], px))))
    carry = 1.0 if prev_dir in (0, 1) else -1.0
    ext = np.concatenate(([carry], diff))
    idx = np.where(ext != 0, np.arange(len(ext)), 0)
    last = ext[np.maximum.accumulate(idx)][1:]
    return np.where(diff > 0, 0, np.where(diff < 0, 2, np.where(last > 0, 1, 3))).astype(np.int8)


class Market:
    """The whole simulated market. Not thread-safe: one event loop drives it (the server's)."""

    def __init__(self, config: SimConfig, start_ms: int | None = None, counters: Counters | None = None) -> None:
        self.config = config
        self.counters = counters
        start = start_ms if start_ms is not None else (config.start_ms or int(time.time() * 1000))
        self.start_ms = int(start)
        self.t0_ms = (self.start_ms // MINUTE_MS) * MINUTE_MS - config.trade_history_minutes * MINUTE_MS
        self.history_start_ms = self.t0_ms - config.history_days * 86_400_000
        self.now_ms = self.t0_ms
        self.burst_rate = 0.0  # extra trades/s in total (burst fault), see _burst_plan
        self.crossed_quote_rate = 0.0
        self._burst_rng = np.random.default_rng([config.seed, 99])
        self._burst_carry = 0.0
        self._burst_rr = 0
        self.last_burst_trades = 0
        okx = cat.okx_instruments(config.okx_instruments, self.history_start_ms)
        bases = {i.base for i in okx} | {"ETH"}
        self.paths = {
            b: BasePath(config.seed, b, cat.OKX_BASES[b][0], cat.OKX_BASES[b][5], self.t0_ms, config.history_days)
            for b in sorted(bases)
        }
        deribit = cat.deribit_instruments(
            config.deribit_options, self.start_ms, self.paths["ETH"].index_at_one(self.t0_ms)
        )
        rate = config.trade_rate_per_instrument_per_s
        hist_rate = min(rate, config.history_trade_rate_per_instrument_per_s)
        self._insts: dict[str, dict[str, _Inst]] = {"okx": {}, "deribit": {}}
        for inst in okx + deribit:
            scale = 0.1 if inst.market == "option" else 1.0
            st = _Inst(
                inst, self.paths[inst.base], config.seed, rate * scale, self.t0_ms, self.start_ms, hist_rate * scale
            )
            st.gen_chunk()
            self._insts[inst.venue][inst.inst_id] = st
        self._all = [st for venue in self._insts.values() for st in venue.values()]
        self._burst_targets = [st for st in self._all if st.inst.market != "option"]
        self.advance(self.start_ms, _emit=False)  # the pre-start trade window: history, not published
        for st in self._all:
            self._init_stats(st)

    # -- catalogue ---------------------------------------------------------------------------------------
    def instruments(self, venue: str) -> list[SimInstrument]:
        return [st.inst for st in self._insts.get(venue, {}).values()]

    def instrument(self, venue: str, inst_id: str) -> SimInstrument | None:
        st = self._insts.get(venue, {}).get(inst_id)
        return st.inst if st else None

    def _st(self, venue: str, inst_id: str) -> _Inst:
        try:
            return self._insts[venue][inst_id]
        except KeyError:
            raise KeyError(f"unknown instrument {venue}:{inst_id}") from None

    def index_price(self, base: str, ts_ms: int | None = None) -> float:
        return self.paths[base].index_at_one(self.now_ms if ts_ms is None else ts_ms)

    # -- live -------------------------------------------------------------------------------------------
    def advance(self, now_ms: int, _emit: bool = True) -> list[SimTrade | SimQuote]:
        """Release everything up to ``now_ms``: trades (ground truth is updated) and changed quotes, in
        time order."""
        prev = self.now_ms
        if now_ms <= prev:
            return []
        self.now_ms = now_ms
        burst_targets = self._burst_plan(prev, now_ms) if _emit and self.burst_rate > 0 else {}
        events: list[SimTrade | SimQuote] = []
        quotes: list[SimQuote] = []
        for st in self._all:
            extra = burst_targets.get(st.key, 0)
            traded = False
            if st.next_t <= now_ms or extra:
                block = st.take_until(now_ms)
                if extra:
                    block = self._merge_burst(st, block, extra, prev, now_ms)
                if block is not None and len(block["t"]):
                    traded = self._release(st, block, events if _emit else None)
            if _emit and (traded or now_ms >= st.next_quote_ms):
                quotes.append(self._make_quote(st, now_ms))
        if not _emit:
            return []
        if len(events) > 1:
            events.sort(key=_ts_key)
        events.extend(quotes)
        return events

    def _release(self, st: _Inst, block: dict[str, np.ndarray], out: list | None) -> bool:
        inst = st.inst
        t = block["t"]
        if inst.expiry_ms is not None:  # an expired option stops trading
            keep = t < inst.expiry_ms
            if not keep.all():
                block = {k: v[keep] for k, v in block.items()}
                t = block["t"]
                if not len(t):
                    return False
        ts = t.astype(np.int64)
        count = block["count"]
        tid = st.next_id + np.cumsum(count, dtype=np.int64)
        seq = st.next_seq + np.cumsum(block["gap"])
        px, sz, side = block["px"], block["sz"], block["side"]
        # tick direction is a Deribit field; OKX rows carry 0 (saves the work at high OKX rates)
        tickdir = (
            _ZEROS8[: len(px)] if st.okx and len(px) <= len(_ZEROS8) else _tick_directions(px, st.last_px, st.last_dir)
        )
        row = {"ts": ts, "tid": tid, "seq": seq, "px": px, "sz": sz, "side": side, "count": count, "tickdir": tickdir}
        if not st.okx:
            row |= {"index": block["index"], "mark": block["mark"], "iv": block["iv"]}
        st.store.append(row)
        st.next_id, st.next_seq = int(tid[-1]), int(seq[-1])
        st.last_px, st.last_sz, st.last_side, st.last_dir = (
            float(px[-1]),
            float(sz[-1]),
            int(side[-1]),
            int(tickdir[-1]),
        )
        stats = st.stats
        stats[1] = max(stats[1], float(px.max()))
        stats[2] = min(stats[2], float(px.min()))
        stats[3] += float(sz.sum())
        stats[4] += float(_ccy_volume(inst, px, sz).sum())
        if out is not None:
            venue, iid = inst.venue, inst.inst_id
            sides = np.where(side == 1, "buy", "sell").tolist()
            if st.okx:
                out.extend(
                    SimTrade(venue, iid, a, b, c, d, e, f, g, None, None, None, h)
                    for a, b, c, d, e, f, g, h in zip(
                        tid.tolist(),
                        seq.tolist(),
                        px.tolist(),
                        sz.tolist(),
                        sides,
                        ts.tolist(),
                        count.tolist(),
                        tickdir.tolist(),
                    )
                )
            else:
                ivs = [None if x != x else round(x, 2) for x in block["iv"].tolist()]
                out.extend(
                    SimTrade(venue, iid, a, b, c, d, e, f, 1, round(i, 4), round(m, 6), v, h)
                    for a, b, c, d, e, f, i, m, v, h in zip(
                        tid.tolist(),
                        seq.tolist(),
                        px.tolist(),
                        sz.tolist(),
                        sides,
                        ts.tolist(),
                        block["index"].tolist(),
                        block["mark"].tolist(),
                        ivs,
                        tickdir.tolist(),
                    )
                )
        return True

    # -- burst fault ---------------------------------------------------------------------------------------
    def _burst_plan(self, prev: int, now: int) -> dict[str, int]:
        """How many burst trades each instrument gets in (prev, now]: ``burst_rate`` trades/s in total,
        round robin over every non-option instrument of every venue (OKX gets 50 of 51 shares)."""
        rate = self.burst_rate
        if rate <= 0:
            return {}
        want = rate * (now - prev) / 1000.0 + self._burst_carry
        n = int(want)
        self._burst_carry = want - n
        targets = self._burst_targets
        if n <= 0 or not targets:
            return {}
        per, rest = divmod(n, len(targets))
        rr = self._burst_rr
        plan: dict[str, int] = {}
        by_venue: dict[str, int] = {}
        for k, st in enumerate(targets):
            extra = per + (1 if (k - rr) % len(targets) < rest else 0)
            if extra:
                plan[st.key] = extra
                by_venue[st.inst.venue] = by_venue.get(st.inst.venue, 0) + extra
        self._burst_rr = (rr + rest) % len(targets)
        self.last_burst_trades = n
        if self.counters is not None:
            self.counters.inc("burst_trades", n)
            for venue, count in by_venue.items():
                self.counters.inc(f"burst_trades.{venue}", count)
        return plan

    def _merge_burst(
        self, st: _Inst, block: dict[str, np.ndarray] | None, n: int, prev: int, now: int
    ) -> dict[str, np.ndarray]:
        rng = self._burst_rng
        t = np.sort(rng.uniform(prev + 1e-3, now + 0.999, n))
        side = (rng.random(n) < 0.5).astype(np.int8)
        index = st.path.index_at(t)
        mark = st.marks(t, index)
        px = np.round(st.price_ticks(mark, side) * st.inst.tick_size, st.px_dec)
        extra = {
            "t": t,
            "px": px,
            "sz": st.sizes(rng, px, n),
            "side": side,
            "count": np.ones(n, dtype=np.int32),
            "gap": np.ones(n, dtype=np.int64) if not st.okx else rng.integers(1, 30, n),
        }
        if not st.okx:
            extra |= {"index": index, "mark": mark, "iv": np.full(n, np.nan)}
        if block is None:
            return extra
        merged = {k: np.concatenate([block[k], extra[k]]) for k in block}
        order = np.argsort(merged["t"], kind="stable")
        return {k: v[order] for k, v in merged.items()}

    # -- quotes ----------------------------------------------------------------------------------------------
    def quote(self, venue: str, inst_id: str) -> SimQuote:
        """The current quote (built fresh; does not advance time)."""
        return self._make_quote(self._st(venue, inst_id), self.now_ms, schedule=False)

    def _make_quote(self, st: _Inst, now_ms: int, schedule: bool = True) -> SimQuote:
        inst, r = st.inst, st.qrng
        tick = inst.tick_size
        option = inst.market == "option"
        if schedule:
            st.next_quote_ms = now_ms + (2000 if option else 1000)
            st.book_seq += r.randint(1, 40)
        p_ticks = round(st.last_px / tick)
        spread = max(1, round(st.last_px * 0.01 / tick)) if option else r.choice((1, 1, 1, 2))
        if st.last_side == 1:  # last trade lifted the ask
            ask_t, bid_t = p_ticks, p_ticks - spread
        else:
            bid_t, ask_t = p_ticks, p_ticks + spread
        if bid_t < 1:
            bid_t, ask_t = 1, max(ask_t, 2)
        if self.crossed_quote_rate and r.random() < self.crossed_quote_rate:
            bid_t, ask_t = ask_t + 1, ask_t  # the crossed-quote fault: best bid above best ask
            if self.counters is not None:
                self.counters.inc("crossed_quotes")
        unit = [st.quote_size(r) for _ in range(10)]
        bids = tuple((round((bid_t - k - (k > 2)) * tick, st.px_dec), unit[k]) for k in range(5))
        asks = tuple((round((ask_t + k + (k > 2)) * tick, st.px_dec), unit[5 + k]) for k in range(5))
        index = st.path.index_at_one(now_ms)
        mark_iv = bid_iv = ask_iv = greeks = underlying = None
        if option:
            t_years = max(inst.expiry_ms - now_ms, 60_000) / _YEAR_MS
            call = inst.option_type == "call"
            underlying = index * (1.0 + 0.01 * t_years)
            mark = round(cat.bs_price(index, inst.strike, t_years, st.iv, call) / index, 4)
            mark_iv = round(st.iv * 100.0, 2)
            bid_iv, ask_iv = round(mark_iv - 1.5 - r.random(), 2), round(mark_iv + 1.5 + r.random(), 2)
            greeks = cat.bs_greeks(index, inst.strike, t_years, st.iv, call)
        else:
            mark = round(index * (1.0 + st.basis), st.px_dec)
        o, h, lo, vol, vccy = st.stats
        return SimQuote(
            inst.venue,
            inst.inst_id,
            now_ms,
            st.book_seq,
            bids,
            asks,
            st.last_px,
            st.last_sz,
            mark,
            round(index, 4),
            underlying,
            st.open_interest,
            mark_iv,
            bid_iv,
            ask_iv,
            greeks,
            o,
            max(h, st.last_px),
            min(lo, st.last_px),
            round(vol, st.sz_dec),
            vccy,
        )

    def _init_stats(self, st: _Inst) -> None:
        """24 h open/high/low/volume from the candles before start (options: from their own trades)."""
        if st.inst.market == "option":
            px = st.store.col("px")
            if len(px):
                st.stats = [
                    float(px[0]),
                    float(px.max()),
                    float(px.min()),
                    float(st.store.col("sz").sum()),
                    float(_ccy_volume(st.inst, px, st.store.col("sz")).sum()),
                ]
            return
        rows = self._minutes(st, self.start_ms - 86_400_000, self.now_ms)
        if len(rows["ts"]):
            st.stats = [
                float(rows["o"][0]),
                float(rows["h"].max()),
                float(rows["l"].min()),
                float(rows["vol"].sum()),
                float(rows["vccy"].sum()),
            ]

    # -- ground truth ---------------------------------------------------------------------------------------
    def trades(
        self,
        venue: str,
        inst_id: str,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        after_id: int | None = None,
        before_id: int | None = None,
        limit: int | None = 100,
        newest_first: bool = True,
    ) -> list[SimTrade]:
        """Published trades with ``start_ms <= ts <= end_ms`` and ``after_id < trade_id < before_id``.

        ``newest_first``: the newest ``limit`` of them, newest first; otherwise the oldest ``limit``,
        oldest first. ``limit=None``: all.
        """
        st = self._st(venue, inst_id)
        lo, hi = st.store.select(start_ms=start_ms, end_ms=end_ms, after_id=after_id, before_id=before_id)
        if limit is not None and hi - lo > limit:
            lo, hi = (hi - limit, hi) if newest_first else (lo, lo + limit)
        rows = self._rows(st, lo, hi)
        if newest_first:
            rows.reverse()
        return rows

    def trade_count(self, venue: str, inst_id: str) -> int:
        return self._st(venue, inst_id).store.n

    def memory_bytes(self) -> int:
        """Bytes held by the trade stores (the part that grows with run time)."""
        return sum(st.store.nbytes() for st in self._all)

    def _rows(self, st: _Inst, lo: int, hi: int) -> list[SimTrade]:
        c = st.store.cols
        venue, iid = st.inst.venue, st.inst.inst_id
        sides = ["buy" if s == 1 else "sell" for s in c["side"][lo:hi].tolist()]
        base = zip(
            st.store.ids("tid", lo, hi).tolist(),
            st.store.ids("seq", lo, hi).tolist(),
            c["px"][lo:hi].tolist(),
            c["sz"][lo:hi].tolist(),
            sides,
            c["ts"][lo:hi].tolist(),
            c["count"][lo:hi].tolist(),
            c["tickdir"][lo:hi].tolist(),
        )
        if st.okx:
            return [SimTrade(venue, iid, a, b, p, s, sd, t, n, None, None, None, d) for a, b, p, s, sd, t, n, d in base]
        extras = zip(c["index"][lo:hi].tolist(), c["mark"][lo:hi].tolist(), c["iv"][lo:hi].tolist())
        return [
            SimTrade(venue, iid, a, b, p, s, sd, t, n, round(i, 4), round(m, 6), None if v != v else round(v, 2), d)
            for (a, b, p, s, sd, t, n, d), (i, m, v) in zip(base, extras)
        ]

    # -- candles ----------------------------------------------------------------------------------------------
    def price_at(self, venue: str, inst_id: str, ts_ms: int) -> float:
        """Open of the 1-minute candle containing ``ts_ms`` (OKX ``sodUtc0``/``sodUtc8``)."""
        st = self._st(venue, inst_id)
        m = (ts_ms // MINUTE_MS) * MINUTE_MS
        rows = self._minutes(st, m, m)
        return float(rows["o"][0]) if len(rows["o"]) else st.inst.initial_price

    def candles(
        self, venue: str, inst_id: str, bar_ms: int, start_ms: int, end_ms: int, offset_ms: int = 0
    ) -> list[tuple[int, float, float, float, float, float, float, float, bool]]:
        """Bars whose open time is in [start_ms, end_ms], oldest first:
        ``(open_ts, o, h, l, c, vol, vol_ccy, vol_ccy_quote, confirmed)``. Bars are aligned to
        ``offset_ms`` modulo ``bar_ms`` (OKX 6H..1D bars are UTC+8 aligned: offset -8 h). Options: none."""
        st = self._st(venue, inst_id)
        if st.inst.market == "option" or bar_ms < MINUTE_MS or bar_ms % MINUTE_MS:
            return []
        first_bar = -((offset_ms - start_ms) // bar_ms) * bar_ms + offset_ms  # ceil to the grid
        last_bar = ((end_ms - offset_ms) // bar_ms) * bar_ms + offset_ms
        if last_bar < first_bar:
            return []
        rows = self._minutes(st, first_bar, last_bar + bar_ms - MINUTE_MS)
        if not len(rows["ts"]):
            return []
        bar = (rows["ts"] - offset_ms) // bar_ms * bar_ms + offset_ms
        if bar_ms == MINUTE_MS:
            opens, highs, lows, closes, vol, vccy, vq = (
                rows["o"],
                rows["h"],
                rows["l"],
                rows["c"],
                rows["vol"],
                rows["vccy"],
                rows["vq"],
            )
            starts = bar
        else:
            cut = np.flatnonzero(np.diff(bar)) + 1
            idx = np.concatenate(([0], cut))
            ends = np.concatenate((cut, [len(bar)])) - 1
            starts = bar[idx]
            opens, closes = rows["o"][idx], rows["c"][ends]
            highs, lows = np.maximum.reduceat(rows["h"], idx), np.minimum.reduceat(rows["l"], idx)
            vol, vccy, vq = (np.add.reduceat(rows[k], idx) for k in ("vol", "vccy", "vq"))
        confirmed = (starts + bar_ms) <= self.now_ms
        return list(
            zip(
                starts.tolist(),
                opens.tolist(),
                highs.tolist(),
                lows.tolist(),
                closes.tolist(),
                vol.tolist(),
                vccy.tolist(),
                vq.tolist(),
                confirmed.tolist(),
            )
        )

    def _minutes(self, st: _Inst, first_ms: int, last_ms: int) -> dict[str, np.ndarray]:
        """1-minute rows (ts, o, h, l, c, vol, vccy, vq) for minutes first..last that exist (listing..now)."""
        first = max((first_ms // MINUTE_MS) * MINUTE_MS, self.history_start_ms)
        last = min((last_ms // MINUTE_MS) * MINUTE_MS, (self.now_ms // MINUTE_MS) * MINUTE_MS)
        parts = []
        if first < self.t0_ms and first <= last:
            parts.append(self._synthetic(st, first, min(last, self.t0_ms - MINUTE_MS)))
        if last >= self.t0_ms and first <= last:
            parts.append(self._from_trades(st, max(first, self.t0_ms), last))
        if not parts:
            e = np.empty(0)
            return {"ts": e.astype(np.int64), "o": e, "h": e, "l": e, "c": e, "vol": e, "vccy": e, "vq": e}
        if len(parts) == 1:
            return parts[0]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _synthetic(self, st: _Inst, first: int, last: int) -> dict[str, np.ndarray]:
        inst = st.inst
        a, b = (first - self.t0_ms) // MINUTE_MS, (last - self.t0_ms) // MINUTE_MS
        lo_, lc, lh, ll = st.path.minutes(a, b)
        mult = 1.0 + st.basis
        tick = inst.tick_size

        def rnd(x: np.ndarray) -> np.ndarray:
            return np.round(np.maximum(np.round(np.exp(x) * mult / tick), 1.0) * tick, st.px_dec)

        o, c, h, low = rnd(lo_), rnd(lc), rnd(lh), rnd(ll)
        per_min_base = st.rate * 60.0 * _MEAN_NOTIONAL_USD * 2.05 / inst.initial_price
        base_vol = synthetic_volume_base(self.config.seed, st.key, a, b, per_min_base)
        vol, vccy, vq = _candle_volumes(inst, base_vol, c, st.sz_dec)
        ts = self.t0_ms + np.arange(a, b + 1, dtype=np.int64) * MINUTE_MS
        return {"ts": ts, "o": o, "h": h, "l": low, "c": c, "vol": vol, "vccy": vccy, "vq": vq}

    def _from_trades(self, st: _Inst, first: int, last: int) -> dict[str, np.ndarray]:
        n = (last - first) // MINUTE_MS + 1
        edges = first + np.arange(n + 1, dtype=np.int64) * MINUTE_MS
        ts_col = st.store.col("ts")
        cut = np.searchsorted(ts_col, edges, "left")
        lo, hi = int(cut[0]), int(cut[-1])
        px, sz = st.store.col("px")[lo:hi], st.store.col("sz")[lo:hi]
        seg = cut - lo
        filled = seg[1:] > seg[:-1]
        prev_close = float(st.store.col("px")[lo - 1]) if lo > 0 else st.inst.initial_price
        c = np.empty(n)
        o, h, low = np.empty(n), np.empty(n), np.empty(n)
        vol, notional = np.zeros(n), np.zeros(n)
        if filled.any():
            starts = seg[:-1][filled]
            ends = seg[1:][filled] - 1
            o[filled], c[filled] = px[starts], px[ends]
            h[filled], low[filled] = np.maximum.reduceat(px, starts), np.minimum.reduceat(px, starts)
            vol[filled] = np.add.reduceat(sz, starts)
            notional[filled] = np.add.reduceat(px * sz, starts)
        # empty minutes repeat the previous close with zero volume (as OKX does)
        last_idx = np.where(filled, np.arange(n), -1)
        last_idx = np.maximum.accumulate(last_idx)
        carry = np.where(last_idx >= 0, c[np.maximum(last_idx, 0)], prev_close)
        empty = ~filled
        o[empty] = h[empty] = low[empty] = c[empty] = carry[empty]
        vol, vccy, vq = _trade_volumes(st.inst, vol, notional, st.sz_dec)
        return {"ts": edges[:-1], "o": o, "h": h, "l": low, "c": c, "vol": vol, "vccy": vccy, "vq": vq}


_ZEROS8 = np.zeros(65536, dtype=np.int8)


def _ts_key(e: SimTrade) -> int:
    return e.ts_ms


def _ccy_volume(inst: SimInstrument, px: np.ndarray, sz: np.ndarray) -> np.ndarray:
    """OKX ``volCcy`` units per trade: spot -> quote, swap -> base; Deribit perp -> ETH; options -> ETH."""
    if inst.market == "spot":
        return px * sz
    if inst.venue == "deribit" and inst.market == "swap":
        return sz / px
    return sz * (inst.contract_value or 1.0)


def _candle_volumes(
    inst: SimInstrument, base_vol: np.ndarray, close: np.ndarray, sz_dec: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vol, volCcy, volCcyQuote) of synthetic minutes from a base-currency volume."""
    if inst.market == "spot":
        vol = np.round(base_vol, sz_dec)
        return vol, vol * close, vol * close
    if inst.venue == "deribit":
        usd = np.round(base_vol * close / 10.0) * 10.0
        return usd, usd / close, usd
    contracts = np.round(base_vol / inst.contract_value / inst.lot_size) * inst.lot_size
    contracts = np.round(contracts, sz_dec)
    return contracts, contracts * inst.contract_value, contracts * inst.contract_value * close


def _trade_volumes(
    inst: SimInstrument, vol: np.ndarray, notional: np.ndarray, sz_dec: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vol, volCcy, volCcyQuote) of trade-built minutes from summed size and summed px*size."""
    vol = np.round(vol, sz_dec)
    if inst.market == "spot":
        return vol, notional, notional
    if inst.venue == "deribit":
        return vol, vol * vol / np.maximum(notional, 1e-12), vol  # USD amount -> ETH at the average price
    cv = inst.contract_value or 1.0
    return vol, vol * cv, notional * cv
