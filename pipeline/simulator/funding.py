"""Funding of the simulated perpetual swaps: schedules, the premium of mark over index, and the rates.

Everything here is a pure function of (seed, instrument, time), so the rate that settled at any past time, the
prediction at any instant and the premium behind a mark price can be answered again later, in any order, by
the venues and by the tests' ground truth alike.

- **Premium** ``p(k)`` on a grid of one (scaled) minute, like OKX's minute premium index: a per-instrument mean,
  two slow waves, noise, and now and then a squeeze of 0.6-1.6 % for a 4-hour block (so caps really clamp).
  The mark price is ``index * (1 + p)``.
- **Schedule**: segments ``(from_ms, interval_ms)``; settlements fall on multiples of the interval (00:00,
  08:00, 16:00 UTC for 8 h), and a segment's last settlement is at the next segment's ``from_ms``. Most OKX
  swaps settle every 8 h, some every 4 h or 1 h; ETH-USDT-SWAP changes interval twice (8 h -> 4 h six
  settlements before start, 4 h -> 1 h two 8 h periods after), so consumers must read the interval from data.
- **Rate** of a settlement at ``T`` with interval ``I``: OKX's ``withRate`` formula over the premium grid of
  ``[T - I, T)``: ``F = P + clamp(i - P, -0.05 %, 0.05 %)`` with the interest ``i`` pro rata of 0.01 % per
  8 h, then clamped to the instrument's cap. Deribit (``noRate``, hourly) pays an eighth of ``P`` per hour,
  capped at 0.5 % / 8. The prediction before ``T`` is the same formula over the grid points seen so far.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.simulator.history import stable_id

HOUR_MS = 3_600_000
GRID_MINUTE_MS = 60_000
INTEREST_8H = 0.0001
INTEREST_CLAMP = 0.0005
SQUEEZE_BLOCK = 240  # grid points (4 h) per squeeze draw
# base -> (cap, interval hours); unlisted bases: (0.0075, 8)
OKX_FUNDING: dict[str, tuple[float, int]] = {
    "BTC": (0.00375, 8),
    "ETH": (0.00375, 8),
    "SOL": (0.0075, 4),
    "DOGE": (0.015, 1),
    "SHIB": (0.015, 4),
    "SUI": (0.0075, 1),
}
CHANGING = "ETH-USDT-SWAP"  # the instrument whose interval changes (8 h -> 4 h -> 1 h)
DERIBIT_CAP_8H = 0.005

_MASK = (1 << 64) - 1
_G = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, element-wise on uint64 (wraps on overflow by design)."""
    x = x + _G
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def uniforms(seed: int, stream: int, k: np.ndarray | int) -> np.ndarray:
    """Counter-based uniforms in (0, 1): one per ``k``, a pure function of (seed, stream, k)."""
    base = np.uint64(((seed & 0xFFFFFFFF) << 32 | (stream & 0xFFFFFFFF)) & _MASK)
    with np.errstate(over="ignore"):
        h = _mix(np.atleast_1d(np.asarray(k, dtype=np.int64)).astype(np.uint64) ^ _mix(np.atleast_1d(base)))
    return ((h >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def normals(seed: int, stream: int, k: np.ndarray | int) -> np.ndarray:
    """Standard normals (Box-Muller over two uniform streams), a pure function of (seed, stream, k)."""
    u1, u2 = uniforms(seed, stream, k), uniforms(seed, stream + 1, k)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


@dataclass(frozen=True, slots=True)
class FundingSpec:
    """How one perpetual funds. ``plan``: ``(from_ms, interval_ms)`` segments, ``from_ms`` ascending (the first
    is 0); each ``from_ms`` after the first is a multiple of both intervals around it."""

    venue: str
    inst_id: str
    cap: float  # |rate| <= cap: OKX maxFundingRate / -minFundingRate
    plan: tuple[tuple[int, int], ...]
    interest_8h: float  # 0 for noRate
    rate_scale: float  # Deribit pays P/8 per hour
    grid_ms: int  # one (scaled) minute
    hour_ms: int  # one (scaled) hour
    method: str = "current_period"
    formula: str = "withRate"
    impact_value: str = "20000"


@dataclass(frozen=True, slots=True)
class Settlement:
    """One funding settlement (ground truth): ``rate`` paid at ``funding_time`` for the ``interval_ms`` before."""

    venue: str
    inst_id: str
    funding_time: int
    rate: float
    interval_ms: int
    premium: float  # the average premium the rate came from


@dataclass(frozen=True, slots=True)
class FundingNow:
    """The state a venue shows at ``ts``: the period running now settles at ``funding_time`` at (predicted)
    ``rate``; the one after at ``next_funding_time``; ``settled_rate`` was paid at ``settled_time``."""

    inst_id: str
    ts: int
    funding_time: int
    rate: float
    next_funding_time: int
    premium: float  # the premium at ts
    settled_time: int
    settled_rate: float
    interval_ms: int


class FundingBook:
    """Premium, schedule and rates of one perpetual, for a given seed."""

    def __init__(self, seed: int, spec: FundingSpec) -> None:
        self.seed, self.spec = seed, spec
        sid = stable_id(f"funding:{spec.venue}:{spec.inst_id}")
        self._sid = sid
        u = uniforms(seed, sid, np.arange(8))
        # a mean and two waves (periods of 1.5-4 days and 5-15 h, in grid minutes) wide enough that the rate
        # often leaves OKX's interest band, as altcoin funding does
        self._mu = -0.0002 + 0.0008 * float(u[0])
        self._a1, self._p1 = 0.0002 + 0.0006 * float(u[1]), 2000 + 4000 * float(u[2])
        self._a2, self._p2 = 0.0001 + 0.0003 * float(u[4]), 300 + 600 * float(u[5])
        self._f1, self._f2 = 2 * math.pi * float(u[3]), 2 * math.pi * float(u[6])

    # -- premium ------------------------------------------------------------------------------------------
    def premium_grid(self, k: np.ndarray) -> np.ndarray:
        """The premium at grid points ``k`` (grid index = ms // grid_ms)."""
        k = np.asarray(k, dtype=np.int64)
        kf = k.astype(np.float64)
        p = (
            self._mu
            + self._a1 * np.sin(2 * math.pi * kf / self._p1 + self._f1)
            + self._a2 * np.sin(2 * math.pi * kf / self._p2 + self._f2)
            + 0.0003 * normals(self.seed, self._sid + 10, k)
        )
        block = k // SQUEEZE_BLOCK
        hit = uniforms(self.seed, self._sid + 20, block) < 0.03
        if hit.any():
            sign = np.where(uniforms(self.seed, self._sid + 21, block) < 0.5, -1.0, 1.0)
            p = p + np.where(hit, sign * (0.006 + 0.01 * uniforms(self.seed, self._sid + 22, block)), 0.0)
        return p

    def premium_at(self, ts: int) -> float:
        return float(self.premium_grid(np.array([ts // self.spec.grid_ms]))[0])

    # -- schedule -----------------------------------------------------------------------------------------
    def settlement_times(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """(funding times, their intervals) with ``start <= T <= end``, ascending."""
        times: list[np.ndarray] = []
        ivs: list[np.ndarray] = []
        plan = self.spec.plan
        for i, (lo, iv) in enumerate(plan):
            hi = plan[i + 1][0] if i + 1 < len(plan) else None
            k0 = max(-(-start // iv), lo // iv + 1)
            k1 = end // iv if hi is None else min(end // iv, hi // iv)
            if k1 >= k0:
                t = np.arange(k0, k1 + 1, dtype=np.int64) * iv
                times.append(t)
                ivs.append(np.full(len(t), iv, dtype=np.int64))
        if not times:
            e = np.empty(0, dtype=np.int64)
            return e, e
        return np.concatenate(times), np.concatenate(ivs)

    def _max_interval(self) -> int:
        return max(iv for _, iv in self.spec.plan)

    def next_after(self, ts: int) -> tuple[int, int]:
        """The first settlement strictly after ``ts`` and its interval."""
        t, iv = self.settlement_times(ts + 1, ts + 2 * self._max_interval())
        return int(t[0]), int(iv[0])

    def last_at_or_before(self, ts: int) -> tuple[int, int]:
        t, iv = self.settlement_times(ts - 2 * self._max_interval(), ts)
        return int(t[-1]), int(iv[-1])

    # -- rates --------------------------------------------------------------------------------------------
    def _rate(self, avg_premium: np.ndarray, interval_ms: np.ndarray) -> np.ndarray:
        spec = self.spec
        f = avg_premium
        if spec.interest_8h:
            interest = spec.interest_8h * interval_ms / (8 * spec.hour_ms)
            f = avg_premium + np.clip(interest - avg_premium, -INTEREST_CLAMP, INTEREST_CLAMP)
        return np.round(np.clip(f * spec.rate_scale, -spec.cap, spec.cap), 10) + 0.0

    def settlements(self, start: int, end: int) -> list[Settlement]:
        """Every settlement with ``start <= funding_time <= end``, oldest first."""
        times, ivs = self.settlement_times(start, end)
        if not len(times):
            return []
        g = self.spec.grid_ms
        first = -(-(times - ivs) // g)  # grid points with T - I <= k*g < T
        last = -(-times // g)  # exclusive
        k_lo, k_hi = int(first.min()), int(last.max())
        cs = np.concatenate(([0.0], np.cumsum(self.premium_grid(np.arange(k_lo, k_hi)))))
        avg = (cs[last - k_lo] - cs[first - k_lo]) / np.maximum(last - first, 1)
        rates = self._rate(avg, ivs)
        spec = self.spec
        return [
            Settlement(spec.venue, spec.inst_id, int(t), float(r), int(iv), float(p))
            for t, r, iv, p in zip(times.tolist(), rates.tolist(), ivs.tolist(), avg.tolist(), strict=True)
        ]

    def now(self, ts: int) -> FundingNow:
        """What the venue shows at ``ts``: the running period's predicted rate, the next times, the last paid."""
        t_next, iv = self.next_after(ts)
        g = self.spec.grid_ms
        k0, k1 = -(-(t_next - iv) // g), ts // g + 1
        ks = np.arange(k0, k1) if k1 > k0 else np.array([ts // g])
        avg = float(self.premium_grid(ks).mean())
        rate = float(self._rate(np.array([avg]), np.array([iv]))[0])
        t_after, _ = self.next_after(t_next)
        t_last, _ = self.last_at_or_before(ts)
        settled = self.settlements(t_last, t_last)[0]
        return FundingNow(
            self.spec.inst_id, ts, t_next, rate, t_after, self.premium_at(ts), settled.funding_time, settled.rate, iv
        )


def scaled_hours(hours: int, scale: float) -> int:
    """Whole scaled hours, so 8 h, 4 h and 1 h stay exact multiples of each other at any scale."""
    return hours * max(1, round(HOUR_MS * scale))


def okx_spec(inst_id: str, base: str, start_ms: int, scale: float) -> FundingSpec:
    """The OKX funding terms of a USDT swap (cap, schedule; the changing instrument's two switches)."""
    cap, hours = OKX_FUNDING.get(base, (0.0075, 8))
    grid = max(1, round(GRID_MINUTE_MS * scale))
    if inst_id == CHANGING:
        p8, p4, p1 = scaled_hours(8, scale), scaled_hours(4, scale), scaled_hours(1, scale)
        anchor = start_ms // p8 * p8
        plan: tuple[tuple[int, int], ...] = ((0, p8), (anchor - 6 * p8, p4), (anchor + 2 * p8, p1))
    else:
        plan = ((0, scaled_hours(hours, scale)),)
    return FundingSpec("okx", inst_id, cap, plan, INTEREST_8H, 1.0, grid, scaled_hours(1, scale))


def deribit_spec(inst_id: str, scale: float) -> FundingSpec:
    """Deribit perpetuals fund continuously; the history (and the simulator's settlements) are hourly."""
    grid = max(1, round(GRID_MINUTE_MS * scale))
    return FundingSpec(
        "deribit",
        inst_id,
        DERIBIT_CAP_8H / 8,
        ((0, scaled_hours(1, scale)),),
        0.0,
        1.0 / 8,
        grid,
        scaled_hours(1, scale),
        method="continuous",
        formula="noRate",
    )
