"""Turn a configured instrument selection into checked names (until the universe table exists).

``"options:ETH"`` lists the venue's live options of that currency; explicit names are checked against the
venue's own instrument list before anything is subscribed, so a typo is a configuration error that names
the instrument instead of a refused subscription (Deribit refuses a whole request for one bad channel).
The REST paths and answer shapes are the venue module's; this module only fetches.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from pipeline.config import VenueStreamConfig
from pipeline.errors import ConfigError
from pipeline.venues import get_venue
from pipeline.venues.base import Venue


def http_base_for(ws_base: str, venue: Venue) -> str:
    """REST base of a venue given the WebSocket base in use (the simulator serves both on one port)."""
    if ws_base.rstrip("/") == venue.WS_BASE:
        return venue.REST_URL.split("/api/")[0]
    if ws_base.startswith("wss://"):
        return "https://" + ws_base.removeprefix("wss://").rstrip("/")
    return "http://" + ws_base.removeprefix("ws://").rstrip("/")


def _get(url: str, key: str, timeout_secs: float) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=timeout_secs) as response:  # noqa: S310 - URL from config
            return json.loads(response.read())
    except (urllib.error.URLError, TimeoutError, json.JSONDecodeError, OSError) as exc:
        raise ConfigError(
            key, f"could not list instruments from {url}: {exc}", "check the venue URL, or that the venue is up"
        ) from exc


def resolve_instruments(cfg: VenueStreamConfig, ws_base: str, *, timeout_secs: float = 10.0) -> list[str]:
    venue = get_venue(cfg.venue)
    base = http_base_for(ws_base, venue)
    key = f"stream.{cfg.venue}.instruments"
    if isinstance(cfg.instruments, tuple):
        names = list(cfg.instruments)
    else:
        currency = cfg.instruments.split(":", 1)[1].upper()
        names = sorted(venue.listed_names(_get(base + venue.options_listing_path(currency), key, timeout_secs)))
    names += [n for n in cfg.extra if n not in names]
    if not names:
        raise ConfigError(key, "selects no instrument", "list instruments explicitly")
    bad_syntax = []
    for name in names:
        try:
            venue.market_of(name)
        except ValueError:
            bad_syntax.append(name)
    if bad_syntax:
        raise ConfigError(
            key,
            f"not {cfg.venue} instrument names: {', '.join(bad_syntax)}",
            "use the venue's own names, e.g. BTC-USDT-SWAP",
        )
    listed: set[str] = set()
    for path in venue.listing_paths(names):
        listed.update(venue.listed_names(_get(base + path, key, timeout_secs)))
    unknown = [n for n in names if n not in listed]
    if unknown:
        raise ConfigError(key, f"{cfg.venue} does not list {', '.join(unknown)}", "remove them or fix their spelling")
    return names
