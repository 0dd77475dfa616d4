"""Qlib frequencies, the silver timeframes they come from, and calendar text exactly as dump_bin writes it.

Timestamps travel as int64 microseconds since the epoch (UTC, what silver stores); Qlib's calendar is
naive and read as UTC here. ``dump_bin.py`` writes a calendar with ``np.savetxt(fmt="%s")``: one
timestamp per line, ``%Y-%m-%d`` for ``day`` and ``%Y-%m-%d %H:%M:%S`` otherwise, each line ending in
``\\n``; the same text comes out of ``format_times`` below.
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import ConfigError

# Qlib frequency -> silver timeframe. 60min is stored as its own frequency: Qlib derives 60min from 1min
# through stock-session resampling (09:30-15:55 only), which is wrong for a 24/7 market.
FREQ_TIMEFRAME: dict[str, str] = {"day": "1d", "1min": "1m", "60min": "1h"}
FREQ_STEP_US: dict[str, int] = {"day": 86_400_000_000, "1min": 60_000_000, "60min": 3_600_000_000}
ALL_FREQS: tuple[str, ...] = ("day", "1min", "60min")

# A backtest whose last step is the last calendar slot asks for the slot after it (field notes:
# IndexError without calendars/day_future.txt). One slot is all Qlib reads; a few more cost nothing.
FUTURE_SLOTS = 5


def check_freqs(freqs: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    unknown = [f for f in freqs if f not in FREQ_TIMEFRAME]
    if unknown or not freqs:
        raise ConfigError(
            "freqs",
            f"unknown or empty Qlib frequencies {unknown or list(freqs)}",
            "use some of " + ", ".join(ALL_FREQS),
        )
    # A stable order (coarse to fine) keeps every output independent of how the caller listed them.
    return tuple(f for f in ALL_FREQS if f in freqs)


def is_intraday(freq: str) -> bool:
    return freq != "day"


def format_times(times_us: np.ndarray, *, intraday: bool) -> list[str]:
    """Calendar strings for int64 microsecond timestamps (vectorised: a year of minutes in ~0.1 s)."""
    if intraday:
        text = np.datetime_as_string(times_us.astype("datetime64[us]").astype("datetime64[s]"), unit="s")
        return [s.replace("T", " ") for s in text.tolist()]
    return np.datetime_as_string(times_us.astype("datetime64[us]").astype("datetime64[D]"), unit="D").tolist()


def calendar_text(times_us: np.ndarray, freq: str) -> bytes:
    """The bytes of ``calendars/<freq>.txt`` for these (sorted, unique) slots."""
    lines = format_times(times_us, intraday=is_intraday(freq))
    return ("".join(line + "\n" for line in lines)).encode("utf-8")


def future_slots(last_us: int, freq: str) -> np.ndarray:
    """The slots after the last one that ``<freq>_future.txt`` adds (crypto trades every day and minute)."""
    step = FREQ_STEP_US[freq]
    return np.arange(1, FUTURE_SLOTS + 1, dtype=np.int64) * step + last_us
