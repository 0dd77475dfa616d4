"""Open-interest history of a simulated contract on OKX's period grid (``rubik/stat/contracts/open-interest-history``).

A point is the open interest in force at an instant of the 5-minute grid; every OKX period (5m ... 1D) is a
subset of that grid, so a point has one value whichever period asks for it. Two sources, one per era:

- before the simulator's start, a pure function of (seed, instrument, grid index): two slow waves and a
  little noise around the instrument's starting open interest, anchored so the waves meet it at the start.
  Nothing is stored: any past point is computed again on demand, the same every time (the tests' ground truth);
- after the start, the live value (it follows trading, ``derivatives.py``), snapshotted as the clock crosses
  each grid point (``Snapshots``: a few hundred floats a day per contract).
"""

from __future__ import annotations

import math

import numpy as np

from pipeline.simulator.funding import normals, uniforms
from pipeline.simulator.history import stable_id
from pipeline.simulator.okx_frames import CANDLE_BARS

GRID_MS = 300_000  # the finest period (5m)
HISTORY_POINTS = 1440  # OKX serves the latest 1,440 points of a period
PERIODS: dict[str, tuple[int, int]] = {  # OKX period -> (length ms, offset of its grid, as the candle bars)
    p: CANDLE_BARS[p] for p in ("5m", "15m", "30m", "1H", "2H", "4H", "6H", "12H", "1D", "6Hutc", "12Hutc", "1Dutc")
}
_WAVES = ((0.12, 9 * 86_400_000), (0.05, 20 * 3_600_000))  # (log amplitude, length ms)
_NOISE = 0.003


def points(period: str, start_ms: int, end_ms: int) -> list[int]:
    """Grid times of ``period`` with ``start_ms <= ts < end_ms``, oldest first."""
    step = PERIODS[period][0]
    return list(range(newest_point(period, start_ms - 1) + step, end_ms, step))


def newest_point(period: str, now_ms: int) -> int:
    """The latest grid time of ``period`` at or before ``now_ms``."""
    step, offset = PERIODS[period]
    return (now_ms - offset) // step * step + offset


def synthetic(seed: int, inst_id: str, base: float, dec: int, start_ms: int, ts: list[int]) -> list[float]:
    """Pre-start open interest (contracts, rounded to the lot) at grid times ``ts``."""
    if not ts:
        return []
    sid = stable_id(f"oi-history:{inst_id}")
    phases = uniforms(seed, sid, np.arange(len(_WAVES))) * 2.0 * math.pi
    t = np.asarray(ts, dtype=np.float64)
    waves = np.zeros_like(t)
    for (amplitude, length), phase in zip(_WAVES, phases, strict=True):
        waves += amplitude * (
            np.sin(2.0 * math.pi * t / length + phase) - math.sin(2.0 * math.pi * start_ms / length + phase)
        )
    noise = _NOISE * normals(seed, sid + 1, np.asarray(ts, dtype=np.int64) // GRID_MS)
    level = base * np.exp(waves + noise)
    return [round(float(v), dec) for v in level]


class Snapshots:
    """Live open interest at each 5-minute grid time the clock crossed after the start."""

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: dict[int, float] = {}

    def cross(self, prev_ms: int, now_ms: int, value: float) -> None:
        """Record ``value`` (in force when the step began) at every grid time in (prev_ms, now_ms]."""
        t = (prev_ms // GRID_MS + 1) * GRID_MS
        while t <= now_ms:
            self.values[t] = value
            t += GRID_MS
