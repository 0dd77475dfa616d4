"""Configuration: a TOML file (``config/cryptolake.toml`` by default) with every key checked.

Unknown keys are errors, not silently ignored: a typo such as ``flush_intreval_secs`` would otherwise
leave the default in force and nobody would know.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeGuard

from pipeline.errors import ConfigError
from pipeline.shards import UNIVERSE as UNIVERSE  # instruments = "universe": follow silver/instruments
from pipeline.shards import Shard, check_shards, default_shards, stream_name
from pipeline.stream_settings import StreamSettings

CONFIG_ENV = "CRYPTOLAKE_CONFIG"
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "cryptolake.toml"
SIM = "sim"
SHARD_KEYS = ("name", "venue", "instruments", "extra", "channels")


@dataclass(frozen=True)
class VenueStreamConfig:
    venue: str
    url: str = SIM
    instruments: tuple[str, ...] | str = ()
    extra: tuple[str, ...] = ()
    channels: tuple[str, ...] = ("trades", "quotes", "ticker")


@dataclass(frozen=True)
class StreamConfig:
    name: str = "default"
    settings: StreamSettings = field(default_factory=StreamSettings)
    venues: dict[str, VenueStreamConfig] = field(default_factory=dict)
    shards: tuple[Shard, ...] = ()  # as declared by [[stream.shards]]; shard_list() fills in the default

    def shard_list(self) -> tuple[Shard, ...]:
        """The shards of the configured venues: the declared ones, else one per venue (pipeline/shards.py)."""
        declared = tuple(s for s in self.shards if s.venue in self.venues)
        return declared or default_shards(self.venues.values())

    def for_shard(self, shard: str) -> StreamConfig:
        """The configuration of one shard's collector: its venue, instruments and channels, its own name."""
        found = {s.name: s for s in self.shard_list()}
        if shard not in found:
            raise ConfigError(
                "shard", f"no shard named {shard!r} in this configuration", "use one of: " + ", ".join(sorted(found))
            )
        s = found[shard]
        venue = VenueStreamConfig(s.venue, self.venues[s.venue].url, s.instruments, s.extra, s.channels)
        return replace(self, name=stream_name(self.name, s.name), venues={s.venue: venue}, shards=())


def load_config(path: str | Path | None = None) -> StreamConfig:
    """Read and validate the configuration file (``--config``, else ``$CRYPTOLAKE_CONFIG``, else the default)."""
    chosen = Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)
    try:
        raw = tomllib.loads(chosen.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(
            "--config", f"{chosen} does not exist", "pass an existing TOML file or omit --config"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(chosen), f"not valid TOML ({exc})", "fix the syntax at the position shown") from exc
    except IsADirectoryError as exc:
        raise ConfigError(
            "--config", f"{chosen} is a folder", "pass the TOML file itself, e.g. config/cryptolake.toml"
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("--config", f"{chosen} is not a text file ({exc.reason})", "pass a TOML file") from exc
    except OSError as exc:
        raise ConfigError(
            "--config", f"{chosen} cannot be read ({exc.strerror})", "check the path and its permissions"
        ) from exc
    return parse_config(raw, source=str(chosen))


def parse_config(raw: dict[str, Any], *, source: str = "config") -> StreamConfig:
    unknown = set(raw) - {"stream"}
    if unknown:
        raise ConfigError(f"{source}: {sorted(unknown)[0]}", "unknown section", "the known section is [stream]")
    stream = dict(raw.get("stream", {}))
    name = stream.pop("name", "default")
    if not _simple(name):
        raise ConfigError("stream.name", f"{name!r} is not a simple name", "use letters, digits, '-' and '_'")
    from pipeline.venues import VENUES

    venues: dict[str, VenueStreamConfig] = {}
    for venue in VENUES:
        if venue in stream:
            venues[venue] = _venue_config(venue, stream.pop(venue))
    shards = _shards(stream.pop("shards"), venues) if "shards" in stream else ()
    allowed = {f.name for f in fields(StreamSettings)}
    bad = set(stream) - allowed
    if bad:
        key = sorted(bad)[0]
        raise ConfigError(
            f"stream.{key}",
            "unknown key",
            "known keys: " + ", ".join(sorted(allowed | set(VENUES) | {"name", "shards"})),
        )
    try:
        settings = StreamSettings(**stream)
    except TypeError as exc:
        raise ConfigError("stream", str(exc), "check the value types against config/cryptolake.toml") from exc
    return StreamConfig(name=name, settings=settings, venues=venues, shards=shards)


def _shards(raw: Any, venues: dict[str, VenueStreamConfig]) -> tuple[Shard, ...]:
    """``[[stream.shards]]``: each table is a venue table's instruments/extra/channels (the venue's own when
    left out) under a name; the venue's url applies. pipeline/shards.py checks the set as a whole."""
    from pipeline.venues import VENUES

    how = 'write each as [[stream.shards]] with name = "...", venue = "okx", instruments = [...], channels = [...]'
    if not isinstance(raw, list):
        raise ConfigError("stream.shards", "must be an array of tables", how)
    out = []
    for i, table in enumerate(raw):
        key = f"stream.shards[{i}]"
        if not isinstance(table, dict):
            raise ConfigError(key, "must be a table", how)
        bad = set(table) - set(SHARD_KEYS)
        if bad:
            raise ConfigError(f"{key}.{sorted(bad)[0]}", "unknown key", "known keys: " + ", ".join(SHARD_KEYS))
        name, venue = table.get("name"), table.get("venue")
        if not _simple(name):
            raise ConfigError(f"{key}.name", f"{name!r} is not a simple name", "use letters, digits, '-' and '_'")
        if venue not in venues:
            fix = f"add [stream.{venue}] with its url" if venue in VENUES else "one of: " + ", ".join(VENUES)
            raise ConfigError(f"{key}.venue", f"{venue!r} is not a configured venue", fix)
        base = venues[venue]
        inherited: dict[str, Any] = {"channels": list(base.channels)}
        if "instruments" not in table:  # the venue's set, with its extra names
            inherited.update(instruments=_as_toml(base.instruments), extra=list(base.extra))
        rest = {k: v for k, v in table.items() if k not in ("name", "venue")}
        cfg = _venue_config(venue, {**inherited, **rest, "url": base.url}, key=key)
        out.append(Shard(name, venue, cfg.instruments, cfg.extra, cfg.channels, key=key))
    shards = tuple(out)
    check_shards(shards, venues)
    return shards


def _as_toml(instruments: tuple[str, ...] | str) -> list[str] | str:
    return instruments if isinstance(instruments, str) else list(instruments)


def _simple(name: object) -> TypeGuard[str]:
    return isinstance(name, str) and bool(name) and name.replace("-", "").replace("_", "").isalnum()


def _venue_config(venue: str, raw: Any, *, key: str = "") -> VenueStreamConfig:
    """A venue table ``[stream.<venue>]`` (or a shard's part of one, reported under ``key``)."""
    key = key or f"stream.{venue}"
    if not isinstance(raw, dict):
        raise ConfigError(key, "must be a table", f"write it as [{key}]")
    allowed = {"url", "instruments", "extra", "channels"}
    bad = set(raw) - allowed
    if bad:
        raise ConfigError(f"{key}.{sorted(bad)[0]}", "unknown key", "known keys: " + ", ".join(sorted(allowed)))
    url = raw.get("url", SIM)
    if not isinstance(url, str) or not (url == SIM or url.startswith(("ws://", "wss://"))):
        raise ConfigError(f"{key}.url", f"{url!r} is not a WebSocket base URL", 'use "sim" or a ws:// / wss:// URL')
    instruments = raw.get("instruments", ())
    if isinstance(instruments, str):
        if not (instruments.startswith("options:") or instruments == UNIVERSE):
            raise ConfigError(
                f"{key}.instruments",
                f"{instruments!r} is not a list",
                'give a list of names, "options:ETH", or "universe" (silver/instruments, see `cryptolake universe`)',
            )
    elif isinstance(instruments, list) and all(isinstance(i, str) and i for i in instruments):
        instruments = tuple(instruments)
    else:
        raise ConfigError(f"{key}.instruments", "must be a list of instrument names", 'e.g. ["BTC-USDT"]')
    channels = raw.get("channels", ["trades", "quotes", "ticker"])
    extra = raw.get("extra", [])
    for name, value in (("channels", channels), ("extra", extra)):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key}.{name}", "must be a list of strings", f'e.g. {name} = ["trades"]')
    return VenueStreamConfig(venue, url, instruments, tuple(extra), tuple(channels))
