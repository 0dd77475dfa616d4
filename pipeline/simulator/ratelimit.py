"""Token buckets for the venues' REST limits (e.g. OKX ``history-trades``: 20 requests per 2 s per IP)."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(slots=True)
class TokenBucket:
    """``capacity`` requests per ``per_s`` seconds, refilled continuously."""

    capacity: float
    per_s: float
    tokens: float = -1.0
    stamp: float = 0.0

    def take(self, now: float | None = None, n: float = 1.0) -> bool:
        """Consume ``n`` tokens if available; False means "too many requests"."""
        now = time.monotonic() if now is None else now
        if self.tokens < 0:  # first use: start full
            self.tokens, self.stamp = self.capacity, now
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.capacity / self.per_s)
        self.stamp = now
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False


class RestLimiter:
    """Buckets keyed by (venue, endpoint, client ip), created on first use from a limits table.

    ``limits`` maps an endpoint key to ``(requests, per_seconds)``; endpoints not in the table are unlimited.
    """

    def __init__(self, limits: dict[str, tuple[float, float]] | None = None) -> None:
        self.limits: dict[str, tuple[float, float]] = dict(limits or {})
        self._buckets: dict[tuple[str, str, str], TokenBucket] = {}

    def set_limits(self, limits: dict[str, tuple[float, float]]) -> None:
        self.limits.update(limits)

    def allow(self, venue: str, endpoint: str, ip: str, now: float | None = None) -> bool:
        limit = self.limits.get(f"{venue}:{endpoint}")
        if limit is None:
            return True
        key = (venue, endpoint, ip)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(capacity=limit[0], per_s=limit[1])
        return bucket.take(now)


class SlidingWindow:
    """At most ``limit`` events per ``window_s`` per key (WS handshakes per IP, subscribes per connection)."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._events: dict[str, list[float]] = {}

    def allow(self, key: str, now: float | None = None) -> bool:
        if self.limit <= 0:
            return True
        now = time.monotonic() if now is None else now
        events = [t for t in self._events.get(key, ()) if now - t < self.window_s]
        if len(events) >= self.limit:
            self._events[key] = events
            return False
        events.append(now)
        self._events[key] = events
        return True
