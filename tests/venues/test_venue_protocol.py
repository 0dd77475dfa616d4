"""Every venue module has the shape of ``pipeline.venues.base.Venue``: each member of the protocol, with the
protocol's signature (mypy checks the same statically, in ``pipeline/venues/__init__.py``)."""

from __future__ import annotations

import inspect
import typing
from types import ModuleType

import pytest

from pipeline.venues import VENUES, get_venue
from pipeline.venues.base import Venue

DATA_MEMBERS = typing.get_type_hints(Venue)  # NAME, WS_BASE, ... -> their types
METHODS = {name: fn for name, fn in vars(Venue).items() if inspect.isfunction(fn) and not name.startswith("_")}


def test_the_protocol_lists_what_the_collector_and_backfill_use() -> None:
    assert {"NAME", "WS_BASE", "WS_URL", "REST_URL", "CHANNELS"} <= set(DATA_MEMBERS)
    assert {"market_of", "subscribe_frames", "parse", "trade_row", "candle_row", "listing_paths"} <= set(METHODS)


@pytest.fixture(params=VENUES)
def venue(request: pytest.FixtureRequest) -> ModuleType:
    module = get_venue(request.param)
    assert isinstance(module, ModuleType) and module.NAME == request.param
    return module


def test_data_members_have_the_protocols_types(venue: ModuleType) -> None:
    for name, kind in DATA_MEMBERS.items():
        value = getattr(venue, name)
        assert isinstance(value, typing.get_origin(kind) or kind), (venue.NAME, name, value)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_functions_take_the_protocols_arguments(venue: ModuleType, name: str) -> None:
    """Same parameter names and kinds in the same order (the protocol's ``self`` aside), and the protocol's
    defaults (a venue may add one where the protocol has none); a venue may add keyword-only parameters
    with defaults (Deribit's ``candle_row(confirm=...)``)."""
    fn = getattr(venue, name, None)
    assert callable(fn), f"{venue.NAME} has no function {name}"
    want = list(inspect.signature(METHODS[name]).parameters.values())[1:]
    got = list(inspect.signature(fn).parameters.values())
    assert [(p.name, p.kind) for p in got[: len(want)]] == [(p.name, p.kind) for p in want], (venue.NAME, name)
    for p, q in zip(want, got, strict=False):
        assert p.default is inspect.Parameter.empty or q.default == p.default, (venue.NAME, name, q)
    for extra in got[len(want) :]:
        assert extra.kind is inspect.Parameter.KEYWORD_ONLY and extra.default is not inspect.Parameter.empty, (
            venue.NAME,
            name,
            extra,
        )
