"""REST pages to bronze rows through the venue module's row builders (the WebSocket parser's own checks)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pipeline.errors import FrameError, VenueResponseError


def page_rows(
    venue: str, endpoint: str, instrument: str, page: Iterable[Any], build: Callable[[Any], tuple[Any, ...]]
) -> list[tuple[Any, ...]]:
    """``build`` over every item of a page. Backfill has no rejects table, and a row dropped quietly would
    be a hole nobody sees: a row the venue parser refuses stops the backfill, naming endpoint and field."""
    try:
        return [build(item) for item in page]
    except FrameError as exc:
        raise VenueResponseError(venue, endpoint, instrument, exc.reason) from None
