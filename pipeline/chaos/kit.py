"""Pieces the chaos scenarios share: the stream as a real child process, the simulator's counters, and the
reconciliation of silver (or bronze) with the simulator's ground truth.

Everything is real: a ``SimulatorThread`` on 127.0.0.1, ``python -m pipeline.cli stream`` in a child process
(so SIGKILL is a real crash and RSS is the collector's own), Delta tables in a temporary folder.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

from pipeline.ingest.capture import iter_capture
from pipeline.ingest.frames import parse_frame
from pipeline.lake import writer
from pipeline.lake.location import Lake
from pipeline.lake.tables import BRONZE_BOOK_DELTAS, BRONZE_GAPS, BRONZE_TRADES, TableSpec
from pipeline.simulator import FaultSettings, SimConfig, SimulatorThread
from pipeline.venues import deribit, okx
from pipeline.venues.base import ParsedBatch

# Fault counters the simulator keeps (pipeline/simulator/faults.py), in the order the table prints them.
FAULT_COUNTERS = (
    "drops", "silences", "frames_suppressed", "malformed_sent", "malformed_delivered", "duplicates_sent",
    "out_of_order_sent", "burst_trades", "rest_429", "rest_5xx",
    "book_faults.skip", "book_faults.duplicate", "book_faults.cross", "book_faults.checksum",
)  # fmt: skip

# Stream settings for chaos runs: quick to notice a silence (stale), quick to come back (short backoff),
# one flush a second. Written as TOML because the child process reads them through `--config`.
STREAM_SETTINGS: dict[str, float | int] = {
    "flush_interval_secs": 1.0,
    "stale_after_secs": 8.0,
    "idle_ping_secs": 3.0,
    "backoff_initial_secs": 0.2,
    "backoff_max_secs": 2.0,
    "healthy_after_secs": 5.0,
    "stats_interval_secs": 1.0,
    "gap_settle_ms": 1000,
}


def sim_config(seed: int, *, okx_instruments: int = 6, rate: float = 5.0, **faults: float) -> SimConfig:
    return SimConfig(port=0, seed=seed, okx_instruments=okx_instruments, deribit_options=4,
                     trade_rate_per_instrument_per_s=rate, faults=FaultSettings.from_mapping(faults))  # fmt: skip


def trade_instruments(sim: SimulatorThread, *, okx_limit: int | None = None, options: int = 2) -> dict[str, list[str]]:
    """Every OKX instrument of the simulator (bursts go round robin over all of them, so a client that wants
    to feel a 20,000 frames/s burst subscribes to all), ETH-PERPETUAL and a few ETH options."""
    okx = [i.inst_id for i in sim.market.instruments("okx")][:okx_limit]
    opts = sorted(i.inst_id for i in sim.market.instruments("deribit") if i.market == "option")[:options]
    return {"okx": okx, "deribit": ["ETH-PERPETUAL", *opts]}


def write_config(
    path: Path, instruments: dict[str, list[str]], name: str = "chaos", *, books: bool = False, **settings: float
) -> Path:
    """The stream's TOML; ``books`` adds the full-depth order books (OKX ``books``, Deribit ``book.*.100ms``
    for the perpetual)."""
    values = STREAM_SETTINGS | settings
    lines = ["[stream]", f'name = "{name}"', *(f"{k} = {v!r}" for k, v in values.items()), ""]
    book = ', "book"' if books else ""
    channels = {"okx": f'["trades", "quotes"{book}]', "deribit": f'["trades", "ticker"{book}]'}
    for venue, names in instruments.items():
        quoted = ", ".join(f'"{n}"' for n in names)
        lines += [f"[stream.{venue}]", 'url = "sim"', f"instruments = [{quoted}]", f"channels = {channels[venue]}", ""]
    path.write_text("\n".join(lines))
    return path


def set_faults(sim: SimulatorThread, **faults: float) -> None:
    sim.call(lambda: sim.ctx.faults.update(faults))


def counters(sim: SimulatorThread) -> dict[str, int]:
    return sim.call(lambda: dict(sim.ctx.counters))


def connected(sim: SimulatorThread) -> int:
    return sim.call(lambda: sum(len(c) for c in sim.ctx.connections.values()))


_STATS = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) .*stream stats: frames=(\d+)")


class StreamProcess:
    """``python -m pipeline.cli stream`` against a running simulator; output goes to a log file (a pipe
    that nobody reads would fill up and stall the child)."""

    def __init__(
        self, lake: Lake, sim: SimulatorThread, config: Path, spool: Path, log: Path, record: Path | None = None
    ) -> None:
        self.lake, self.sim, self.config, self.spool, self.log = lake, sim, config, spool, log
        self.record = record  # the stream's own capture of every frame it received (``--record``)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        cmd = [
            sys.executable, "-m", "pipeline.cli", "--lake", self.lake.root, "stream", "--config", str(self.config),
            "--sim-url", f"ws://127.0.0.1:{self.sim.port}", "--spool-dir", str(self.spool),
        ]  # fmt: skip
        if self.record is not None:
            cmd += ["--record", str(self.record)]
        with self.log.open("ab") as out:
            out.write(f"--- start {self.starts + 1}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        self.starts += 1

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def wait_connected(self, want: int, seconds: float = 60.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if connected(self.sim) >= want:
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the stream exited with {self.proc.returncode}:\n{self.tail()}")
            time.sleep(0.2)
        raise RuntimeError(f"the stream did not open {want} connections in {seconds:.0f} s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL, by pid: a crash with no chance to flush."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self, timeout: float = 120.0) -> int:
        """SIGTERM (the stream flushes every buffer), then wait; SIGKILL only if it hangs."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"the stream did not stop within {timeout:.0f} s of SIGTERM:\n{self.tail()}") from None

    def ensure_dead(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()

    def rss_mb(self) -> float | None:
        import psutil

        try:
            return psutil.Process(self.pid).memory_info().rss / 1e6
        except (psutil.Error, AssertionError):
            return None

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def peak_frame_rate(self) -> float:
        """The highest frames/s between two of the collector's once-a-second stats lines."""
        points: list[tuple[float, int]] = []
        for line in self.log.read_text(errors="replace").splitlines():
            m = _STATS.match(line)
            if m:
                t = time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) + int(m.group(2)) / 1000
                points.append((t, int(m.group(3))))
        peak = 0.0
        for (t0, f0), (t1, f1) in itertools.pairwise(points):
            if f1 >= f0 and t1 > t0:  # a restart resets the counter: skip that step
                peak = max(peak, (f1 - f0) / (t1 - t0))
        return peak

    def frames_total(self) -> int:
        """Frames over every run of this process, from the "stopped:" lines (SIGKILLed runs print none)."""
        return sum(int(m) for m in re.findall(r"^stopped: (\d+) frames", self.log.read_text(errors="replace"), re.M))


@dataclass
class Reconciliation:
    """Silver (or bronze) against the simulator's ground truth, per instrument, over the window the stream saw."""

    truth: int = 0  # trades the simulator published in the windows
    rows: int = 0  # rows of the table for these instruments
    missing: int = 0  # in the truth, not in the table
    extra: int = 0  # in the table, not in the truth (phantoms)
    duplicated: int = 0  # rows beyond one per trade
    mismatched: int = 0  # same trade, other price / size / side
    problems: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return not (self.missing or self.extra or self.duplicated or self.mismatched or self.problems)

    def add(self, other: Reconciliation) -> None:
        for name in ("truth", "rows", "missing", "extra", "duplicated", "mismatched"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.problems += other.problems


def _key(venue: str) -> pl.Expr:
    # Deribit trade ids carry a currency prefix on some paths; trade_seq is the venue's own counter.
    return pl.col("seq").cast(pl.Utf8) if venue == "deribit" else pl.col("trade_id")


def reconcile(
    lake: Lake, sim: SimulatorThread, instruments: Mapping[str, Iterable[str]], table: TableSpec
) -> Reconciliation:
    """Compare ``table`` (silver/trades or bronze/trades) with the truth over each instrument's window: from
    the first to the last trade the stream itself received (bronze rows with source = ws)."""
    out = Reconciliation()
    bronze = writer.read(lake, BRONZE_TRADES)
    target = bronze if table is BRONZE_TRADES else writer.read(lake, table)
    ms = pl.col("exchange_ts").dt.epoch("ms")
    for venue, names in instruments.items():
        for inst in names:
            part = Reconciliation()
            ws = bronze.filter((pl.col("venue") == venue) & (pl.col("instrument") == inst) & (pl.col("source") == "ws"))
            if ws.height == 0:
                part.problems.append(f"{venue} {inst}: the stream captured no trades")
                out.add(part)
                continue
            lo, hi = ws.select(ms.min()).item(), ws.select(ms.max()).item()
            trades = sim.call(partial(sim.market.trades, venue, inst, start_ms=lo, end_ms=hi, limit=None))
            truth = {(str(t.seq) if venue == "deribit" else str(t.trade_id)): (t.price, t.size, t.side) for t in trades}
            rows = target.filter((pl.col("venue") == venue) & (pl.col("instrument") == inst) & ms.is_between(lo, hi))
            keys = rows.select(_key(venue).alias("k"), "price", "size", "side")
            got = keys["k"].to_list()
            seen = set(got)
            part.truth, part.rows = len(truth), len(got)
            part.missing = len(truth.keys() - seen)
            part.extra = len(seen - truth.keys())
            part.duplicated = len(got) - len(seen)
            part.mismatched = sum(1 for k, p, s, side in keys.iter_rows() if k in truth and truth[k] != (p, s, side))
            if not part.exact:
                part.problems.append(
                    f"{venue} {inst}: {part.missing} missing, {part.extra} extra, {part.duplicated} duplicated, "
                    f"{part.mismatched} mismatched of {part.truth}"
                )  # fmt: skip
            out.add(part)
    return out


@dataclass
class BookReconciliation:
    """bronze/book_deltas against the book messages the stream received on the wire (its ``--record`` capture,
    written as each frame arrives, before parsing), and the book breaks recorded against those injected."""

    received: int = 0  # book messages in the capture (a duplicated update counts twice, as the wire sent it)
    stored: int = 0  # book messages in bronze/book_deltas that came over the WebSocket
    missing: int = 0  # received, not stored
    duplicated: int = 0  # stored more often than received
    rest_snapshots: int = 0
    breaks: int = 0  # bronze/gaps of kind "book"
    injected: int = 0  # book faults the simulator injected (GET /sim/book-faults)
    sessions: int = 0  # book sessions in bronze (one per subscription incarnation)
    streams: int = 0  # books streamed
    problems: list[str] = field(default_factory=list)


_VENUE_OF_URL = {marker: venue for venue in (okx, deribit) for marker in venue.CAPTURE_URL_MARKERS}


def _wire_messages(record: Path) -> Counter[tuple[Any, ...]]:
    """(venue, instrument, channel, seq, prev_seq, is_snapshot, receive_ts_us) -> copies received."""
    out: Counter[tuple[Any, ...]] = Counter()
    for path in sorted(record.glob("*.jsonl")):
        for frame in iter_capture(path):
            if frame.direction != "recv" or frame.url is None or frame.ts_us is None:
                continue
            venue = next(v for marker, v in _VENUE_OF_URL.items() if marker in frame.url)
            batch = ParsedBatch()
            parse_frame(venue, frame.text, frame.ts_us, batch, [])
            out.update((b[0], b[2], b[3], b[8], b[9], b[11], b[5]) for b in batch.books)
    return out


def reconcile_books(lake: Lake, sim: SimulatorThread, record: Path) -> BookReconciliation:
    """Every book message received is in bronze/book_deltas exactly as often as it was received, and the book
    breaks recorded equal the faults injected, but for faults whose evidence a session's end cut off (a skip
    shows only at the next update, a duplicate's second copy may never come): at most one per session that
    ended (by a reconnect or a resync)."""
    out = BookReconciliation()
    wire = _wire_messages(record)
    deltas = writer.read(lake, BRONZE_BOOK_DELTAS)
    key = ["venue", "instrument", "channel", "seq", "prev_seq", "is_snapshot", "receive_us"]
    messages = (
        deltas.with_columns(pl.col("receive_ts").dt.epoch("us").alias("receive_us"))
        .group_by([*key, "source"])
        .agg((pl.len() / pl.struct("side", "price").n_unique()).round().cast(pl.Int64).alias("copies"))
    )
    out.rest_snapshots = messages.filter(pl.col("source") == "rest").height
    stored: Counter[tuple[Any, ...]] = Counter()
    for row in messages.filter(pl.col("source") == "ws").iter_rows(named=True):
        stored[tuple(row[k] for k in key)] += row["copies"]
    out.received, out.stored = sum(wire.values()), sum(stored.values())
    out.missing = sum((wire - stored).values())
    out.duplicated = sum((stored - wire).values())
    out.breaks = writer.read(lake, BRONZE_GAPS).filter(pl.col("kind") == "book").height
    out.injected = sum(sim.call(sim.ctx.books.fault_counts).values())
    out.sessions = deltas["session"].n_unique()
    out.streams = deltas.select(pl.struct("venue", "instrument", "channel").n_unique()).item()
    hidden_max = out.sessions - out.streams
    if not out.received:
        out.problems.append("no book message received")
    if out.missing or out.duplicated:
        out.problems.append(f"book messages: {out.missing} missing, {out.duplicated} duplicated of {out.received}")
    if not out.injected - hidden_max <= out.breaks <= out.injected:
        out.problems.append(f"{out.breaks} book breaks recorded, {out.injected} injected (at most {hidden_max} hidden)")
    return out


def spool_files(spool: Path) -> int:
    return sum(1 for p in spool.glob("*/*.arrow") if p.parent.name.isdigit()) if spool.exists() else 0


def rss_growth(samples: list[tuple[float, float]], from_s: float) -> tuple[float, float, float]:
    """(RSS at ``from_s``, RSS at the end, growth in percent) from (seconds, MB) samples."""
    if not samples:
        return 0.0, 0.0, 0.0
    base = next((mb for t, mb in samples if t >= from_s), samples[-1][1])
    end = samples[-1][1]
    return base, end, (end - base) / base * 100 if base else 0.0
