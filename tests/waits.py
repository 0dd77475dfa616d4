"""Bounded waits on a condition: tests wait for what they need to see, never for a fixed time as the proof."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    check: Callable[[], T], timeout: float, what: str, *, every: float = 0.5, detail: Callable[[], str] = str
) -> T:
    """Poll ``check`` until it returns something true, and return that; after ``timeout`` seconds an
    AssertionError names ``what``, with ``detail()`` (a log's tail, say) appended."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}: {detail()}".rstrip(": "))
        time.sleep(every)
