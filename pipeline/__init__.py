"""cryptolake: a crypto market-data lakehouse. ``import pipeline`` stays cheap: the public helpers below
are imported on first use."""

from __future__ import annotations

from typing import Any

__all__ = ["refresh"]


def __getattr__(name: str) -> Any:
    # PEP 562 lazy export: `from pipeline import refresh` imports pipeline.refreshing only when asked for.
    if name == "refresh":
        from pipeline.refreshing import refresh

        globals()["refresh"] = refresh
        return refresh
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
