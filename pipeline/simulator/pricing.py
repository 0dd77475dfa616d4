"""Option pricing of the simulated Deribit options: the volatility smile, Black-Scholes value and greeks.

One formula serves the catalogue (an option's initial price), the quotes (mark price, greeks) and the trade
generator (the marks of a whole chunk of trades at once), so they cannot drift apart. The normal CDF is
scipy's ``ndtr`` ufunc (scipy comes with pyqlib's dependencies): a C loop, no Python call per element, and
accurate in both tails. Zero rate, like Deribit's inverse options before conversion; values are in USD (the
market divides by the index for ETH).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr

FloatArray = npt.NDArray[np.float64]
_MIN_T_YEARS = 1e-6  # a vanishing time to expiry would divide by zero in d1


def option_iv(strike: float, spot: float, t_years: float) -> float:
    """A smile: 60 % ATM, puts richer, short expiries steeper (annualised, as a fraction)."""
    m = math.log(strike / spot)
    return 0.6 + 0.25 * m * m / max(t_years, 0.02) ** 0.5 - 0.08 * m


def norm_cdf(x: npt.ArrayLike) -> FloatArray:
    """Standard normal CDF, element-wise."""
    return np.asarray(ndtr(x), dtype=np.float64)


def _d1_d2(
    spot: npt.ArrayLike, strike: float, t_years: npt.ArrayLike, iv: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """(d1, d2, sd, t) with t clamped away from zero and sd = iv * sqrt(t)."""
    t = np.maximum(np.asarray(t_years, dtype=np.float64), _MIN_T_YEARS)
    sd = np.asarray(iv, dtype=np.float64) * np.sqrt(t)
    d1 = (np.log(np.asarray(spot, dtype=np.float64) / strike) + 0.5 * sd * sd) / sd
    return d1, d1 - sd, sd, t


def bs_prices(spot: npt.ArrayLike, strike: float, t_years: npt.ArrayLike, iv: npt.ArrayLike, call: bool) -> FloatArray:
    """Black-Scholes values in USD, element-wise over ``spot``, ``t_years`` and ``iv`` (broadcast)."""
    d1, d2, _, _ = _d1_d2(spot, strike, t_years, iv)
    s = np.asarray(spot, dtype=np.float64)
    if call:
        return s * norm_cdf(d1) - strike * norm_cdf(d2)
    return strike * norm_cdf(-d2) - s * norm_cdf(-d1)


def bs_price(spot: float, strike: float, t_years: float, iv: float, call: bool) -> float:
    """Black-Scholes value in USD of one option."""
    return float(bs_prices(spot, strike, t_years, iv, call))


def bs_greeks(spot: float, strike: float, t_years: float, iv: float, call: bool) -> dict[str, float]:
    """Deribit-style greeks: delta, gamma, vega (per 1 vol point), theta (per day), rho (per 1 %)."""
    d1_, d2_, sd_, t_ = _d1_d2(spot, strike, t_years, iv)
    d1, d2, sd, t = float(d1_), float(d2_), float(sd_), float(t_)
    pdf = math.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi)
    n_d1 = float(norm_cdf(d1))
    delta = n_d1 if call else n_d1 - 1.0
    gamma = pdf / (spot * sd)
    vega = spot * pdf * math.sqrt(t) / 100.0
    theta = -spot * pdf * iv / (2 * math.sqrt(t)) / 365.0
    rho = (strike * t * float(norm_cdf(d2)) if call else -strike * t * float(norm_cdf(-d2))) / 100.0
    return {
        "delta": round(delta, 5),
        "gamma": round(gamma, 5),
        "vega": round(vega, 5),
        "theta": round(theta, 5),
        "rho": round(rho, 5),
    }
