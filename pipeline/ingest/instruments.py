"""Turn a configured instrument selection into names (until the universe table exists).

``"options:ETH"`` lists the venue's live options of that currency over its public REST API, the same call
against the simulator or the real venue.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from pipeline.config import VenueStreamConfig
from pipeline.errors import ConfigError


def http_base_for(ws_base: str) -> str:
    """REST base of a venue given its WebSocket base (the simulator serves both on one port)."""
    if ws_base.startswith("wss://ws.okx.com"):
        return "https://www.okx.com"
    if ws_base.startswith("wss://"):
        return "https://" + ws_base.removeprefix("wss://")
    return "http://" + ws_base.removeprefix("ws://")


def resolve_instruments(cfg: VenueStreamConfig, ws_base: str, *, timeout_secs: float = 10.0) -> list[str]:
    if isinstance(cfg.instruments, tuple):
        names = list(cfg.instruments)
    else:
        currency = cfg.instruments.split(":", 1)[1].upper()
        names = _list_options(cfg.venue, http_base_for(ws_base), currency, timeout_secs)
    names += [n for n in cfg.extra if n not in names]
    if not names:
        raise ConfigError(f"stream.{cfg.venue}.instruments", "selects no instrument", "list instruments explicitly")
    return names


def _list_options(venue: str, http_base: str, currency: str, timeout_secs: float) -> list[str]:
    if venue == "deribit":
        url = f"{http_base}/api/v2/public/get_instruments?currency={currency}&kind=option&expired=false"
        key = "instrument_name"
    elif venue == "okx":
        url = f"{http_base}/api/v5/public/instruments?instType=OPTION&uly={currency}-USD"
        key = "instId"
    else:  # pragma: no cover - venues are validated earlier
        raise ConfigError(f"stream.{venue}.instruments", "options selection unsupported", "list instruments")
    try:
        with urllib.request.urlopen(url, timeout=timeout_secs) as response:  # noqa: S310 - URL built from config
            body = json.loads(response.read())
    except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"stream.{venue}.instruments", f"could not list {currency} options from {url}: {exc}", "check the venue URL or list instruments"
        ) from exc
    rows = body.get("result") if venue == "deribit" else body.get("data")
    return sorted(row[key] for row in rows or [])
