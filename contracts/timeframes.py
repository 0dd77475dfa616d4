"""The candle timeframes of the lake, shortest first, with their length in ms: a fact the silver contracts and
the lake's schemas both rest on, declared at the bottom layer so neither imports the other's package."""

from __future__ import annotations

TIMEFRAMES: tuple[str, ...] = ("1m", "5m", "15m", "1h", "4h", "1d")
TIMEFRAME_MS: dict[str, int] = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "1h": 3_600_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
}
