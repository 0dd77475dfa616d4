"""The instrument universe: the top N instruments per venue, kept in ``silver/instruments``.

- OKX: spot and swaps ranked by 24 h quote volume (``market/tickers``), filtered by market type, quote
  currency and a minimum volume.
- Deribit: ETH options ranked by 24 h volume (USD), then open interest.

Each refresh (daily) merges the new top N into the table: instruments already active keep their row
(``valid_from``) with fresh rank, volume and metadata; new ones get a row with ``valid_from`` = now;
those that dropped out, expired or were delisted are end-dated (``valid_to`` = now, ``active`` false).
The merge is keyed (venue, instrument, valid_from), so running a refresh twice changes nothing but the
volumes. With ``funding=True`` (the daily flow) the funding history of the selected swaps is then brought up
to date in bronze/funding (``pipeline.backfill.funding``: from each one's last settlement, or the venue's
history window). ``current_universe(lake, venue)`` is what the stream and ``backfill --instruments universe`` read.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
from deltalake import CommitProperties

from pipeline.errors import ConfigError
from pipeline.lake import writer
from pipeline.lake.location import Lake
from pipeline.lake.merge import merge
from pipeline.lake.tables import INSTRUMENT_KEY, SILVER_INSTRUMENTS


@dataclass(frozen=True)
class UniverseFilters:
    top_n: int = 50
    okx_markets: tuple[str, ...] = ("spot", "swap")
    quote_currencies: tuple[str, ...] = ("USDT",)  # OKX: spot quote / swap settle currency
    min_volume_24h_quote: float = 0.0
    deribit_currency: str = "ETH"

    def __post_init__(self) -> None:
        if not isinstance(self.top_n, int) or self.top_n < 1:
            raise ConfigError("top_n", f"{self.top_n!r}", "use a positive integer (default 50)")
        bad = set(self.okx_markets) - {"spot", "swap", "future"}
        if bad or not self.okx_markets:
            raise ConfigError("okx_markets", f"{sorted(bad) or 'empty'}", "use spot, swap and/or future")
        if self.min_volume_24h_quote < 0:
            raise ConfigError("min_volume_24h_quote", f"{self.min_volume_24h_quote}", "use 0 or more")


@dataclass
class UniverseChange:
    venue: str
    selected: list[str]
    added: list[str]
    dropped: list[str]
    funding_rows: int = 0  # settlements written to bronze/funding (funding=True)


async def _candidates(
    venue: str, rest_url: str | None, filters: UniverseFilters, **client_kwargs: Any
) -> list[dict[str, Any]]:
    from pipeline.backfill.plan import rest_venue
    from pipeline.backfill.rest import RestClient

    module = rest_venue(venue)
    async with RestClient(module, rest_url, **client_kwargs) as client:
        if venue == "okx":
            rows = await module.universe_candidates(client, filters.okx_markets)
            quotes = set(filters.quote_currencies)
            return [r for r in rows if (r["settle"] if r["market"] != "spot" else r["quote"]) in quotes]
        return await module.universe_candidates(client, filters.deribit_currency)


def rank(candidates: list[dict[str, Any]], filters: UniverseFilters) -> list[dict[str, Any]]:
    """Top N by 24 h quote volume, then open interest (name breaks ties, so the order is stable)."""
    kept = [c for c in candidates if (c["volume_24h_quote"] or 0.0) >= filters.min_volume_24h_quote]
    kept.sort(key=lambda c: (-(c["volume_24h_quote"] or 0.0), -(c["open_interest"] or 0.0), c["instrument"]))
    return [{**c, "rank": i + 1} for i, c in enumerate(kept[: filters.top_n])]


def _active(lake: Lake, venue: str) -> dict[str, dict[str, Any]]:
    table = writer.read(lake, SILVER_INSTRUMENTS)
    rows = table.filter((table["venue"] == venue) & table["active"]).to_dicts()
    return {r["instrument"]: r for r in rows}


def _row(c: dict[str, Any], now_us: int, valid_from: Any) -> dict[str, Any]:
    ms = lambda v: None if v is None else int(v) * 1000  # noqa: E731 - ms -> us for the timestamp columns
    return {
        "venue": c["venue"], "instrument": c["instrument"], "market": c["market"], "base": c["base"], "quote": c["quote"],
        "settle": c["settle"], "tick_size": c["tick_size"], "lot_size": c["lot_size"], "contract_value": c["contract_value"],
        "listing_time": ms(c["listing_time_ms"]), "expiry_time": ms(c["expiry_time_ms"]), "strike": c["strike"],
        "option_type": c["option_type"], "rank": c["rank"], "volume_24h_quote": c["volume_24h_quote"],
        "open_interest": c["open_interest"], "selected_at": now_us, "valid_from": valid_from, "valid_to": None, "active": True,
    }  # fmt: skip


def apply_selection(
    lake: Lake, venue: str, selected: list[dict[str, Any]], filters: UniverseFilters, now_ms: int
) -> UniverseChange:
    """Merge a ranked selection into silver/instruments (one Delta commit)."""
    now_us = now_ms * 1000
    active = _active(lake, venue)
    names = {c["instrument"] for c in selected}
    rows = []
    for c in selected:
        before = active.get(c["instrument"])
        rows.append(_row(c, now_us, now_us if before is None else _us(before["valid_from"])))
    dropped = sorted(set(active) - names)
    for name in dropped:
        old = dict(active[name])
        for col in ("listing_time", "expiry_time", "selected_at", "valid_from"):
            old[col] = _us(old[col])
        old.update(valid_to=now_us, active=False)
        rows.append(old)
    data = pa.Table.from_pylist(rows, schema=SILVER_INSTRUMENTS.schema)
    meta = {"cryptolake.universe": json.dumps({"venue": venue, "filters": asdict(filters), "selected": len(selected)})}
    merge(lake, SILVER_INSTRUMENTS, data, INSTRUMENT_KEY, commit_properties=CommitProperties(custom_metadata=meta))
    return UniverseChange(venue, [c["instrument"] for c in selected], sorted(names - set(active)), dropped)


def _us(value: Any) -> int | None:
    """A polars datetime (tz-aware) back to epoch microseconds."""
    if value is None:
        return None
    return int(value.timestamp() * 1_000_000) if hasattr(value, "timestamp") else int(value)


def refresh_universe(
    lake: Lake,
    venues: Sequence[str] = ("okx", "deribit"),
    *,
    filters: UniverseFilters | None = None,
    rest_url: str | None = None,
    now_ms: int | None = None,
    funding: bool = False,
    **client_kwargs: Any,
) -> list[UniverseChange]:
    """Select the top N of each venue over REST and merge it into silver/instruments; ``funding``: then
    backfill the selected swaps' funding history up to now."""
    filters = filters or UniverseFilters()
    now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    from pipeline.venues import get_venue

    for venue in venues:
        get_venue(venue)  # ConfigError before any request
    changes = []
    for venue in venues:
        candidates = asyncio.run(_candidates(venue, rest_url, filters, **client_kwargs))
        change = apply_selection(lake, venue, rank(candidates, filters), filters, now_ms)
        if funding:
            change.funding_rows = _catch_up_funding(lake, venue, change.selected, rest_url, now_ms, client_kwargs)
        changes.append(change)
    return changes


def _catch_up_funding(
    lake: Lake, venue: str, names: list[str], rest_url: str | None, now_ms: int, client_kwargs: dict[str, Any]
) -> int:
    from pipeline.backfill.funding import FUNDING_CHUNK_SECS, catch_up_items
    from pipeline.backfill.jobs import run_backfill
    from pipeline.backfill.plan import BackfillPlan

    items = catch_up_items(lake, venue, names, now_ms)
    if not items:
        return 0
    plan = BackfillPlan(venue, "funding", None, tuple(items), FUNDING_CHUNK_SECS)
    limits = {k: v for k, v in client_kwargs.items() if k in ("retry", "max_requests_per_sec")}
    return run_backfill(lake, plan, rest_url=rest_url, **limits).rows


def current_universe(lake: Lake, venue: str, *, now_ms: int | None = None) -> list[str]:
    """Active instruments of ``venue``, best rank first; options that expired since the last refresh are
    left out. Empty when the universe was never refreshed."""
    now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    rows = sorted(_active(lake, venue).values(), key=lambda r: (r["rank"] is None, r["rank"], r["instrument"]))
    return [r["instrument"] for r in rows if (expiry_us := _us(r["expiry_time"])) is None or expiry_us > now_ms * 1000]


def resolve_instruments(lake: Lake, venue: str, instruments: str | Sequence[str]) -> list[str]:
    """``"universe"`` -> ``current_universe``; a comma-separated string or a list -> the names."""
    if isinstance(instruments, str) and instruments.strip() == "universe":
        names = current_universe(lake, venue)
        if not names:
            raise ConfigError(
                "instruments",
                f"the {venue} universe in silver/instruments is empty",
                "run `cryptolake universe` first, or list instruments",
            )
        return names
    if isinstance(instruments, str):
        return [s.strip() for s in instruments.split(",") if s.strip()]
    return list(instruments)
