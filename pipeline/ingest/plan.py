"""Which connections to open: subscriptions grouped by endpoint path (and by whether they need a login),
sharded by channels per connection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.errors import ConfigError
from pipeline.venues.base import Subscription, Venue


@dataclass(frozen=True)
class ConnectionPlan:
    venue: Venue
    url: str
    subs: tuple[Subscription, ...]
    name: str


def plan_connections(
    venue: Venue,
    base_ws_url: str,
    instruments: Sequence[str],
    channels: Sequence[str],
    channels_per_connection: int,
) -> list[ConnectionPlan]:
    """Shard ``instruments x channels`` over connections of at most ``channels_per_connection`` streams.

    ``base_ws_url`` is scheme://host[:port] of the venue or the simulator; each subscription's path comes
    from the venue module (OKX candles live on /ws/v5/business, everything else on /ws/v5/public).
    An instrument's channels stay on one connection where possible, so a drop opens one gap per
    instrument rather than splitting its streams. Subscriptions that need a login (OKX tick-by-tick books) get
    connections of their own: a refused login then stops only them, and public connections never send the key.
    """
    if not instruments:
        raise ConfigError(
            f"stream.{venue.NAME}.instruments", "no instruments configured", "list at least one instrument"
        )
    known = set(venue.CHANNELS)
    for channel in channels:
        if channel not in known:
            raise ConfigError(
                f"stream.{venue.NAME}.channels",
                f"unknown channel {channel!r}",
                "use one of " + ", ".join(sorted(known)),
            )
    by_path: dict[tuple[str, bool], list[Subscription]] = {}
    for instrument in instruments:
        applying = _channels_for(venue, instrument)
        for channel in channels:
            if applying is not None and channel not in applying:
                continue  # e.g. funding on a spot pair: the venue would refuse it
            sub = Subscription(channel, instrument)
            key = (venue.ws_path_for(sub), venue.needs_login(sub))
            by_path.setdefault(key, []).append(sub)
    plans: list[ConnectionPlan] = []
    root = base_ws_url.rstrip("/")
    for (path, login), subs in by_path.items():
        for start in range(0, len(subs), channels_per_connection):
            shard = tuple(subs[start : start + channels_per_connection])
            name = f"{venue.NAME}{path}{'+login' if login else ''}#{len(plans)}"
            plans.append(ConnectionPlan(venue, root + path, shard, name))
    return plans


def _channels_for(venue: Venue, instrument: str) -> tuple[str, ...] | None:
    """The channels that apply to ``instrument``'s market; None (all) for a name the venue does not recognise,
    which the venue's listing check reports."""
    try:
        return venue.channels_for(venue.market_of(instrument))
    except ValueError:
        return None
