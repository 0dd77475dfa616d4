"""Price paths: one per base currency (BTC, ETH, ...), shared by every instrument on that base.

Two pieces, both deterministic from (seed, base):

- **Live index** from ``t0`` (start of the pre-start trade window) onwards, one log-price per second, built
  in 1-hour blocks on demand. Trades of all instruments on the base price off it, so spot, swap and the
  Deribit perpetual stay coherent.
- **Synthetic 1-minute history** before ``t0``: daily anchors (a random walk backwards from the price at
  ``t0``) and, inside each day, a Brownian bridge between two anchors. A day block depends only on its two
  anchors and its own seed, so a request for 100 candles one year back computes one or two days, never the
  whole two years, and the last synthetic close equals the live index at ``t0`` (no jump at the join).
"""

from __future__ import annotations

import math
import zlib
from collections import OrderedDict

import numpy as np

MINUTE_MS = 60_000
DAY_MS = 86_400_000
MINUTES_PER_DAY = 1440
_YEAR_S = 365 * 86_400
_LIVE_BLOCK_S = 3600


def stable_id(text: str) -> int:
    """A process-independent 32-bit id for seeding (``hash()`` is salted per process)."""
    return zlib.crc32(text.encode())


class BasePath:
    """The price of one base currency over time (in USDT)."""

    def __init__(self, seed: int, base: str, price0: float, annual_vol: float, t0_ms: int, history_days: int) -> None:
        self.seed, self.base, self.t0_ms = seed, base, t0_ms
        self.history_days = history_days
        self._bid = stable_id(base)
        self.log_p0 = float(np.log(price0))
        self.sigma_s = annual_vol / np.sqrt(_YEAR_S)
        self.sigma_min = annual_vol / np.sqrt(_YEAR_S / 60)
        rng = np.random.default_rng([seed, self._bid, 7])
        steps = rng.normal(0.0, annual_vol / np.sqrt(365), history_days)
        # anchors[k] = log price at t0 - (history_days - k) days; anchors[-1] = log price at t0
        self.anchors = np.empty(history_days + 1)
        self.anchors[-1] = self.log_p0
        self.anchors[:-1] = self.log_p0 - np.cumsum(steps)[::-1]
        self._live = np.array([self.log_p0])  # log price at t0 + k seconds
        self._blocks: OrderedDict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = OrderedDict()

    # -- live ------------------------------------------------------------------------------------------------
    def _extend_live(self, until_ms: float) -> None:
        need = int((until_ms - self.t0_ms) // 1000) + 2
        while len(self._live) < need:
            block_no = (len(self._live) - 1) // _LIVE_BLOCK_S
            rng = np.random.default_rng([self.seed, self._bid, 11, block_no])
            steps = rng.normal(0.0, self.sigma_s, _LIVE_BLOCK_S)
            self._live = np.concatenate([self._live, self._live[-1] + np.cumsum(steps)])

    def index_at(self, t_ms: np.ndarray) -> np.ndarray:
        """Index price at each time (ms, >= t0), linear between the 1-second points."""
        t = np.asarray(t_ms, dtype=np.float64)
        if t.size == 0:
            return t
        self._extend_live(float(t.max()))
        sec = np.maximum((t - self.t0_ms) / 1000.0, 0.0)
        i = sec.astype(np.int64)
        f = sec - i
        live = self._live
        return np.exp(live[i] * (1.0 - f) + live[i + 1] * f)

    def index_at_one(self, t_ms: float) -> float:
        sec = max((t_ms - self.t0_ms) / 1000.0, 0.0)
        i = int(sec)
        if i + 1 >= len(self._live):
            self._extend_live(t_ms)
        f = sec - i
        return math.exp(float(self._live[i]) * (1.0 - f) + float(self._live[i + 1]) * f)

    # -- synthetic history -------------------------------------------------------------------------------
    def day_block(self, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Day ``b`` (``-history_days <= b < 0``; -1 is the day ending at t0): log opens, closes, and the
        high/low excursion (log) of its 1440 minutes."""
        hit = self._blocks.get(b)
        if hit is not None:
            self._blocks.move_to_end(b)
            return hit
        k = self.history_days + b
        a0, a1 = self.anchors[k], self.anchors[k + 1]
        rng = np.random.default_rng([self.seed, self._bid, 13, b + (1 << 20)])
        w = np.cumsum(rng.normal(0.0, self.sigma_min, MINUTES_PER_DAY))
        frac = np.arange(1, MINUTES_PER_DAY + 1) / MINUTES_PER_DAY
        closes = a0 + frac * (a1 - a0) + (w - frac * w[-1])  # Brownian bridge: ends exactly at a1
        opens = np.empty_like(closes)
        opens[0] = a0
        opens[1:] = closes[:-1]
        excursion = np.abs(rng.normal(0.0, self.sigma_min * 0.6, (2, MINUTES_PER_DAY)))
        block = (opens, closes, excursion)
        self._blocks[b] = block
        if len(self._blocks) > 256:  # ~9 MB per base at most
            self._blocks.popitem(last=False)
        return block

    def minutes(self, first: int, last: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Log (open, close, high, low) of synthetic minutes ``first..last`` (inclusive, minute offsets from
        t0, all negative)."""
        parts: list[tuple[np.ndarray, ...]] = []
        m = first
        while m <= last:
            b = m // MINUTES_PER_DAY
            lo = m - b * MINUTES_PER_DAY
            hi = min(MINUTES_PER_DAY - 1, last - b * MINUTES_PER_DAY)
            opens, closes, exc = self.day_block(b)
            sl = slice(lo, hi + 1)
            parts.append((opens[sl], closes[sl], exc[0, sl], exc[1, sl]))
            m = (b + 1) * MINUTES_PER_DAY
        if not parts:
            e = np.empty(0)
            return e, e, e, e
        o, c, up, down = (np.concatenate(cols) for cols in zip(*parts, strict=True))
        return o, c, np.maximum(o, c) + up, np.minimum(o, c) - down


def synthetic_volume_base(seed: int, inst_key: str, first: int, last: int, per_minute_base: float) -> np.ndarray:
    """Base-currency volume of synthetic minutes ``first..last`` for one instrument (lognormal, seeded per
    day block so any window is computed locally)."""
    out: list[np.ndarray] = []
    iid = stable_id(inst_key)
    m = first
    while m <= last:
        b = m // MINUTES_PER_DAY
        lo = m - b * MINUTES_PER_DAY
        hi = min(MINUTES_PER_DAY - 1, last - b * MINUTES_PER_DAY)
        rng = np.random.default_rng([seed, iid, 17, b + (1 << 20)])
        out.append(per_minute_base * rng.lognormal(-0.125, 0.5, MINUTES_PER_DAY)[lo : hi + 1])
        m = (b + 1) * MINUTES_PER_DAY
    return np.concatenate(out) if out else np.empty(0)
