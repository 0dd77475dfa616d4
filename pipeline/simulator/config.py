"""Simulator configuration: one frozen dataclass, validated on construction.

Everything the simulator does is a function of ``SimConfig`` plus the wall clock at start, so a test that
pins ``start_ms`` and ``seed`` gets byte-identical instruments, trades and candles.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, fields, replace
from typing import Any

from pipeline.errors import ConfigError
from pipeline.simulator.faults import FaultSettings
from pipeline.simulator.instruments import MAX_OKX_INSTRUMENTS

DEFAULT_PORT = 8765


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Settings of one simulator run.

    ``start_ms`` pins the simulated "now" at start (the pre-start trade window and the candle history are laid
    out relative to it); ``None`` means the wall clock, which is what the CLI uses. Live time always follows
    the wall clock from there, so trades carry real timestamps.
    """

    seed: int = 42
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT  # 0 = let the OS pick a free port
    okx_instruments: int = 50
    deribit_options: int = 120
    trade_rate_per_instrument_per_s: float = 2.0  # OKX and ETH-PERPETUAL; options trade at 1/10 of this
    tick_ms: int = 100
    history_days: int = 730
    trade_history_minutes: int = 60  # trades exist this long before start, so REST history has depth at once
    history_trade_rate_per_instrument_per_s: float = 2.0  # rate in that pre-start window (capped by the live rate)
    start_ms: int | None = None
    idle_timeout_s: float = 30.0  # WS connections that send nothing this long are closed, like OKX
    ws_connections_per_s: int = 3  # new WS handshakes per second per IP and venue; 0 = unlimited
    subscribe_requests_per_hour: int = 480  # OKX per-connection limit; 0 = unlimited
    rest_rate_limits: bool = True  # enforce the venues' per-endpoint REST limits (429 when exceeded)
    okx_trades_per_frame: int = 0  # 0 = like OKX: one trade per frame, batched only when an instrument is busy
    max_buffered_frames: int = 200_000  # per connection; a client slower than this is disconnected
    book_updates_per_s: float = 40.0  # order-book events per instrument and second (options: a tenth)
    book_checksum: str = "crc32"  # OKX books checksum: "crc32" (the pre-2026 rule) | "zero" (OKX since 2026-06)
    book_ws_snapshot: bool = True  # False: OKX books subscriptions get no snapshot (the client takes the REST one)
    # funding: 1.0 = the venues' real schedules (8 h / 4 h / 1 h); 1/3600 turns each hour into a second so a
    # short run sees settlements (every schedule, history window and push period scales with it)
    funding_interval_scale: float = 1.0
    funding_history_days: float = 92.0  # OKX serves about 3 months of funding-rate-history
    faults: FaultSettings = field(default_factory=FaultSettings)

    def __post_init__(self) -> None:
        _check(isinstance(self.seed, int), "seed", f"must be an integer, got {self.seed!r}", "use e.g. seed=42")
        try:
            addr = ipaddress.ip_address(self.host)
        except ValueError:
            addr = None
        _check(
            addr is not None and addr.is_loopback,
            "host",
            f"{self.host!r} is not a loopback address",
            "the simulator only binds loopback; use 127.0.0.1",
        )
        _check(0 <= self.port <= 65535, "port", f"{self.port} is out of range", "use 0..65535 (0 = any free)")
        _check(
            1 <= self.okx_instruments <= MAX_OKX_INSTRUMENTS,
            "okx_instruments",
            f"{self.okx_instruments} is not in 1..{MAX_OKX_INSTRUMENTS}",
            f"use at most {MAX_OKX_INSTRUMENTS} (25 bases x spot/swap)",
        )
        _check(0 <= self.deribit_options <= 1000, "deribit_options", f"{self.deribit_options}", "use 0..1000")
        _check(
            0 < self.trade_rate_per_instrument_per_s <= 10_000,
            "trade_rate_per_instrument_per_s",
            f"{self.trade_rate_per_instrument_per_s} is not in (0, 10000]",
            "use e.g. 2.0",
        )
        _check(
            0 < self.history_trade_rate_per_instrument_per_s <= 10_000,
            "history_trade_rate_per_instrument_per_s",
            f"{self.history_trade_rate_per_instrument_per_s} is not in (0, 10000]",
            "use e.g. 2.0 (the pre-start window is held in memory)",
        )
        _check(5 <= self.tick_ms <= 5_000, "tick_ms", f"{self.tick_ms} is not in 5..5000", "use e.g. 100")
        _check(1 <= self.history_days <= 3_650, "history_days", f"{self.history_days}", "use 1..3650")
        _check(
            1 <= self.trade_history_minutes <= 1_440,
            "trade_history_minutes",
            f"{self.trade_history_minutes}",
            "use 1..1440 (the pre-start trade window lives in memory)",
        )
        _check(self.idle_timeout_s > 0, "idle_timeout_s", f"{self.idle_timeout_s}", "use a positive number")
        _check(self.ws_connections_per_s >= 0, "ws_connections_per_s", "negative", "use 0 (off) or more")
        _check(self.subscribe_requests_per_hour >= 0, "subscribe_requests_per_hour", "negative", "use >= 0")
        _check(self.okx_trades_per_frame >= 0, "okx_trades_per_frame", "negative", "use 0 (auto) or more")
        _check(self.max_buffered_frames >= 100, "max_buffered_frames", "too small", "use >= 100")
        _check(
            0 <= self.book_updates_per_s <= 1_000_000, "book_updates_per_s", f"{self.book_updates_per_s}", "use e.g. 40"
        )
        _check(
            self.book_checksum in ("crc32", "zero"),
            "book_checksum",
            f"{self.book_checksum!r} is not a checksum mode",
            'use "crc32" (pre-2026 OKX) or "zero" (OKX since 2026-06)',
        )
        _check(isinstance(self.book_ws_snapshot, bool), "book_ws_snapshot", "not a boolean", "use true or false")
        _check(
            0 < self.funding_interval_scale <= 1 and round(3_600_000 * self.funding_interval_scale) >= 100,
            "funding_interval_scale",
            f"{self.funding_interval_scale} is not in [1/36000, 1]",
            "use 1.0 (real time) or e.g. 1/3600 (an hour of funding per second)",
        )
        _check(0 < self.funding_history_days <= 3_650, "funding_history_days", f"{self.funding_history_days}", "use 92")
        if isinstance(self.faults, dict):  # convenience for CLI/JSON callers
            object.__setattr__(self, "faults", FaultSettings.from_mapping(self.faults))
        _check(isinstance(self.faults, FaultSettings), "faults", "not a FaultSettings", "pass FaultSettings(...)")

    def with_changes(self, **changes: Any) -> SimConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> SimConfig:
        """Build from a plain dict (CLI, JSON); unknown keys are a ``ConfigError``."""
        known = {f.name for f in fields(cls)}
        for key in values:
            _check(key in known, f"simulator.{key}", "unknown setting", f"use one of {sorted(known)}")
        return cls(**values)


def _check(ok: bool, key: str, problem: str, fix: str) -> None:
    if not ok:
        raise ConfigError(f"simulator.{key}" if not key.startswith("simulator.") else key, problem, fix)
