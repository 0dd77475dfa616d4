"""The stream collector: runs the connections, owns the buffers, flushes them, records gaps, stops cleanly.

The collector is the connections' ``FrameSink`` (``pipeline.ingest.sink``): the connections hand it frames
and it owns the buffers. The connections, the buffers and the counters (``StreamStats``) live in one asyncio
loop, so they need no locks. A flush swaps the buffers for empty ones (in the loop) and decodes and commits
the old ones in a worker thread (one flush at a time); the thread touches only those buffers, the gap
detectors and the flusher, and writes no counter: it returns what it counted (``FlushWork``) and the loop
adds it. Readers pause only if the buffers reach ``max_buffer_rows`` while a flush is still running.
Order-book messages are verified as they are parsed, on the loop (``book_sync``): each gets its session, a
break becomes a gap row and the resynchronisation of that book alone.

State that must survive the process (gap-detector continuity, the time of the last flush, whether the
last run stopped cleanly) is written beside the spool after every flush, so a restart records the
window it missed as a ``restart`` gap and continues the sequence checks where the last flush left them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.ingest import trade_decoder
from pipeline.ingest.book_sync import BookSync
from pipeline.ingest.capture import CaptureWriter
from pipeline.ingest.connection import Connection
from pipeline.ingest.flusher import Flusher, FlushResult
from pipeline.ingest.frames import parse_frame
from pipeline.ingest.gaps import GapDetector, gap_row
from pipeline.ingest.memory import release_memory
from pipeline.ingest.plan import ConnectionPlan
from pipeline.ingest.rawframes import RawFrames
from pipeline.ingest.sink import Recorder
from pipeline.ingest.spool import Spool
from pipeline.ingest.stats import FlushStats, StreamStats, venue_rows
from pipeline.lake.location import Lake
from pipeline.lake.tables import BRONZE_GAPS, BRONZE_REJECTS, BRONZE_TRADES
from pipeline.stream_settings import StreamSettings
from pipeline.venues.base import Control, ParsedBatch, Venue

log = logging.getLogger(__name__)

STATE_FILE = "collector-state.json"
# A flush of at least this many trade frames of a venue, more than this share of them missing the venue's
# fastest decoder: warn (at most every SLOW_WARN_EVERY_SECS per venue).
SLOW_WARN_MIN_FRAMES, SLOW_WARN_SHARE, SLOW_WARN_EVERY_SECS = 500, 0.2, 600.0


@dataclass
class FlushWork:
    """What a flush's worker thread did, for the event loop to account: the thread writes no counters."""

    result: FlushResult | None
    continuity: dict[str, Any]
    trades: int
    quotes: int
    rejects: int
    gaps: int
    venue_errors: int  # error controls found among the raw trade frames
    rows_per_frame: dict[str, float]  # per venue with trade frames in this flush
    trade_frames: dict[str, tuple[int, int]]  # venue -> (trade frames, frames that missed the fastest decoder)
    rows_by_venue: dict[tuple[str, str], int] = field(default_factory=dict)  # (venue, table) -> rows (metrics)
    seconds: float = 0.0  # decode, gap check and commits (the metrics' flush latency)


class Collector:
    def __init__(
        self,
        lake: Lake,
        plans: Sequence[ConnectionPlan],
        *,
        settings: StreamSettings | None = None,
        spool_dir: Path,
        name: str = "default",
        record_dir: Path | None = None,
        on_stats: Callable[[StreamStats, str], Any] | None = None,
    ) -> None:
        self.lake = lake
        self.on_stats = on_stats
        self.settings = settings or StreamSettings()
        self.name = name
        self.record_dir = record_dir
        self.spool = Spool(spool_dir)
        self.state_path = spool_dir / STATE_FILE
        self.flusher = Flusher(lake, self.spool, app_id=f"cryptolake-stream-{name}")
        self.stats = StreamStats()
        self.flush_stats = FlushStats(started_ms=time.time_ns() // 1_000_000)  # for pipeline.ingest.metrics
        venues = sorted({plan.venue.NAME for plan in plans})
        self.detectors = {v: GapDetector(v, settle_ms=self.settings.gap_settle_ms) for v in venues}
        # Book messages are verified on arrival, here on the loop; a broken book is resynchronised on its own.
        self.book_sync = BookSync(
            self.settings,
            self.stats,
            f"{name}@{self.flush_stats.started_ms}",
            store=lambda row: self.batch.books.append(row),
            record_gap=lambda row: self.gaps.append(row),
        )
        self.connections = [
            Connection(self, p.venue, p.url, p.subs, p.name, self.settings, self.book_sync) for p in plans
        ]
        self._tasks: list[asyncio.Task[None]] = []
        self.batch = ParsedBatch()
        self.venues = {plan.venue.NAME: plan.venue for plan in plans}
        # Raw frames are counted, not decoded, on arrival: the row count of the buffers uses each venue's
        # trades per frame seen at the last flush.
        self._rows_per_frame = dict.fromkeys(venues, 1.0)
        self._slow_warned: dict[str, float] = {}  # venue -> monotonic time before which no new warning
        self.raw = self._new_raw()  # trade frames as received, decoded at the flush
        self.rejects: list[tuple[Any, ...]] = []
        self.gaps: list[tuple[Any, ...]] = []
        self._flush_lock = asyncio.Lock()
        self._room = asyncio.Event()
        self._room.set()
        self._flush_wanted = asyncio.Event()
        self._last_connect: dict[str, float] = {}
        self._connect_lock = asyncio.Lock()
        self.last_flush: FlushResult | None = None
        self.last_flush_ms: int | None = None

    # ---- the FrameSink the connections call (pipeline.ingest.sink) ------------------------------
    def add_trade_frame(self, venue: str, frame: bytes, receive_ts_us: int) -> bool:
        return self.raw[venue].add(frame, receive_ts_us)

    def add_frame(self, venue: Venue, frame: bytes, receive_ts_us: int) -> Control | None:
        batch = self.batch
        start = len(batch.trades)
        books = len(batch.books)
        control = parse_frame(venue, frame, receive_ts_us, batch, self.rejects)
        if len(batch.books) > books:
            self.book_sync.check(batch.books, books)
        elif control is not None:
            self.book_sync.on_control(venue.NAME, control)
        if len(batch.trades) > start:
            # Trades in a shape the prefix test missed (or of a venue without a columnar decoder): keep them
            # raw as well, so the flush checks every trade in arrival order (parsing it again).
            del batch.trades[start:]
            self.raw[venue.NAME].add(frame, receive_ts_us)
        return control

    async def connect_gate(self, venue: str) -> None:
        """At most ``connections_per_sec`` new connections per venue (OKX: 3/s per IP)."""
        async with self._connect_lock:
            gap = 1.0 / self.settings.connections_per_sec
            wait = self._last_connect.get(venue, 0.0) + gap - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._last_connect[venue] = time.monotonic()

    def buffered_rows(self) -> int:
        raw = sum(len(r.frames) * self._rows_per_frame[v] for v, r in self.raw.items())
        return int(raw) + self.batch.row_count() + len(self.rejects)

    def _new_raw(self) -> dict[str, RawFrames]:
        flush_rows = self.settings.flush_rows
        return {v: RawFrames(limit=flush_rows / per_frame) for v, per_frame in self._rows_per_frame.items()}

    def wants_flush(self) -> bool:
        return self.buffered_rows() >= self.settings.flush_rows

    async def backpressure(self) -> None:
        """Ask for a flush; pause the reader only if the buffers are full while a flush is running."""
        self._flush_wanted.set()
        if self.buffered_rows() >= self.settings.max_buffer_rows and self._flush_lock.locked():
            self.stats.backpressure_waits += 1
            self._room.clear()
            await self._room.wait()

    def reconnected(
        self, venue: str, connection: str, trade_instruments: Sequence[str], down_ms: int, up_ms: int
    ) -> None:
        for instrument in trade_instruments:
            self.gaps.append(
                gap_row(venue, instrument, "reconnect", down_ms, up_ms, None, None, f"{connection} was down")
            )

    def open_recorder(self, connection: str, connects: int) -> Recorder | None:
        if self.record_dir is None:
            return None
        self.record_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        safe = connection.replace("/", "_").replace("#", "-")
        return CaptureWriter(self.record_dir / f"{stamp}-{safe}-{connects}.jsonl")

    async def follow(
        self, venue: str, wanted: Sequence[str], new_plans: Callable[[list[str]], Sequence[ConnectionPlan]]
    ) -> tuple[int, int]:
        """Make ``venue``'s streams follow ``wanted`` without a restart: instruments that left are
        unsubscribed on their live connections; new ones get new connections (``new_plans`` shards them).
        Returns (added, removed) instrument counts."""
        current = {s.instrument for c in self.connections if c.venue_name == venue for s in c.subs}
        target = set(wanted)
        removed = current - target
        added = sorted(target - current)
        for conn in self.connections:
            if conn.venue_name == venue and removed:
                await conn.unsubscribe(removed)
        if removed:
            self.book_sync.dropped(removed, venue)
        for plan in new_plans(added) if added else ():
            conn = Connection(
                self,
                plan.venue,
                plan.url,
                plan.subs,
                f"{plan.name}+{len(self.connections)}",
                self.settings,
                self.book_sync,
            )
            self.connections.append(conn)
            self._tasks.append(asyncio.create_task(conn.run(), name=conn.name))
        if added or removed:
            log.info("%s instruments: +%d -%d (%s)", venue, len(added), len(removed), ", ".join(added[:5]))
        return len(added), len(removed)

    # ---- lifecycle ------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> StreamStats:
        """Stream until ``stop`` is set, then flush everything and return the counters."""
        self._restore_state()
        self._tasks = [asyncio.create_task(c.run(), name=c.name) for c in self.connections]
        flusher = asyncio.create_task(self._flush_loop(stop), name="flush-loop")
        reporter = asyncio.create_task(self._stats_loop(), name="stats")
        books = asyncio.create_task(self.book_sync.run(), name="book-resync")
        try:
            await stop.wait()
        finally:
            tasks = [*self._tasks, reporter, books]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # Never cancel the flush loop: a flush in flight is committing in a worker thread, and
            # cancelling its awaiter would let the final flush run beside it. Wake it and let it finish.
            stop.set()
            self._flush_wanted.set()
            await asyncio.gather(flusher, return_exceptions=True)
            # The final flush runs after every reader stopped, so nothing arrives after it.
            await self.flush(final=True)
            self._write_state(running=False)
            log.info("stream stopped: %s", self.stats_line())
        return self.stats

    async def _flush_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(self._flush_wanted.wait(), timeout=self.settings.flush_interval_secs)
            except TimeoutError:
                pass
            self._flush_wanted.clear()
            await self.flush()

    async def flush(self, *, final: bool = False) -> FlushResult | None:
        async with self._flush_lock:
            batch, self.batch = self.batch, ParsedBatch()
            raw, self.raw = self.raw, self._new_raw()
            rejects, self.rejects = self.rejects, []
            gaps, self.gaps = self.gaps, []
            self._room.set()
            # Decoding, the gap check and the commits run in a worker thread, so the readers go on meanwhile;
            # the detectors are touched only there (flushes run one at a time under the lock).
            work = await asyncio.to_thread(self._flush_sync, batch, raw, rejects, gaps, final)
            del batch, raw, rejects, gaps
            release_memory()  # the flush's buffers are free now: give glibc's free pages back (issue #8)
            self._account(work)
            self._write_state(running=not final, continuity=work.continuity)
            return work.result

    def _flush_sync(
        self,
        batch: ParsedBatch,
        raw: dict[str, RawFrames],
        rejects: list[tuple[Any, ...]],
        gaps: list[tuple[Any, ...]],
        final: bool,
    ) -> FlushWork:
        """The worker thread's part of a flush. It writes no counter: what it counted goes back in ``FlushWork``."""
        started = time.perf_counter()
        built: list[pa.Table] = []
        trade_rows: dict[tuple[str, str], int] = {}
        rows_per_frame: dict[str, float] = {}
        trade_frames: dict[str, tuple[int, int]] = {}
        venue_errors = 0
        for venue, frames in raw.items():
            if not len(frames):
                continue
            decoded = trade_decoder.decode(self.venues[venue], frames)
            trade_frames[venue] = (len(frames), decoded.slow)
            self.detectors[venue].check_table(decoded.trades)
            rows_per_frame[venue] = max(0.1, decoded.trades.num_rows / len(frames))
            trade_rows[(venue, BRONZE_TRADES.key)] = decoded.trades.num_rows
            built.append(decoded.trades)
            batch.extend(decoded.other)  # its trades are in ``decoded.trades``: ``other`` holds the rest
            rejects.extend(decoded.rejects)
            for control in decoded.controls:
                if control.kind == "error":
                    venue_errors += 1
                    log.warning("%s: venue error %s: %s", venue, control.code, control.message)
        for detector in self.detectors.values():
            gaps.extend(detector.settled(force=final))
        continuity = {venue: d.snapshot() for venue, d in self.detectors.items()}
        # Trades are all in ``built``: the readers keep every trade frame raw.
        rows = {spec: rows for spec, rows in batch.rows_by_table().items() if spec is not BRONZE_TRADES}
        rows.update({BRONZE_REJECTS: rejects, BRONZE_GAPS: gaps})
        trades = sum(t.num_rows for t in built)
        result = None
        if trades or any(rows.values()) or self.spool.files_pending():
            result = self.flusher.flush(rows, built={BRONZE_TRADES: built})
        per_venue = venue_rows({spec.key: (spec.schema.get_field_index("venue"), r) for spec, r in rows.items()})
        per_venue.update(trade_rows)
        return FlushWork(
            result,
            continuity,
            trades,
            len(batch.quotes),
            len(rejects),
            len(gaps),
            venue_errors,
            rows_per_frame,
            trade_frames,
            dict(per_venue),
            time.perf_counter() - started,
        )

    def _account(self, work: FlushWork) -> None:
        """Add a flush's counts to the counters (on the event loop)."""
        s = self.stats
        s.venue_errors += work.venue_errors
        self._rows_per_frame.update(work.rows_per_frame)
        for venue, (frames, slow) in work.trade_frames.items():
            self._note_slow(venue, slow, frames)
        result = work.result
        if result is None:
            return
        s.trades += work.trades
        s.quotes += work.quotes
        s.rejects += work.rejects
        s.gaps += work.gaps
        s.flushes += 1
        s.commits += result.commits
        s.spooled_rows += sum(result.spooled_rows.values())
        s.replayed_rows += result.replayed_rows
        if result.error:
            s.flush_errors.append(result.error)
            del s.flush_errors[:-20]
        self.last_flush = result
        self.last_flush_ms = time.time_ns() // 1_000_000
        self.flush_stats.add(work.rows_by_venue, work.seconds, result.commits > 0, self.last_flush_ms)

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.stats_interval_secs)
            line = self.stats_line()
            log.info("stream stats: %s", line)
            if self.on_stats is not None:
                try:
                    result = self.on_stats(self.stats, line)
                    if asyncio.iscoroutine(result):
                        await result
                except Exception:  # noqa: BLE001 - a reporting failure must never stop the capture
                    log.exception("stats hook failed")

    def _note_slow(self, venue: str, slow: int, frames: int) -> None:
        """Count trade frames that missed the venue's fastest decoder, and say so when most of a flush did:
        the venue has likely changed its wire format. Nothing is lost (a slower tier decodes them), but the
        collector needs more CPU, and the fast path wants updating (pipeline/venues/<venue>_columnar.py)."""
        self.stats.slow_trade_frames += slow
        now = time.monotonic()
        if (
            frames >= SLOW_WARN_MIN_FRAMES
            and slow > SLOW_WARN_SHARE * frames
            and now >= self._slow_warned.get(venue, 0.0)
        ):
            self._slow_warned[venue] = now + SLOW_WARN_EVERY_SECS
            log.warning(
                "%s: %d of %d trade frames did not fit the fast decoder and took a slower one (nothing lost); "
                "the venue's wire format may have changed: see pipeline/venues/%s_columnar.py",
                venue,
                slow,
                frames,
                venue,
            )

    def stats_line(self) -> str:
        connected = sum(1 for c in self.connections if c.connected)
        return self.stats.line(self.buffered_rows(), self.settings.max_buffer_rows, connected, len(self.connections))

    # ---- state across restarts ------------------------------------------------------------------
    def _restore_state(self) -> None:
        now_ms = time.time_ns() // 1_000_000
        try:
            state = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            self._write_state(running=True)
            return
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("ignoring unreadable collector state %s: %s", self.state_path, exc)
            self._write_state(running=True)
            return
        last_ms = int(state.get("last_flush_ms") or now_ms)
        how = "crashed (unflushed window lost)" if state.get("running") else "stopped cleanly"
        for venue, detector in self.detectors.items():
            continuity = state.get("continuity", {}).get(venue, {})
            detector.restore(continuity)
            for instrument in sorted(self._trade_instruments(venue) | set(continuity)):
                self.gaps.append(
                    gap_row(venue, instrument, "restart", last_ms, now_ms, None, None, f"collector {self.name} {how}")
                )
        self._write_state(running=True)

    def _trade_instruments(self, venue: str) -> set[str]:
        return {i for c in self.connections if c.venue_name == venue for i in c.trade_instruments}

    def _write_state(self, *, running: bool, continuity: dict[str, Any] | None = None) -> None:
        state = {
            "name": self.name,
            "running": running,
            "last_flush_ms": self.last_flush_ms or time.time_ns() // 1_000_000,
            "continuity": continuity
            if continuity is not None
            else {v: d.snapshot() for v, d in self.detectors.items()},
            "stats": {k: v for k, v in asdict(self.stats).items() if k != "flush_errors"},
        }
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.state_path)
