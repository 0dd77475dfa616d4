"""Configuration: a TOML file (``config/cryptolake.toml`` by default) with every key checked.

Unknown keys are errors, not silently ignored: a typo such as ``flush_intreval_secs`` would otherwise
leave the default in force and nobody would know.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.stream_settings import StreamSettings

CONFIG_ENV = "CRYPTOLAKE_CONFIG"
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "cryptolake.toml"
SIM = "sim"
UNIVERSE = "universe"  # instruments = "universe": follow silver/instruments while streaming


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
    if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError("stream.name", f"{name!r} is not a simple name", "use letters, digits, '-' and '_'")
    from pipeline.venues import VENUES

    venues: dict[str, VenueStreamConfig] = {}
    for venue in VENUES:
        if venue in stream:
            venues[venue] = _venue_config(venue, stream.pop(venue))
    allowed = {f.name for f in fields(StreamSettings)}
    bad = set(stream) - allowed
    if bad:
        key = sorted(bad)[0]
        raise ConfigError(
            f"stream.{key}", "unknown key", "known keys: " + ", ".join(sorted(allowed | set(VENUES) | {"name"}))
        )
    try:
        settings = StreamSettings(**stream)
    except TypeError as exc:
        raise ConfigError("stream", str(exc), "check the value types against config/cryptolake.toml") from exc
    return StreamConfig(name=name, settings=settings, venues=venues)


def _venue_config(venue: str, raw: Any) -> VenueStreamConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"stream.{venue}", "must be a table", f"write it as [stream.{venue}]")
    allowed = {"url", "instruments", "extra", "channels"}
    bad = set(raw) - allowed
    if bad:
        raise ConfigError(
            f"stream.{venue}.{sorted(bad)[0]}", "unknown key", "known keys: " + ", ".join(sorted(allowed))
        )
    url = raw.get("url", SIM)
    if not isinstance(url, str) or not (url == SIM or url.startswith(("ws://", "wss://"))):
        raise ConfigError(
            f"stream.{venue}.url", f"{url!r} is not a WebSocket base URL", 'use "sim" or a ws:// / wss:// URL'
        )
    instruments = raw.get("instruments", ())
    if isinstance(instruments, str):
        if not (instruments.startswith("options:") or instruments == UNIVERSE):
            raise ConfigError(
                f"stream.{venue}.instruments",
                f"{instruments!r} is not a list",
                'give a list of names, "options:ETH", or "universe" (silver/instruments, see `cryptolake universe`)',
            )
    elif isinstance(instruments, list) and all(isinstance(i, str) and i for i in instruments):
        instruments = tuple(instruments)
    else:
        raise ConfigError(f"stream.{venue}.instruments", "must be a list of instrument names", 'e.g. ["BTC-USDT"]')
    channels = raw.get("channels", ["trades", "quotes", "ticker"])
    extra = raw.get("extra", [])
    for key, value in (("channels", channels), ("extra", extra)):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"stream.{venue}.{key}", "must be a list of strings", f'e.g. {key} = ["trades"]')
    return VenueStreamConfig(venue, url, instruments, tuple(extra), tuple(channels))
