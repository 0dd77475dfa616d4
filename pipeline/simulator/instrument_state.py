"""Run-time state of one simulated instrument and how its trades are drawn (see ``market`` on determinism).

Each instrument draws its trades from its own seeded RNG in fixed-size chunks laid out in simulated time and
prices them off its base's index path; the market only decides when a pre-drawn trade is released.
"""

from __future__ import annotations

import math
import random

import numpy as np

from pipeline.simulator.history import BasePath, stable_id
from pipeline.simulator.instruments import SWAP_BASIS, decimals
from pipeline.simulator.pricing import bs_prices, option_iv
from pipeline.simulator.records import SimInstrument
from pipeline.simulator.tradestore import TradeStore

YEAR_MS = 365 * 86_400_000
MEAN_NOTIONAL_USD = 1500.0  # median trade notional; lognormal sigma 1.2 around it


class InstState:
    """Run-time state of one instrument: its RNGs, its pre-drawn trades, its store and its ticker stats."""

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
        self.px_dec = decimals(inst.tick_size)
        self.sz_dec = decimals(inst.lot_size)
        self.basis = SWAP_BASIS if inst.market == "swap" else 0.0
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
        # option terms (zeros for other instruments, which never read them)
        self.strike = float(inst.strike or 0.0)
        self.expiry_ms = int(inst.expiry_ms or 0)
        self.call = inst.option_type == "call"
        self.iv = 0.0  # implied volatility at t0, a fraction; the smile is fixed for the run
        if inst.market == "option":
            t_years = max(self.expiry_ms - t0, 3_600_000) / YEAR_MS
            self.iv = option_iv(self.strike, path.index_at_one(t0), t_years)
        self.open_interest = 0.0 if inst.market == "spot" else float(ids.integers(1_000, 200_000))
        self.next_quote_ms = 0
        self.stats = [inst.initial_price, inst.initial_price, inst.initial_price, 0.0, 0.0]  # o h l vol volccy
        self.burst_carry = 0.0

    # -- sizes in the instrument's unit -------------------------------------------------------------------
    def sizes(self, rng: np.random.Generator, price: np.ndarray, n: int) -> np.ndarray:
        inst = self.inst
        if inst.market == "option":
            return np.maximum(1.0, np.round(rng.lognormal(1.2, 1.0, n)))
        notional = rng.lognormal(math.log(MEAN_NOTIONAL_USD), 1.2, n)
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
        t_years = np.maximum(self.expiry_ms - t, 60_000) / YEAR_MS
        vol = self.iv if iv is None else iv
        return bs_prices(index, self.strike, t_years, vol, self.call) / index

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
