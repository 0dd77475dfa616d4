"""The chaos scenarios. Each runs the real stream (a child process) against a ``SimulatorThread``, breaks
something, repairs what the pipeline repairs (fill-gaps over REST, silver) and reconciles silver with the
simulator's ground truth. Each returns a ``Outcome``: figures for the table and the problems found.

- ``soak``: faults for minutes: connections dropped every 20 s, malformed frames, duplicates, out-of-order
  trades, bursts, silences, order-book faults (skipped, duplicated, crossing updates, wrong checksums); RSS
  sampled; rejects must equal the malformed frames the simulator delivered; every book message the stream
  received (its ``--record`` capture) is in bronze/book_deltas exactly as often, and the book breaks recorded
  equal the faults injected (but those a dropped connection cut off, at most one per session ended).
- ``kills``: SIGKILL at random moments, restart each time.
- ``unwritable``: the lake's parent folder becomes a regular file for a while: the stream spools, recovers.
- ``maintenance``: compaction (``maintain_lake``) and silver running in a loop while the stream appends.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from pipeline.backfill import RetryPolicy, fill_gaps
from pipeline.chaos.kit import (
    FAULT_COUNTERS,
    BookReconciliation,
    Reconciliation,
    StreamProcess,
    counters,
    reconcile,
    reconcile_books,
    rss_growth,
    set_faults,
    sim_config,
    spool_files,
    trade_instruments,
    write_config,
)  # fmt: skip
from pipeline.lake import writer
from pipeline.lake.location import resolve_lake
from pipeline.lake.tables import BRONZE_GAPS, BRONZE_REJECTS, BRONZE_TRADES, SILVER_TRADES
from pipeline.silver import run_silver
from pipeline.simulator import SimulatorThread

REST_RETRY = RetryPolicy(max_attempts=12, initial_backoff_secs=0.05, max_backoff_secs=1.0)
Say = Callable[[str], Any]


@dataclass
class Outcome:
    name: str
    seconds: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    silver: Reconciliation = field(default_factory=Reconciliation)
    books: BookReconciliation | None = None  # the soak's order books
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.silver.exact


@dataclass(frozen=True)
class SoakPlan:
    seconds: float
    drop_every_s: float = 20.0
    malformed_rate: float = 0.01
    duplicate_rate: float = 0.01
    out_of_order_rate: float = 0.01
    bursts: tuple[tuple[float, float, float], ...] = ()  # (at s, frames/s, for s)
    silences: tuple[tuple[float, float], ...] = ()  # (at s, for s)
    rss_from_s: float = 120.0  # memory growth is measured from here to the end
    sample_secs: float = 5.0
    okx_instruments: int = 8
    rate: float = 5.0  # trades per second per instrument outside bursts
    stale_after_secs: float = 8.0
    book_fault_rate: float = 0.01  # per book update and kind: skipped, duplicated, crossing, wrong checksum


def full_soak_plan(minutes: float) -> SoakPlan:
    """The issue's soak: drops every 20 s, 1 % malformed, bursts of 20,000 frames/s, two 40 s silences."""
    t = minutes * 60
    return SoakPlan(
        seconds=t,
        # the first burst comes before minute 2, so the growth from minute 2 is not just one burst's high-water mark
        bursts=((60.0, 20_000.0, 10.0), (0.5 * t, 20_000.0, 10.0), (0.8 * t, 20_000.0, 10.0)),
        silences=((0.3 * t, 40.0), (0.6 * t, 40.0)),
        rss_from_s=min(120.0, t / 3),
    )


def short_soak_plan(seconds: float = 16.0) -> SoakPlan:
    """The same faults, compressed for `make test`."""
    return SoakPlan(
        seconds=seconds, drop_every_s=4.0, malformed_rate=0.02, duplicate_rate=0.02, out_of_order_rate=0.02,
        bursts=((2.5, 4_000.0, 1.5),), silences=((0.55 * seconds, 3.0),), rss_from_s=4.0, sample_secs=1.0,
        okx_instruments=4, rate=10.0, stale_after_secs=1.5,
    )  # fmt: skip


BOOK_FAULTS = ("book_skip_rate", "book_duplicate_rate", "book_cross_rate", "book_checksum_rate")


def _quiesce(sim: SimulatorThread) -> None:
    """Stop injecting, then give frames in flight (and held out-of-order ones, released after 1 s) time to land,
    and a book skipped just before time to show at the next update."""
    set_faults(sim, drop_every_s=0, malformed_rate=0, duplicate_rate=0, out_of_order_rate=0, burst_frames_per_s=0,
               **dict.fromkeys(BOOK_FAULTS, 0.0))  # fmt: skip
    time.sleep(2.0)


def _stop_quiet(sim: SimulatorThread, proc: StreamProcess, out: Outcome) -> None:
    """Quiesce the faults, then stop the stream with SIGTERM; a non-zero exit is a problem of the scenario."""
    _quiesce(sim)
    rc = proc.stop()
    if rc != 0:
        out.problems.append(f"the stream exited with {rc} after SIGTERM: {proc.tail(10)}")


def _repair(lake: Any, sim: SimulatorThread, out: Outcome, say: Say) -> None:
    """Compaction (as the scheduled maintenance would), fill-gaps over REST (with 429/5xx faults on the REST
    side), then silver. Without the compaction fill-gaps spends ~2 s a gap scanning a 10-minute stream's
    hundreds of small bronze files for the trade ids it already holds."""
    from pipeline.lake.maintenance import maintain_lake

    maintain_lake(lake, tables=["bronze/trades"], min_files=2, retention_hours=1)
    set_faults(sim, rest_429_rate=0.03, rest_5xx_rate=0.03)
    gaps = writer.read(lake, BRONZE_GAPS)
    t = time.monotonic()
    filled = fill_gaps(lake, rest_url=sim.base_http_url, retry=REST_RETRY)
    out.figures["gaps"] = gaps.height
    out.figures["gaps_filled"] = filled.filled
    out.figures["rest_trades"] = filled.trades
    say(f"  fill-gaps: {filled.gaps} open gaps, {filled.filled} filled, {filled.unfillable} unfillable, "
        f"{filled.trades} trades over REST in {time.monotonic() - t:.1f} s")  # fmt: skip
    # A book gap has no REST history to read back (the stream resynchronised that book from a new snapshot):
    # unfillable by nature. Any other unfillable gap is a problem.
    unfillable = [o for o in filled.outcomes if o.status == "unfillable" and o.gap_id.split("|")[2] != "book"]
    if unfillable:
        out.problems.append(f"{len(unfillable)} gaps unfillable: " + "; ".join(o.detail for o in unfillable)[:500])
    set_faults(sim, rest_429_rate=0, rest_5xx_rate=0)
    t = time.monotonic()
    report = run_silver(lake)
    say(f"  silver: {report.written} written, {report.duplicates} duplicates dropped, quarantined {report.quarantined} "
        f"in {time.monotonic() - t:.1f} s")  # fmt: skip
    if report.fatal:
        out.problems.append(f"silver contract failures: {report.fatal}")


def _check_silver(lake: Any, sim: SimulatorThread, instruments: dict[str, list[str]], out: Outcome, say: Say) -> None:
    out.silver = reconcile(lake, sim, instruments, SILVER_TRADES)
    s = out.silver
    say(f"  silver vs truth: {s.rows} rows for {s.truth} trades: {s.missing} missing, {s.extra} extra, "
        f"{s.duplicated} duplicated, {s.mismatched} mismatched")  # fmt: skip


def _repair_and_check(
    lake: Any, sim: SimulatorThread, instruments: dict[str, list[str]], out: Outcome, say: Say
) -> None:
    """What every scenario ends with: fill the gaps over REST, note the faults injected, reconcile silver."""
    _repair(lake, sim, out, say)
    out.faults = _faults(sim)
    _check_silver(lake, sim, instruments, out, say)


def _faults(sim: SimulatorThread) -> dict[str, int]:
    c = counters(sim)
    return {k: int(c.get(k, 0)) for k in FAULT_COUNTERS}


# ---- soak --------------------------------------------------------------------------------------------------
def soak(workdir: Path, plan: SoakPlan, *, seed: int = 11, say: Say = print) -> Outcome:
    out = Outcome("soak")
    started = time.monotonic()
    lake = resolve_lake(str(workdir / "lake"))
    with SimulatorThread(sim_config(seed, okx_instruments=plan.okx_instruments, rate=plan.rate)) as sim:
        instruments = trade_instruments(sim)
        config = write_config(workdir / "soak.toml", instruments, books=True, stale_after_secs=plan.stale_after_secs,
                              idle_ping_secs=min(3.0, plan.stale_after_secs / 2))  # fmt: skip
        record = workdir / "capture"
        proc = StreamProcess(lake, sim, config, workdir / "spool", workdir / "soak-stream.log", record)
        try:
            proc.start()
            proc.wait_connected(len(instruments))
            set_faults(sim, drop_every_s=plan.drop_every_s, malformed_rate=plan.malformed_rate,
                       duplicate_rate=plan.duplicate_rate, out_of_order_rate=plan.out_of_order_rate,
                       **dict.fromkeys(BOOK_FAULTS, plan.book_fault_rate))  # fmt: skip
            events: list[tuple[float, dict[str, float], str]] = []
            for at, fps, secs in plan.bursts:
                events.append(
                    (
                        at,
                        {"burst_frames_per_s": fps, "burst_for_s": secs},
                        f"burst {fps:,.0f} frames/s for {secs:.0f} s",
                    )
                )
            for at, secs in plan.silences:
                events.append((at, {"silence_every_s": 0.0, "silence_for_s": secs}, f"silence for {secs:.0f} s"))
            events.sort(key=lambda e: e[0])
            t0 = time.monotonic()
            samples: list[tuple[float, float]] = []
            next_sample = 0.0
            while (elapsed := time.monotonic() - t0) < plan.seconds:
                while events and events[0][0] <= elapsed:
                    _, change, text = events.pop(0)
                    set_faults(sim, **change)
                    say(f"  t={elapsed:5.0f} s: {text}")
                if elapsed >= next_sample:
                    mb = proc.rss_mb()
                    if mb is not None:
                        samples.append((elapsed, mb))
                    next_sample += plan.sample_secs
                if proc.proc is not None and proc.proc.poll() is not None:
                    out.problems.append(f"the stream died with {proc.proc.returncode}: {proc.tail(10)}")
                    break
                time.sleep(0.1)
            _stop_quiet(sim, proc, out)
        finally:
            proc.ensure_dead()
        delivered = int(counters(sim).get("malformed_delivered", 0))
        rejects = writer.read(lake, BRONZE_REJECTS)
        out.figures.update(
            frames=proc.frames_total(), peak_fps=proc.peak_frame_rate(), rejects=rejects.height,
            malformed_delivered=delivered,
        )  # fmt: skip
        say(
            f"  rejects {rejects.height} vs malformed frames delivered {delivered} (queued {counters(sim).get('malformed_sent', 0)})"
        )
        if rejects.height != delivered:
            out.problems.append(f"rejects {rejects.height} != malformed frames delivered {delivered}")
        base, end, growth = rss_growth(samples, plan.rss_from_s)
        out.figures.update(rss_start_mb=base, rss_end_mb=end, rss_peak_mb=max((m for _, m in samples), default=0.0),
                           rss_growth_pct=growth)  # fmt: skip
        say(f"  stream RSS: {base:.0f} MB at {plan.rss_from_s:.0f} s, {end:.0f} MB at the end ({growth:+.1f} %), "
            f"peak {out.figures['rss_peak_mb']:.0f} MB; samples {' '.join(f'{t:.0f}:{m:.0f}' for t, m in samples[:: max(1, len(samples) // 20)])}")  # fmt: skip
        if growth >= 10.0:
            out.problems.append(f"stream RSS grew {growth:.1f} % from {plan.rss_from_s:.0f} s to the end (limit 10 %)")
        _check_books(lake, sim, record, out, say)
        _repair_and_check(lake, sim, instruments, out, say)
    out.seconds = time.monotonic() - started
    out.figures["mean_fps"] = out.figures["frames"] / plan.seconds if plan.seconds else 0.0
    return out


def _check_books(lake: Any, sim: SimulatorThread, record: Path, out: Outcome, say: Say) -> None:
    """bronze/book_deltas against the book messages the stream received, book breaks against those injected."""
    b: BookReconciliation = reconcile_books(lake, sim, record)
    out.books = b
    out.figures.update(book_messages=b.received, book_breaks=b.breaks, book_faults=b.injected)
    say(f"  books: {b.received} messages received, {b.stored} in bronze/book_deltas ({b.missing} missing, "
        f"{b.duplicated} duplicated); {b.breaks} breaks recorded of {b.injected} injected over {b.sessions} "
        f"sessions of {b.streams} books")  # fmt: skip
    out.problems += b.problems


# ---- SIGKILL and restart -------------------------------------------------------------------------------------
def kills(
    workdir: Path, *, n: int = 5, live_s: tuple[float, float] = (2.0, 8.0), seed: int = 12, say: Say = print
) -> Outcome:
    out = Outcome(f"sigkill x{n}")
    started = time.monotonic()
    rng = random.Random(seed)
    lake = resolve_lake(str(workdir / "lake"))
    with SimulatorThread(
        sim_config(seed, okx_instruments=4, rate=10.0, duplicate_rate=0.01, out_of_order_rate=0.01)
    ) as sim:
        instruments = trade_instruments(sim)
        config = write_config(workdir / "kills.toml", instruments)
        proc = StreamProcess(lake, sim, config, workdir / "spool", workdir / "kills-stream.log")
        moments = []
        try:
            proc.start()
            for k in range(n):
                proc.wait_connected(len(instruments))
                live = rng.uniform(*live_s)
                time.sleep(live)
                proc.kill()
                moments.append(round(live, 2))
                down = rng.uniform(0.2, 1.5)
                say(f"  SIGKILL {k + 1}/{n} after {live:.2f} s connected; down {down:.2f} s")
                time.sleep(down)
                proc.start()
            proc.wait_connected(len(instruments))
            time.sleep(3.0)
            _stop_quiet(sim, proc, out)
        finally:
            proc.ensure_dead()
        gaps = writer.read(lake, BRONZE_GAPS)
        crashed = gaps.filter((pl.col("kind") == "restart") & pl.col("detail").str.contains("crashed"))
        n_inst = sum(len(v) for v in instruments.values())
        out.figures.update(kills=n, kill_after_s=moments, restart_gaps=crashed.height)
        if crashed.height != n * n_inst:
            out.problems.append(f"{crashed.height} 'crashed' restart gaps, expected {n} kills x {n_inst} instruments")
        _repair_and_check(lake, sim, instruments, out, say)
    out.seconds = time.monotonic() - started
    return out


# ---- the lake unwritable ----------------------------------------------------------------------------------
def unwritable(workdir: Path, *, block_s: float = 60.0, seed: int = 13, say: Say = print) -> Outcome:
    """As root, chmod does not stop writes: the lake's parent folder is moved away and a regular file takes
    its name, so every write below it fails (NotADirectory) until the folder comes back."""
    out = Outcome(f"lake unwritable {block_s:.0f}s")
    started = time.monotonic()
    store = workdir / "store"
    away = workdir / "store.away"
    store.mkdir(parents=True, exist_ok=True)
    lake = resolve_lake(str(store / "lake"))
    spool = workdir / "spool"
    with SimulatorThread(sim_config(seed, okx_instruments=4, rate=10.0)) as sim:
        instruments = trade_instruments(sim)
        config = write_config(workdir / "unwritable.toml", instruments)
        proc = StreamProcess(lake, sim, config, spool, workdir / "unwritable-stream.log")
        max_spooled = 0
        try:
            proc.start()
            proc.wait_connected(len(instruments))
            time.sleep(3.0)
            if writer.count_rows(lake, BRONZE_TRADES) == 0:
                out.problems.append("no commit before the lake was blocked")
            os.rename(store, away)
            store.write_text("a regular file where the lake's parent folder should be: every write fails\n")
            say(f"  lake blocked for {block_s:.0f} s")
            t0 = time.monotonic()
            while time.monotonic() - t0 < block_s:
                max_spooled = max(max_spooled, spool_files(spool))
                time.sleep(0.25)
            store.unlink()
            os.rename(away, store)
            say(f"  lake back; {max_spooled} spool files at most")
            time.sleep(4.0)
            _stop_quiet(sim, proc, out)
        finally:
            proc.ensure_dead()
            if store.is_file() and away.is_dir():
                store.unlink()
                os.rename(away, store)
        left = spool_files(spool)
        out.figures.update(block_s=block_s, spool_files_peak=max_spooled, spool_files_left=left)
        if max_spooled == 0:
            out.problems.append("nothing was spooled while the lake was blocked: the test proved nothing")
        if left:
            out.problems.append(f"{left} spool files never replayed")
        # Nothing was dropped by the venue here, so bronze itself must be exact, before any repair.
        bronze = reconcile(lake, sim, instruments, BRONZE_TRADES)
        out.figures["bronze_missing"] = bronze.missing
        say(
            f"  bronze vs truth (no repair): {bronze.missing} missing, {bronze.extra} extra, {bronze.duplicated} duplicated"
        )
        if not bronze.exact:
            out.problems += bronze.problems
        _repair_and_check(lake, sim, instruments, out, say)
    out.seconds = time.monotonic() - started
    return out


# ---- maintenance and silver while the stream appends ----------------------------------------------------------
def maintenance(workdir: Path, *, seconds: float = 30.0, seed: int = 14, say: Say = print) -> Outcome:
    from pipeline.lake.maintenance import maintain_lake

    out = Outcome(f"maintain+silver {seconds:.0f}s")
    started = time.monotonic()
    lake = resolve_lake(str(workdir / "lake"))
    spool = workdir / "spool"
    with SimulatorThread(sim_config(seed, okx_instruments=4, rate=10.0)) as sim:
        instruments = trade_instruments(sim)
        config = write_config(workdir / "maintenance.toml", instruments, flush_interval_secs=0.3)
        proc = StreamProcess(lake, sim, config, spool, workdir / "maintenance-stream.log")
        passes = compacted = retried = silver_runs = 0
        errors: list[str] = []
        try:
            proc.start()
            proc.wait_connected(len(instruments))
            time.sleep(1.5)
            t0 = time.monotonic()
            while time.monotonic() - t0 < seconds:
                for report in maintain_lake(lake, min_files=2, retention_hours=1):
                    compacted += report.files_removed
                    retried += report.conflicts_retried
                    errors += report.errors
                passes += 1
                if spool_files(spool):
                    out.problems.append("a stream flush was refused (spooled) during maintenance")
                    break
                silver = run_silver(lake, lateness_secs=0)  # every closed minute at once: candles too
                silver_runs += 1
                if silver.fatal:
                    errors.append(f"silver: {silver.fatal}")
            _stop_quiet(sim, proc, out)
        finally:
            proc.ensure_dead()
        log = proc.log.read_text(errors="replace")
        refused = log.count("lake write failed")
        out.figures.update(maintenance_passes=passes, files_compacted=compacted, conflicts_retried=retried,
                           silver_runs=silver_runs, stream_writes_refused=refused)  # fmt: skip
        say(f"  {passes} maintenance passes ({compacted} files compacted, {retried} conflicts retried), "
            f"{silver_runs} silver runs; stream writes refused: {refused}")  # fmt: skip
        if errors:
            out.problems.append("maintenance/silver errors: " + "; ".join(errors)[:500])
        if refused:
            out.problems.append(f"{refused} stream flushes were refused while maintenance ran")
        if compacted == 0:
            out.problems.append("maintenance compacted nothing: the test proved nothing")
        bronze = reconcile(lake, sim, instruments, BRONZE_TRADES)
        if not bronze.exact:
            out.problems += ["bronze: " + p for p in bronze.problems]
        _repair_and_check(lake, sim, instruments, out, say)
        _check_candle_counts(lake, out, say)
    out.seconds = time.monotonic() - started
    return out


def _check_candle_counts(lake: Any, out: Outcome, say: Say) -> None:
    """Compaction rewrites bronze files that silver then sees as new: the 1m candles' trade counts must still
    equal the number of silver trades in each minute (nothing counted twice)."""
    from pipeline.lake.tables import SILVER_CANDLES

    # A clock 10 minutes ahead closes every bucket the run touched, so silver writes its 1m candles now.
    run_silver(lake, now_ms=time.time_ns() // 1_000_000 + 600_000, lateness_secs=0)
    candles = writer.read(lake, SILVER_CANDLES).filter((pl.col("timeframe") == "1m") & (pl.col("source") == "trades"))
    trades = writer.read(lake, SILVER_TRADES)
    counted = (
        trades.with_columns(pl.col("exchange_ts").dt.truncate("1m").alias("open_time"))
        .group_by("venue", "instrument", "open_time").agg(pl.len().alias("n"))
    )  # fmt: skip
    joined = candles.join(counted, on=["venue", "instrument", "open_time"], how="left")
    wrong = joined.filter(pl.col("n").is_null() | (pl.col("n") != pl.col("trade_count")))
    out.figures["candles_1m"] = candles.height
    if candles.height == 0:
        out.problems.append("silver wrote no 1m candles: the candle check proved nothing")
    say(f"  silver 1m candles: {candles.height}, {wrong.height} with a trade count that differs from silver trades")
    if wrong.height:
        out.problems.append(f"{wrong.height} silver 1m candles count trades differently from silver/trades")
