"""Venue modules (one per exchange, same shape: see ``pipeline.venues.base``) and their registry."""

from __future__ import annotations

import importlib
from types import ModuleType

from pipeline.errors import ConfigError

VENUES: tuple[str, ...] = ("okx", "deribit")


def get_venue(name: str) -> ModuleType:
    """The venue module for ``name`` ("okx" | "deribit"); ConfigError naming the known venues otherwise."""
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in VENUES:
        raise ConfigError("venue", f"unknown venue {name!r}", f"use one of: {', '.join(VENUES)}")
    return importlib.import_module(f"pipeline.venues.{key}")


__all__ = ["VENUES", "get_venue"]
