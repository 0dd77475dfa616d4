"""Option pricing (pipeline/simulator/pricing.py) against the textbook formula with the scalar ``math.erf``.

The reference below is the simulator's former scalar Black-Scholes, written out independently: the vectorised
``bs_prices`` (scipy's ``ndtr``), the scalar ``bs_price``, the greeks and the option quotes of a whole market
must agree with it to 1e-9 (float rounding only).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.simulator.config import SimConfig
from pipeline.simulator.market import Market
from pipeline.simulator.pricing import bs_greeks, bs_price, bs_prices, norm_cdf, option_iv

YEAR_MS = 365 * 86_400_000


def ref_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def ref_d1_d2(spot: float, strike: float, t_years: float, iv: float) -> tuple[float, float, float, float]:
    t = max(t_years, 1e-6)
    sd = iv * math.sqrt(t)
    d1 = (math.log(spot / strike) + 0.5 * sd * sd) / sd
    return d1, d1 - sd, sd, t


def ref_price(spot: float, strike: float, t_years: float, iv: float, call: bool) -> float:
    d1, d2, _, _ = ref_d1_d2(spot, strike, t_years, iv)
    if call:
        return spot * ref_cdf(d1) - strike * ref_cdf(d2)
    return strike * ref_cdf(-d2) - spot * ref_cdf(-d1)


def ref_greeks(spot: float, strike: float, t_years: float, iv: float, call: bool) -> dict[str, float]:
    d1, d2, sd, t = ref_d1_d2(spot, strike, t_years, iv)
    pdf = math.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi)
    return {
        "delta": ref_cdf(d1) if call else ref_cdf(d1) - 1.0,
        "gamma": pdf / (spot * sd),
        "vega": spot * pdf * math.sqrt(t) / 100.0,
        "theta": -spot * pdf * iv / (2 * math.sqrt(t)) / 365.0,
        "rho": (strike * t * ref_cdf(d2) if call else -strike * t * ref_cdf(-d2)) / 100.0,
    }


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


# spot, strike, years, iv: at, in and far out of the money, from one minute (the market's floor) to two years
GRID = [
    (spot, strike, t, iv)
    for spot in (900.0, 3000.0, 3123.45)
    for strike in (500.0, 2900.0, 3000.0, 3100.0, 6000.0)
    for t in (60_000 / YEAR_MS, 1 / 365, 0.1, 2.0)
    for iv in (0.3, 0.6, 1.4)
]


def test_norm_cdf_matches_erf_and_is_accurate_in_the_tails() -> None:
    xs = np.linspace(-8.0, 8.0, 3201)
    got = norm_cdf(xs)
    assert all(close(g, ref_cdf(float(x))) for g, x in zip(got.tolist(), xs.tolist(), strict=True))
    # where 0.5 * (1 + erf) has cancelled to nothing, the CDF is still a positive number
    assert ref_cdf(-20.0) == 0.0 and math.isclose(float(norm_cdf(-20.0)), 2.7536241186062e-89, rel_tol=1e-9)


@pytest.mark.parametrize("call", [True, False])
def test_prices_match_the_scalar_formula(call: bool) -> None:
    spot, strike, t, iv = (np.array([g[k] for g in GRID]) for k in range(4))
    by_strike = {}
    for k in np.unique(strike):  # bs_prices takes one strike and arrays of the rest, as the market calls it
        sel = strike == k
        by_strike[float(k)] = (sel, bs_prices(spot[sel], float(k), t[sel], iv[sel], call))
    for k, (sel, got) in by_strike.items():
        for g, s, tt, v in zip(got.tolist(), spot[sel].tolist(), t[sel].tolist(), iv[sel].tolist(), strict=True):
            want = ref_price(s, k, tt, v, call)
            assert close(g, want), (s, k, tt, v, call, g, want)
            one = bs_price(s, k, tt, v, call)
            assert type(one) is float and close(one, want)


@pytest.mark.parametrize("call", [True, False])
def test_greeks_match_the_scalar_formula(call: bool) -> None:
    for spot, strike, t, iv in GRID:
        got, want = bs_greeks(spot, strike, t, iv, call), ref_greeks(spot, strike, t, iv, call)
        assert got.keys() == want.keys()
        for name, value in got.items():
            # rounded to 5 decimals like Deribit's: equal, or one rounding step apart at a .5 boundary
            assert abs(value - round(want[name], 5)) <= 1.000001e-5, (name, spot, strike, t, iv, value, want[name])


def test_market_option_quotes_price_with_the_scalar_formula() -> None:
    m = Market(SimConfig(seed=5, start_ms=1_786_540_440_000, okx_instruments=2, deribit_options=30, history_days=2))
    m.advance(m.start_ms + 5_000)
    options = [i for i in m.instruments("deribit") if i.market == "option"]
    assert len(options) == 30
    for inst in options:
        assert inst.strike is not None and inst.expiry_ms is not None
        iv = option_iv(inst.strike, m.index_price("ETH", m.t0_ms), max(inst.expiry_ms - m.t0_ms, 3_600_000) / YEAR_MS)
        q = m.quote("deribit", inst.inst_id)
        index = m.index_price("ETH", q.ts_ms)
        t_years = max(inst.expiry_ms - q.ts_ms, 60_000) / YEAR_MS
        call = inst.option_type == "call"
        assert q.mark_iv == round(iv * 100.0, 2)
        assert q.mark_price == round(ref_price(index, inst.strike, t_years, iv, call) / index, 4)
        assert q.greeks is not None and q.greeks.keys() == ref_greeks(index, inst.strike, t_years, iv, call).keys()
