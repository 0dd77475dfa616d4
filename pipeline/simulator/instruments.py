"""The instrument catalogue: OKX spot/USDT swaps and Deribit ETH options + ETH-PERPETUAL.

Tick/lot/ctVal values are the venues' real ones (OKX 2022 instrument bodies in
``$CRYPTOLAKE_REALDATA/okx/cryptofeed-2022-05-instruments.rest.log``; swap lot 0.01 as in the 2026 frames).
Deribit option names follow the venue: ``ETH-27DEC26-3000-C`` (day without leading zero, upper-case month,
two-digit year), expiry 08:00 UTC.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math

from pipeline.simulator.pricing import bs_price, option_iv
from pipeline.simulator.records import SimInstrument

DAY_MS = 86_400_000

# base: (price in USDT, tick, spot lot, spot min size, swap ctVal, annual vol)
OKX_BASES: dict[str, tuple[float, float, float, float, float, float]] = {
    "BTC": (64000.0, 0.1, 0.00000001, 0.00001, 0.01, 0.55),
    "ETH": (3000.0, 0.01, 0.000001, 0.001, 0.1, 0.65),
    "SOL": (140.0, 0.01, 0.000001, 0.01, 1.0, 0.85),
    "XRP": (0.6, 0.0001, 0.000001, 1.0, 100.0, 0.8),
    "DOGE": (0.12, 0.00001, 0.000001, 10.0, 1000.0, 0.9),
    "ADA": (0.4, 0.0001, 0.000001, 1.0, 100.0, 0.8),
    "AVAX": (25.0, 0.01, 0.000001, 0.01, 1.0, 0.9),
    "DOT": (5.5, 0.001, 0.000001, 0.1, 1.0, 0.8),
    "LINK": (13.0, 0.001, 0.000001, 0.1, 1.0, 0.85),
    "LTC": (75.0, 0.01, 0.000001, 0.01, 1.0, 0.7),
    "BCH": (350.0, 0.1, 0.000001, 0.001, 0.1, 0.75),
    "TRX": (0.14, 0.00001, 0.000001, 10.0, 1000.0, 0.6),
    "UNI": (7.0, 0.001, 0.000001, 0.1, 1.0, 0.9),
    "ATOM": (6.0, 0.001, 0.000001, 0.1, 1.0, 0.85),
    "ETC": (20.0, 0.001, 0.000001, 0.1, 10.0, 0.8),
    "FIL": (4.0, 0.001, 0.000001, 0.01, 0.1, 0.9),
    "NEAR": (5.0, 0.001, 0.00000001, 0.5, 10.0, 0.9),
    "TON": (5.5, 0.001, 0.0001, 1.0, 1.0, 0.7),
    "SHIB": (0.0000165, 0.00000001, 1.0, 50000.0, 1000000.0, 0.95),
    "APT": (7.0, 0.001, 0.000001, 0.1, 1.0, 0.95),
    "ARB": (0.7, 0.0001, 0.000001, 1.0, 10.0, 0.95),
    "OP": (1.6, 0.001, 0.000001, 0.1, 1.0, 0.95),
    "SUI": (1.2, 0.0001, 0.000001, 1.0, 1.0, 1.0),
    "OKB": (45.0, 0.01, 0.000001, 0.01, 0.01, 0.6),
    "POL": (0.4, 0.0001, 0.000001, 1.0, 10.0, 0.9),
}
MAX_OKX_INSTRUMENTS = 2 * len(OKX_BASES)

SWAP_LOT = 0.01  # 2026 OKX USDT swaps trade in 0.01 contracts ("sz":"34.95" in the captures)
SWAP_BASIS = 0.0002  # perpetuals trade slightly above spot
DERIBIT_OPTION_TICK = 0.0005  # ETH options are quoted in ETH
DERIBIT_PERP_TICK = 0.05
_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]


def okx_instruments(n: int, history_start_ms: int) -> list[SimInstrument]:
    """The first ``n`` of [BTC-USDT, BTC-USDT-SWAP, ETH-USDT, ETH-USDT-SWAP, ...]."""
    out: list[SimInstrument] = []
    for base, (price, tick, lot, min_sz, ct_val, _vol) in OKX_BASES.items():
        out.append(
            SimInstrument(
                venue="okx",
                inst_id=f"{base}-USDT",
                market="spot",
                base=base,
                quote="USDT",
                settle=None,
                tick_size=tick,
                lot_size=lot,
                min_size=min_sz,
                contract_value=None,
                listing_ms=history_start_ms,
                expiry_ms=None,
                strike=None,
                option_type=None,
                underlying=None,
                initial_price=price,
            )
        )
        out.append(
            SimInstrument(
                venue="okx",
                inst_id=f"{base}-USDT-SWAP",
                market="swap",
                base=base,
                quote="USDT",
                settle="USDT",
                tick_size=tick,
                lot_size=SWAP_LOT,
                min_size=SWAP_LOT,
                contract_value=ct_val,
                listing_ms=history_start_ms,
                expiry_ms=None,
                strike=None,
                option_type=None,
                underlying=f"{base}-USDT",
                initial_price=round_to_tick(price * (1 + SWAP_BASIS), tick),
            )
        )
    return out[:n]


def deribit_expiry_name(expiry_ms: int) -> str:
    """``1798358400000`` -> ``"27DEC26"``."""
    d = dt.datetime.fromtimestamp(expiry_ms / 1000, tz=dt.UTC)
    return f"{d.day}{_MONTHS[d.month - 1]}{d.year % 100:02d}"


def _at8(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, 8, tzinfo=dt.UTC).timestamp() * 1000)


def _last_friday(year: int, month: int) -> dt.date:
    last = dt.date(year, month, calendar.monthrange(year, month)[1])
    return last - dt.timedelta(days=(last.weekday() - 4) % 7)


def deribit_expiries(start_ms: int) -> list[tuple[int, str]]:
    """(expiry_ms, kind) for 3 dailies, 2 weeklies, 2 monthlies, 2 quarterlies after ``start_ms``."""
    today = dt.datetime.fromtimestamp(start_ms / 1000, tz=dt.UTC).date()
    first = today if _at8(today) > start_ms + 3_600_000 else today + dt.timedelta(days=1)
    out: dict[int, str] = {}
    for i in range(3):
        out.setdefault(_at8(first + dt.timedelta(days=i)), "daily")
    friday = first + dt.timedelta(days=(4 - first.weekday()) % 7)
    weeklies = 0
    while weeklies < 2:
        ms = _at8(friday)
        if ms not in out:
            out[ms] = "weekly"
            weeklies += 1
        friday += dt.timedelta(days=7)
    months = 0
    y, m = today.year, today.month
    quarterlies = 0
    while months < 2 or quarterlies < 2:
        ms = _at8(_last_friday(y, m))
        if ms > start_ms and ms not in out:
            if m % 3 == 0 and quarterlies < 2:
                out[ms] = "quarterly"
                quarterlies += 1
            elif months < 2:
                out[ms] = "monthly"
                months += 1
        m += 1
        if m == 13:
            y, m = y + 1, 1
    return sorted(out.items())


def deribit_instruments(n_options: int, start_ms: int, eth_price: float) -> list[SimInstrument]:
    """ETH-PERPETUAL plus ``n_options`` options, nearest-to-the-money first, round robin over expiries."""
    perp = SimInstrument(
        venue="deribit",
        inst_id="ETH-PERPETUAL",
        market="swap",
        base="ETH",
        quote="USD",
        settle="ETH",
        tick_size=DERIBIT_PERP_TICK,
        lot_size=1.0,
        min_size=1.0,
        contract_value=1.0,
        listing_ms=start_ms - 365 * DAY_MS,
        expiry_ms=None,
        strike=None,
        option_type=None,
        underlying="eth_usd",
        initial_price=round_to_tick(eth_price * (1 + SWAP_BASIS), DERIBIT_PERP_TICK),
    )
    per_expiry: list[list[tuple[int, str, float, str]]] = []
    for expiry_ms, kind in deribit_expiries(start_ms):
        step = {"daily": 25.0, "weekly": 50.0, "monthly": 100.0, "quarterly": 200.0}[kind]
        atm = round(eth_price / step) * step
        strikes = [atm]
        for k in range(1, 40):
            strikes += [atm + k * step, atm - k * step]
        name = deribit_expiry_name(expiry_ms)
        real_future = kind in ("monthly", "quarterly")  # Deribit lists futures for these expiries
        uly = f"ETH-{name}" if real_future else f"SYN.ETH-{name}"
        picks = []
        for strike in strikes:
            if strike <= 0:
                continue
            for cp in ("C", "P"):
                picks.append((expiry_ms, uly, strike, cp))
        per_expiry.append(picks)
    options: list[SimInstrument] = []
    i = 0
    while len(options) < n_options:
        bucket = per_expiry[i % len(per_expiry)]
        j = (i // len(per_expiry)) * 2
        for expiry_ms, uly, strike, cp in bucket[j : j + 2]:
            if len(options) >= n_options:
                break
            t_years = max(expiry_ms - start_ms, 3_600_000) / (365 * DAY_MS)
            iv = option_iv(strike, eth_price, t_years)
            px = bs_price(eth_price, strike, t_years, iv, cp == "C") / eth_price
            options.append(
                SimInstrument(
                    venue="deribit",
                    inst_id=f"ETH-{deribit_expiry_name(expiry_ms)}-{strike:g}-{cp}",
                    market="option",
                    base="ETH",
                    quote="ETH",
                    settle="ETH",
                    tick_size=DERIBIT_OPTION_TICK,
                    lot_size=1.0,
                    min_size=1.0,
                    contract_value=1.0,
                    listing_ms=min(start_ms - DAY_MS, expiry_ms - 30 * DAY_MS),
                    expiry_ms=expiry_ms,
                    strike=strike,
                    option_type="call" if cp == "C" else "put",
                    underlying=uly,
                    initial_price=max(DERIBIT_OPTION_TICK, round_to_tick(px, DERIBIT_OPTION_TICK)),
                )
            )
        i += 1
    return [perp] + options


# -- tick arithmetic shared with the market ------------------------------------------------------------------
def round_to_tick(price: float, tick: float) -> float:
    return round(round(price / tick) * tick, decimals(tick))


def decimals(step: float) -> int:
    """Number of decimals of a tick/lot size: 0.001 -> 3, 1 -> 0, 1e-8 -> 8."""
    return max(0, -math.floor(math.log10(step) + 1e-9)) if step < 1 else 0
