"""The universe flow (scheduled daily): one task per venue selects the top N instruments and merges
them into silver/instruments; a table artifact shows the selection."""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.artifacts import create_table_artifact

from pipeline.lake.location import resolve_lake
from pipeline.universe import UniverseFilters, current_universe, refresh_universe


@task(name="universe-venue", retries=2, retry_delay_seconds=60)
def refresh_venue(
    lake_root: str, venue: str, filters: UniverseFilters, rest_url: str | None, funding: bool = True
) -> dict[str, Any]:
    (change,) = refresh_universe(resolve_lake(lake_root), [venue], filters=filters, rest_url=rest_url, funding=funding)
    return {
        "selected": change.selected,
        "added": change.added,
        "dropped": change.dropped,
        "funding_rows": change.funding_rows,
    }


@flow(name="universe", log_prints=True)
def universe_flow(
    lake: str | None = None,
    venues: list[str] | None = None,
    top_n: int = 50,
    okx_markets: list[str] | None = None,
    quote_currencies: list[str] | None = None,
    min_volume_24h_quote: float = 0.0,
    rest_url: str | None = None,
    funding: bool = True,
) -> dict[str, int]:
    """Refresh the top-N universe of each venue (OKX spot+swaps by quote volume, Deribit ETH options), then
    (``funding``) bring the selected swaps' funding history up to date in bronze/funding."""
    target = resolve_lake(lake)
    filters = UniverseFilters(
        top_n=top_n, okx_markets=tuple(okx_markets or ("spot", "swap")),
        quote_currencies=tuple(quote_currencies or ("USDT",)), min_volume_24h_quote=min_volume_24h_quote,
    )  # fmt: skip
    counts: dict[str, int] = {}
    table: list[dict[str, object]] = []
    for venue in venues or ["okx", "deribit"]:
        change = refresh_venue(target.root, venue, filters, rest_url, funding)
        counts[venue] = len(change["selected"])
        print(
            f"{venue}: {len(change['selected'])} selected, added {change['added']}, end-dated {change['dropped']}, "
            f"{change['funding_rows']} funding settlements backfilled"
        )
        table += [
            {"venue": venue, "rank": i + 1, "instrument": name}
            for i, name in enumerate(current_universe(target, venue))
        ]
    create_table_artifact(key="universe", table=table, description="active instruments after the last refresh")
    return counts
