"""Venue modules (one per exchange, same shape: see ``pipeline.venues.base``) and their registry."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, cast

from pipeline.errors import ConfigError

if TYPE_CHECKING:  # mypy checks each venue module against the protocol; at run time they load on demand
    from pipeline.venues import deribit, okx
    from pipeline.venues.base import Venue

    _CHECKED: tuple[Venue, ...] = (okx, deribit)

VENUES: tuple[str, ...] = ("okx", "deribit")


def get_venue(name: str) -> Venue:
    """The venue module for ``name`` ("okx" | "deribit"); ConfigError naming the known venues otherwise."""
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in VENUES:
        raise ConfigError("venue", f"unknown venue {name!r}", f"use one of: {', '.join(VENUES)}")
    return cast("Venue", importlib.import_module(f"pipeline.venues.{key}"))


__all__ = ["VENUES", "get_venue"]
