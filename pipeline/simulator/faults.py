"""Fault injection: what to break, and a counter for every fault actually injected.

Faults are set at start (``SimConfig.faults``, CLI flags) and changed at run time through
``POST /sim/faults`` (a partial JSON update). Every injected fault is counted in ``Counters`` so a test can
compare what the simulator did with what a client observed (``GET /sim/state``).

Semantics (shared by both venues):

- ``drop_every_s``: every N s the server closes every WS connection (counter ``drops`` per connection).
- ``silence_for_s`` (+ ``silence_every_s``): the server sends nothing at all for N s -- no data, no acks,
  no pongs (counter ``silences`` per window, ``frames_suppressed`` per frame not sent). With
  ``silence_every_s == 0`` setting ``silence_for_s`` starts one window immediately.
- ``malformed_rate``: probability per data frame that an extra malformed frame is sent right before it
  (truncated JSON, a wrong value type such as ``px`` as an object, or an unknown channel). Extra, not
  instead: the real data still arrives, so completeness checks stay exact (``malformed_sent``). A frame is
  counted when it is queued for a connection; one queued just before a drop may never leave, so the
  writers also count ``malformed_delivered`` when a malformed frame was actually written to the socket
  (the number a client's rejects must equal).
- ``error_rate``: probability per data frame of an extra venue error event (``errors_sent``).
- ``duplicate_rate`` / ``out_of_order_rate``: probability per trades frame of re-sending it once more
  (``duplicates_sent``) or of holding it back and sending it after the next trades frame of that
  connection (``out_of_order_sent``, counted when it goes out after the later frame; a held frame released
  without a later one -- after 1 s, or on unsubscribe -- is in order and not counted). Ground truth lists
  each trade once.
- ``burst_frames_per_s`` + ``burst_for_s``: extra trades at that total rate for N s, round robin over every
  non-option instrument of both venues (OKX gets 50 of 51 shares), one trade per frame (``burst_trades``,
  ``burst_trades.<venue>``). They are real trades and part of the ground truth.
- ``crossed_quote_rate``: probability per quote that the market publishes a crossed book (``crossed_quotes``).
- ``rest_429_rate`` / ``rest_5xx_rate``: probability per REST request of a 429 / 503 answer with the venue's
  real error body (``rest_429``, ``rest_5xx``).
- ``book_skip_rate`` / ``book_duplicate_rate`` / ``book_cross_rate`` / ``book_checksum_rate``: probability per
  book update message (OKX ``books``/``books-l2-tbt``/``books50-l2-tbt``, Deribit ``book.*``; one draw per
  update of each channel and instrument, seeded) that it is not sent (the next one's prev seq points at it),
  sent twice, carries an extra bid at the best ask (the book crosses), or carries a wrong checksum (OKX only).
  The 3 updates after a fault of a stream are clean, so each break shows on its own. Counted per kind
  (``book_faults.<kind>``) and per venue/channel/instrument (``GET /sim/book-faults``).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from pipeline.errors import ConfigError


@dataclass(frozen=True, slots=True)
class FaultSettings:
    """The fault knobs; all off by default. Rates are probabilities in [0, 1]."""

    drop_every_s: float = 0.0
    silence_every_s: float = 0.0
    silence_for_s: float = 0.0
    malformed_rate: float = 0.0
    error_rate: float = 0.0
    duplicate_rate: float = 0.0
    out_of_order_rate: float = 0.0
    burst_frames_per_s: float = 0.0
    burst_for_s: float = 0.0
    crossed_quote_rate: float = 0.0
    rest_429_rate: float = 0.0
    rest_5xx_rate: float = 0.0
    book_skip_rate: float = 0.0
    book_checksum_rate: float = 0.0
    book_cross_rate: float = 0.0
    book_duplicate_rate: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"simulator.faults.{f.name}", f"{value!r} is not a number >= 0", "use e.g. 0.01")
            if f.name.endswith("_rate") and value > 1:
                raise ConfigError(f"simulator.faults.{f.name}", f"{value} > 1", "rates are probabilities 0..1")

    @classmethod
    def from_mapping(cls, values: dict[str, Any], base: FaultSettings | None = None) -> FaultSettings:
        """``base`` updated with ``values`` (a partial update); unknown keys raise ``ConfigError``."""
        known = {f.name for f in fields(cls)}
        for key in values:
            if key not in known:
                raise ConfigError(f"simulator.faults.{key}", "unknown fault", f"use one of {sorted(known)}")
        return replace(base or cls(), **{k: float(v) for k, v in values.items()})

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


class MalformedFrame(bytes):
    """The bytes of an injected malformed frame: the connection writers count ``malformed_delivered`` when
    one leaves (frames still queued when a connection is dropped never reach the client)."""

    __slots__ = ()


class Counters(Counter):
    """A ``collections.Counter`` of named events with ``inc``; snapshot with ``dict(counters)``."""

    def inc(self, name: str, n: int = 1) -> None:
        self[name] += n


class Faults:
    """Run-time fault state: current settings, counters, and the timing of windows (silence, burst, drops).

    One instance per simulator, shared by both venues. Decisions use a seeded RNG so a run with the same seed
    and the same traffic injects faults at the same frames.
    """

    def __init__(self, settings: FaultSettings, counters: Counters, seed: int = 0) -> None:
        self.counters = counters
        self.rng = random.Random(seed ^ 0x5EED)
        self.settings = FaultSettings()
        self._silent_until = 0.0
        self._next_silence = 0.0
        self._burst_until = 0.0
        self._next_drop = 0.0
        self.update(settings.as_dict())

    # -- settings -----------------------------------------------------------------------------------------
    def update(self, values: dict[str, Any], now: float | None = None) -> FaultSettings:
        """Apply a partial update; (re)starts silence/burst windows and the drop schedule it touches."""
        now = time.monotonic() if now is None else now
        self.settings = FaultSettings.from_mapping(values, self.settings)
        s = self.settings
        if "silence_for_s" in values or "silence_every_s" in values:
            if s.silence_for_s > 0 and s.silence_every_s == 0:
                self._start_silence(now)
            self._next_silence = now + s.silence_every_s if s.silence_every_s > 0 else 0.0
        if "burst_frames_per_s" in values or "burst_for_s" in values:
            self._burst_until = now + s.burst_for_s if s.burst_frames_per_s > 0 and s.burst_for_s > 0 else 0.0
        if "drop_every_s" in values:
            self._next_drop = now + s.drop_every_s if s.drop_every_s > 0 else 0.0
        return s

    # -- windows, driven by the server's tick loop ---------------------------------------------------------
    def _start_silence(self, now: float) -> None:
        self._silent_until = now + self.settings.silence_for_s
        self.counters.inc("silences")

    def tick(self, now: float | None = None) -> bool:
        """Advance the schedules; returns True when all connections are to be dropped now."""
        now = time.monotonic() if now is None else now
        s = self.settings
        if s.silence_every_s > 0 and s.silence_for_s > 0 and self._next_silence and now >= self._next_silence:
            self._start_silence(now)
            self._next_silence = now + s.silence_every_s
        if self._next_drop and now >= self._next_drop:
            self._next_drop = now + s.drop_every_s
            return True
        return False

    def silent(self, now: float | None = None) -> bool:
        return (time.monotonic() if now is None else now) < self._silent_until

    def burst_rate(self, now: float | None = None) -> float:
        """Extra trades per second in total right now (0 outside a burst window)."""
        now = time.monotonic() if now is None else now
        return self.settings.burst_frames_per_s if now < self._burst_until else 0.0

    # -- per-frame decisions --------------------------------------------------------------------------------
    def roll(self, rate: float) -> bool:
        return rate > 0 and self.rng.random() < rate

    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "settings": self.settings.as_dict(),
            "silent": self.silent(now),
            "silent_for_s_left": max(0.0, self._silent_until - now),
            "burst_for_s_left": max(0.0, self._burst_until - now),
        }
