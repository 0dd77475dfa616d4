"""REST transport for backfill: ccxt's async exchange classes behind our own per-endpoint rate limiter,
with retries and exponential backoff.

Why our own limiter: ccxt's throttle is one bucket per exchange with per-endpoint costs (for OKX
``history-trades`` that works out at ~4.5 requests/s), while the venues meter each endpoint separately
(OKX: 20 requests per 2 s per endpoint). So ccxt's ``enableRateLimit`` is switched off and every call
waits on a token bucket sized from the venue module's documented limit; the wait is measured, so a
benchmark can show the limit (not the code) is the bottleneck.

Retries (tenacity): 429, 5xx, timeouts and the venue's "try again" codes are retried with exponential
backoff and jitter; every other error (a 4xx that will never succeed: unknown instrument, bad parameter)
is raised at once as ``VenueRequestError``, and so is a refused connection (nothing listens at the URL:
retrying would only make the user wait), with a message naming the URL.
"""

from __future__ import annotations

import asyncio
import errno
import re
import time
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import ccxt.async_support as ccxt_async
from ccxt.base.errors import BaseError as CcxtError
from ccxt.base.errors import DDoSProtection, NetworkError, RateLimitExceeded
from tenacity import AsyncRetrying, RetryCallState, RetryError, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_base, wait_exponential, wait_random_exponential

from pipeline.errors import ConfigError, CryptolakeError

_CODE = re.compile(r'"code"\s*:\s*"?(-?\d+)')


class VenueRequestError(CryptolakeError):
    """A venue refused a REST request for good (4xx) or kept failing after every retry."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: initial, x2 per attempt, capped; jitter takes 50-100 % of each step."""

    max_attempts: int = 8
    initial_backoff_secs: float = 0.5
    max_backoff_secs: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.initial_backoff_secs < 0 or self.max_backoff_secs < self.initial_backoff_secs:
            raise ConfigError("retry", f"invalid retry policy {self}", "use max_attempts >= 1 and 0 <= initial <= max")

    def wait(self) -> wait_base:
        """The tenacity wait: half of each step fixed, half uniformly random (= step x U(0.5, 1))."""
        half, cap = self.initial_backoff_secs / 2, self.max_backoff_secs / 2
        return wait_exponential(multiplier=half, max=cap) + wait_random_exponential(multiplier=half, max=cap)


class TokenBucket:
    """``requests`` per ``per_secs``, refilled continuously, starting full. ``acquire`` waits for a token
    and returns how long it waited (the limiter's share of the run time)."""

    def __init__(self, requests: float, per_secs: float) -> None:
        self.capacity = float(requests)
        self.rate_per_sec = requests / per_secs
        self.tokens = self.capacity
        self.stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> float:
        entered = time.monotonic()
        async with self._lock:  # FIFO among waiters: nobody starves
            while True:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate_per_sec)
                self.stamp = now
                if self.tokens >= 1.0:
                    self.tokens -= 1.0
                    return now - entered  # queueing behind other callers counts as waiting too
                await asyncio.sleep((1.0 - self.tokens) / self.rate_per_sec)


@dataclass
class RestStats:
    requests: int = 0  # sent, including the ones that failed
    retries: int = 0
    rate_limited: int = 0  # 429 answers
    server_errors: int = 0  # 5xx / "try again" answers and network errors
    limiter_wait_secs: float = 0.0
    backoff_secs: float = 0.0
    per_endpoint: dict[str, int] = field(default_factory=dict)


class RestClient:
    """One ccxt exchange + limiter + retry policy for one venue.

    ``venue`` is a backfill venue module (``pipeline.backfill.okx`` / ``deribit``): it names the ccxt class,
    the per-endpoint limits and the venue's retryable error codes. ``rest_url`` replaces the REST base
    (scheme + host + port), e.g. the simulator's ``http://127.0.0.1:8765``; None keeps the real venue.
    ``max_requests_per_sec`` caps every endpoint below the venue's limit (politeness, slow tests).
    """

    def __init__(
        self,
        venue: ModuleType,
        rest_url: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        max_requests_per_sec: float | None = None,
        timeout_secs: float = 20.0,
    ) -> None:
        if rest_url is not None and not re.match(r"^https?://[^/\s]+$", rest_url.rstrip("/")):
            raise ConfigError(
                "rest_url", f"{rest_url!r} is not an http(s) base URL", "use e.g. http://127.0.0.1:8765 or omit it"
            )
        if max_requests_per_sec is not None and max_requests_per_sec <= 0:
            raise ConfigError("max_requests_per_sec", f"{max_requests_per_sec} is not positive", "use e.g. 5")
        self.venue = venue
        self.retry = retry or RetryPolicy()
        self.stats = RestStats()
        self._cap = max_requests_per_sec
        self._buckets: dict[str, TokenBucket] = {}
        exchange_class = getattr(ccxt_async, venue.CCXT_CLASS)
        self.exchange = exchange_class({"enableRateLimit": False, "timeout": int(timeout_secs * 1000)})
        if rest_url is not None:
            self.exchange.urls["api"] = {"rest": rest_url.rstrip("/")}
        self.base_url: str = self.exchange.implode_hostname(self.exchange.urls["api"]["rest"])

    def limit_per_sec(self, endpoint: str) -> float:
        """The rate this client allows on ``endpoint`` (requests per second)."""
        requests, per_secs = self.venue.REST_LIMITS.get(endpoint, self.venue.DEFAULT_REST_LIMIT)
        rate = requests / per_secs * self.venue.LIMIT_SAFETY
        return min(rate, self._cap) if self._cap else rate

    def _bucket(self, endpoint: str) -> TokenBucket:
        bucket = self._buckets.get(endpoint)
        if bucket is None:
            requests, _ = self.venue.REST_LIMITS.get(endpoint, self.venue.DEFAULT_REST_LIMIT)
            rate = self.limit_per_sec(endpoint)
            # burst no larger than the venue's own bucket, and one second's worth when capped below it
            burst = min(float(requests), max(1.0, rate)) if self._cap else float(requests)
            bucket = self._buckets[endpoint] = TokenBucket(burst, burst / rate)
        return bucket

    async def call(self, endpoint: str, method: str, params: dict[str, Any]) -> Any:
        """``exchange.<method>(params)`` (a ccxt implicit endpoint) under the limiter, with retries."""
        fn = getattr(self.exchange, method)
        bucket = self._bucket(endpoint)

        async def send() -> Any:
            self.stats.limiter_wait_secs += await bucket.acquire()
            self.stats.requests += 1
            self.stats.per_endpoint[endpoint] = self.stats.per_endpoint.get(endpoint, 0) + 1
            return await fn(params)

        retrying = AsyncRetrying(
            retry=retry_if_exception(self._retryable),
            stop=stop_after_attempt(self.retry.max_attempts),
            wait=self.retry.wait(),
            before_sleep=self._count_backoff,
        )
        try:
            return await retrying(send)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise VenueRequestError(
                f"{self.venue.NAME} {endpoint}: still failing after {self.retry.max_attempts} attempts: {type(last).__name__}: {last}"
            ) from last
        except CcxtError as exc:
            if _refused(exc):
                raise VenueRequestError(
                    f"{self.venue.NAME} REST at {self.base_url} refused the connection: nothing is listening there. "
                    "Check --rest-url (`cryptolake sim` serves http://127.0.0.1:8765 by default), or omit it for the real venue"
                ) from exc
            raise VenueRequestError(f"{self.venue.NAME} {endpoint} {params}: {type(exc).__name__}: {exc}") from exc

    def _count_backoff(self, state: RetryCallState) -> None:
        self.stats.retries += 1
        self.stats.backoff_secs += state.upcoming_sleep

    def _retryable(self, exc: BaseException) -> bool:
        if not isinstance(exc, CcxtError) or _refused(exc):
            return False  # a closed port stays closed: fail at once instead of backing off for a minute
        if isinstance(exc, (RateLimitExceeded, DDoSProtection)):
            self.stats.rate_limited += 1
            return True
        code = _CODE.search(str(exc))
        if code and code.group(1) in self.venue.RETRY_CODES:  # e.g. Deribit 11094 on a 503 maps to ExchangeError
            self.stats.server_errors += 1
            return True
        if isinstance(exc, NetworkError):  # 5xx, maintenance, timeouts, connections dropped
            self.stats.server_errors += 1
            return True
        return False

    async def close(self) -> None:
        await self.exchange.close()

    async def __aenter__(self) -> RestClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _refused(exc: BaseException) -> bool:
    """ccxt reports a refused connection as ``ExchangeNotAvailable``, like a 503; the cause tells them apart."""
    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED:
            return True
        cause = cause.__cause__
    return False
