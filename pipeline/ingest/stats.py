"""The stream's counters. Only the collector's event loop writes them: the connections count frames,
reconnects and venue errors there, and a flush's worker thread returns its counts for the loop to add."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


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
    # Order books (pipeline.ingest.book_sync): messages verified, breaks recorded as bronze/gaps kind "book",
    # breaks while the book already recovered (no new gap), books resynchronised after a break, REST snapshots
    # taken and failed, recovery attempts retried and given up.
    book_messages: int = 0
    book_checksums_verified: int = 0  # non-zero checksums that matched the rebuilt book (0: chain only)
    book_breaks: int = 0
    book_breaks_ignored: int = 0
    book_resyncs: int = 0
    book_rest_snapshots: int = 0
    book_rest_errors: int = 0
    book_resync_retries: int = 0
    book_resync_failures: int = 0
    flush_errors: list[str] = field(default_factory=list)

    def line(self, buffered: int, max_rows: int, connected: int, total: int) -> str:
        return (
            f"frames={self.frames} trades={self.trades} quotes={self.quotes} rejects={self.rejects} gaps={self.gaps} "
            f"buffer={buffered}/{max_rows} commits={self.commits} spooled={self.spooled_rows} "
            f"reconnects={self.reconnects} connections={connected}/{total} slow_trade_frames={self.slow_trade_frames}"
            + (f" book_breaks={self.book_breaks} book_resyncs={self.book_resyncs}" if self.book_messages else "")
        )


# Flush durations (seconds) the latency histogram counts in: a healthy flush takes tens of milliseconds.
FLUSH_BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class FlushStats:
    """What the metrics endpoint reads beside ``StreamStats``: rows per venue and table, how long flushes
    take, and when the lake last took a commit. Kept apart from ``StreamStats``, whose flat counters the
    stream's events and artifact list. Written on the event loop only, like ``StreamStats``."""

    started_ms: int  # when the collector started: "since the last commit" counts from here until the first
    rows: Counter[tuple[str, str]] = field(default_factory=Counter)  # (venue, table) -> rows flushed
    bucket_counts: list[int] = field(default_factory=lambda: [0] * len(FLUSH_BUCKETS))
    flush_seconds_sum: float = 0.0
    flushes: int = 0
    last_commit_ms: int | None = None

    def add(self, rows: Mapping[tuple[str, str], int], seconds: float, committed: bool, now_ms: int) -> None:
        """Account one flush: its rows, its duration, and whether it committed to the lake (not all spooled)."""
        self.rows.update(rows)
        self.flushes += 1
        self.flush_seconds_sum += seconds
        for i, bound in enumerate(FLUSH_BUCKETS):
            if seconds <= bound:
                self.bucket_counts[i] += 1
                break
        if committed:
            self.last_commit_ms = now_ms

    def cumulative_buckets(self) -> list[tuple[str, float]]:
        """Prometheus histogram buckets: (upper bound, flushes that took at most that), ending with +Inf."""
        out, running = [], 0
        for bound, n in zip(FLUSH_BUCKETS, self.bucket_counts, strict=True):
            running += n
            out.append((repr(bound), float(running)))
        out.append(("+Inf", float(self.flushes)))
        return out

    def seconds_since_commit(self, now_ms: int) -> float:
        return (now_ms - (self.last_commit_ms if self.last_commit_ms is not None else self.started_ms)) / 1000


def venue_rows(tables: Mapping[str, tuple[int, Sequence[tuple[Any, ...]]]]) -> Counter[tuple[str, str]]:
    """(venue, table) -> rows, from row tuples per table key given with the index of their venue field
    (-1: a table without one, counted under venue "")."""
    out: Counter[tuple[str, str]] = Counter()
    for table, (venue_at, rows) in tables.items():
        if venue_at < 0:
            out[("", table)] += len(rows)
            continue
        for venue, n in Counter(row[venue_at] for row in rows).items():
            out[(venue, table)] += n
    return out
