"""The stream's counters. Only the collector's event loop writes them: the connections count frames,
reconnects and venue errors there, and a flush's worker thread returns its counts for the loop to add."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StreamStats:
    frames: int = 0
    trades: int = 0
    quotes: int = 0
    rejects: int = 0
    gaps: int = 0
    commits: int = 0
    flushes: int = 0
    spooled_rows: int = 0
    replayed_rows: int = 0
    reconnects: int = 0
    stale: int = 0
    acks: int = 0
    venue_errors: int = 0
    backpressure_waits: int = 0
    slow_trade_frames: int = 0  # trade frames the venue's fastest decoder did not take (trade_decoder)
    flush_errors: list[str] = field(default_factory=list)

    def line(self, buffered: int, max_rows: int, connected: int, total: int) -> str:
        return (
            f"frames={self.frames} trades={self.trades} quotes={self.quotes} rejects={self.rejects} gaps={self.gaps} "
            f"buffer={buffered}/{max_rows} commits={self.commits} spooled={self.spooled_rows} "
            f"reconnects={self.reconnects} connections={connected}/{total} slow_trade_frames={self.slow_trade_frames}"
        )
