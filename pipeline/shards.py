"""Shards of the stream: one venue x an instrument set x channels, each captured by its own collector.

A shard is the unit Prefect places on a worker (one flow run each, guarded by a concurrency slot of 1 in
flows/slots.py), so two shards must never capture the same (instrument, channel) of a venue: the rows would
land twice. Without ``[[stream.shards]]`` every configured venue is one shard, named after the venue.

Each shard's collector writes under its own stream name (``<stream.name>-<shard>``): the name keys its spool,
its restart state and its exactly-once application transactions, which two collectors must never share.
config.py parses the tables; this module owns what makes a set of shards valid.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import combinations
from typing import Protocol

from pipeline.errors import ConfigError

UNIVERSE = "universe"  # the same literal as pipeline.config.UNIVERSE (which imports this module)


class VenueLike(Protocol):
    """What a shard takes from a venue's table (pipeline.config.VenueStreamConfig)."""

    @property
    def venue(self) -> str: ...
    @property
    def instruments(self) -> tuple[str, ...] | str: ...
    @property
    def extra(self) -> tuple[str, ...]: ...
    @property
    def channels(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class Shard:
    name: str
    venue: str
    instruments: tuple[str, ...] | str  # names, "options:ETH" or "universe", as a venue table takes them
    extra: tuple[str, ...]
    channels: tuple[str, ...]
    key: str = ""  # where it was declared (stream.shards[i]), for error messages; "" when derived


def stream_name(base: str, shard: str) -> str:
    """The collector name of ``shard`` under the configuration's ``stream.name``."""
    return f"{base}-{shard}"


def default_shards(venues: Iterable[VenueLike]) -> tuple[Shard, ...]:
    """One shard per configured venue, named after it (existing configurations need no shard tables)."""
    return tuple(Shard(v.venue, v.venue, v.instruments, v.extra, v.channels) for v in venues)


def check_shards(shards: tuple[Shard, ...], venues: Mapping[str, VenueLike]) -> None:
    """Names unique, every configured venue streamed by some shard, no (instrument, channel) in two shards."""
    seen: dict[str, Shard] = {}
    for shard in shards:
        if shard.name in seen:
            raise ConfigError(
                f"{shard.key}.name",
                f"shard name {shard.name!r} is already used by {seen[shard.name].key}",
                "give every [[stream.shards]] its own name (it names the collector, its spool and its slot)",
            )
        seen[shard.name] = shard
        if not shard.channels:
            raise ConfigError(f"{shard.key}.channels", "is empty", 'list the channels it captures, e.g. ["trades"]')
        if shard.instruments == () and not shard.extra:
            raise ConfigError(f"{shard.key}.instruments", "is empty", 'list its instruments, e.g. ["BTC-USDT"]')
    streamed = {s.venue for s in shards}
    for venue in venues:
        if venue not in streamed:
            raise ConfigError(
                f"stream.{venue}",
                "is configured but no [[stream.shards]] streams it (it would silently not be captured)",
                f'add a shard with venue = "{venue}", or remove [stream.{venue}]',
            )
    for a, b in combinations(shards, 2):
        clash = _overlap(a, b)
        if clash:
            raise ConfigError(
                f"{b.key}.instruments",
                f"shard {b.name!r} and shard {a.name!r} ({a.key}) both capture {b.venue} {clash}",
                "give each instrument and channel of a venue to one shard: split the instruments or the channels",
            )


def _overlap(a: Shard, b: Shard) -> str:
    """A description of one (instrument, channel) both shards would capture, or ""."""
    if a.venue != b.venue:
        return ""
    channels = sorted(set(a.channels) & set(b.channels))
    if not channels:
        return ""
    both = _common_instrument(a, b)
    return f"{both} on channel {channels[0]!r}" if both else ""


def _common_instrument(a: Shard, b: Shard) -> str:
    names_a, names_b = set(a.extra), set(b.extra)
    if isinstance(a.instruments, tuple):
        names_a |= set(a.instruments)
    if isinstance(b.instruments, tuple):
        names_b |= set(b.instruments)
    if names_a & names_b:
        return repr(sorted(names_a & names_b)[0])
    # A dynamic set ("universe", "options:ETH") is only known while streaming: judge what it can contain.
    for dyn, other, other_names in ((a.instruments, b.instruments, names_b), (b.instruments, a.instruments, names_a)):
        if not isinstance(dyn, str):
            continue
        if dyn == UNIVERSE or dyn == other:  # "universe" can hold anything; both orders are tried
            return f"the instruments of {dyn!r}"
        inside = sorted(n for n in other_names if _may_contain(dyn, n))
        if inside:
            return f"{inside[0]!r} (one of {dyn!r})"
    return ""


def _may_contain(spec: str, name: str) -> bool:
    """Whether the dynamic set ``spec`` ("options:ETH") can include ``name`` (an option of that currency)."""
    currency = spec.removeprefix("options:")
    return name.split("-")[0] == currency and name.endswith(("-C", "-P"))
