"""Which markets a backfill kind applies to: funding and open interest exist for contracts only."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from pipeline.errors import ConfigError
from pipeline.venues import get_venue


def of_markets(venue: str, names: Sequence[str], markets: Collection[str]) -> list[str]:
    """The instruments among ``names`` whose market is one of ``markets``."""
    return [n for n in names if get_venue(venue).market_of(n) in markets]


def refuse_others(venue: str, names: Sequence[str], markets: Collection[str], what: str, fix: str) -> None:
    """ConfigError "``what`` A (spot), B (option)" naming every instrument outside ``markets``; no request is sent."""
    bad = [f"{n} ({m})" for n in names if (m := get_venue(venue).market_of(n)) not in markets]
    if bad:
        raise ConfigError("instruments", f"{what} {', '.join(bad)}", fix)
