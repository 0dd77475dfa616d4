"""Stream settings, with units in the names. Validated once, with errors that name the key and the fix."""

from __future__ import annotations

from dataclasses import dataclass, fields

from pipeline.checks import config_number
from pipeline.errors import ConfigError


@dataclass(frozen=True)
class StreamSettings:
    flush_interval_secs: float = 3.0  # commit at least this often...
    flush_rows: int = 50_000  # ...or as soon as this many rows are buffered
    max_buffer_rows: int = 400_000  # readers pause (TCP backpressure) beyond this while a flush runs
    stale_after_secs: float = 30.0  # no frame for this long: reconnect
    idle_ping_secs: float = 20.0  # OKX wants a text ping before 30 s of silence
    heartbeat_secs: int = 30  # Deribit public/set_heartbeat interval
    backoff_initial_secs: float = 1.0
    backoff_max_secs: float = 60.0
    healthy_after_secs: float = 30.0  # a connection that lived this long resets the backoff
    channels_per_connection: int = 200
    connections_per_sec: float = 3.0  # OKX: at most 3 new connections per second per IP
    stats_interval_secs: float = 60.0
    gap_settle_ms: int = 3_000  # out-of-order trades within this window close their gap
    open_timeout_secs: float = 10.0
    universe_poll_secs: float = 300.0  # instruments = "universe": how often silver/instruments is re-read
    # A broken order book (issue #15) is resynchronised: resubscribed, or from the REST snapshot when the venue
    # sends none on the WebSocket (or ``book_rest_snapshots``); an attempt that brings no snapshot within the
    # timeout is retried, at most this many times, then the book stays broken until a reconnect (counted).
    book_resync_timeout_secs: float = 10.0
    book_resync_retries: int = 5
    book_rest_snapshots: bool = False  # resync from GET market/books instead of resubscribing (OKX's 2026 way)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("bool", bool):
                if not isinstance(value, bool):
                    raise ConfigError(f"stream.{f.name}", f"{value!r} is not true or false", "use true or false")
                continue
            # inf passed this check before (TOML allows `inf`): stale_after_secs = inf never reconnects a
            # dead connection, idle_ping_secs = inf lets OKX close it; every setting must be finite, and a
            # count (flush_rows = 1.5) whole.
            config_number(f"stream.{f.name}", value, integer=f.type in ("int", int), above=0)
        if self.backoff_max_secs < self.backoff_initial_secs:
            raise ConfigError(
                "stream.backoff_max_secs",
                f"{self.backoff_max_secs} is below backoff_initial_secs {self.backoff_initial_secs}",
                "make backoff_max_secs >= backoff_initial_secs",
            )
        if self.max_buffer_rows < self.flush_rows:
            raise ConfigError("stream.max_buffer_rows", "is below flush_rows", "make max_buffer_rows >= flush_rows")
