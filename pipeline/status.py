"""The lake's health at a glance: per-instrument completeness, open gaps, commit age, rows and size.

``lake_status`` gathers the figures; ``LakeStatus.problems`` turns them into a verdict against
``Thresholds``, so `cryptolake status` can serve as a health check (non-zero exit when unhealthy) and the
health flow can raise ``cryptolake.stream.stale`` from the same numbers.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pyarrow as pa

from pipeline.backfill.gapfill import open_gaps
from pipeline.lake import writer
from pipeline.lake.location import Lake
from pipeline.lake.maintenance import all_tables
from pipeline.lake.tables import BRONZE_TRADES


@dataclass(frozen=True)
class Thresholds:
    """What counts as unhealthy. ``None`` switches a check off."""

    max_commit_age_min: float | None = 15.0  # bronze/trades: no commit for this long = the stream is stale
    min_completeness: float | None = None  # share of minutes with trades, per instrument (0..1)
    max_open_gaps: int | None = None


@dataclass
class TableStatus:
    key: str
    rows: int
    files: int
    size_bytes: int
    version: int
    last_commit_age_s: float | None  # of the last commit that brought data (maintenance commits do not count)


@dataclass
class InstrumentStatus:
    venue: str
    instrument: str
    minutes_with_data: int
    window_minutes: int
    trades: int
    last_trade_age_s: float

    @property
    def completeness(self) -> float:
        return self.minutes_with_data / self.window_minutes if self.window_minutes else 0.0


@dataclass
class LakeStatus:
    root: str
    window_minutes: int
    tables: list[TableStatus] = field(default_factory=list)
    instruments: list[InstrumentStatus] = field(default_factory=list)
    open_gaps: dict[str, int] = field(default_factory=dict)  # "venue/instrument" -> open gaps

    def table(self, key: str) -> TableStatus | None:
        return next((t for t in self.tables if t.key == key), None)

    def problems(self, limits: Thresholds) -> list[str]:
        """Every reason the lake is unhealthy (empty = healthy)."""
        out: list[str] = []
        trades = self.table(BRONZE_TRADES.key)
        if limits.max_commit_age_min is not None:
            if trades is None or trades.last_commit_age_s is None:
                out.append("bronze/trades does not exist: nothing was ever captured")
            elif trades.last_commit_age_s > limits.max_commit_age_min * 60:
                out.append(
                    f"stale: last bronze/trades data commit {trades.last_commit_age_s / 60:.1f} min ago (limit {limits.max_commit_age_min:g})"
                )
        if limits.min_completeness is not None:
            for i in self.instruments:
                if i.completeness < limits.min_completeness:
                    out.append(
                        f"{i.venue}/{i.instrument}: {i.completeness:.0%} of minutes have trades (limit {limits.min_completeness:.0%})"
                    )
        total_gaps = sum(self.open_gaps.values())
        if limits.max_open_gaps is not None and total_gaps > limits.max_open_gaps:
            out.append(f"{total_gaps} open gaps (limit {limits.max_open_gaps})")
        return out

    def to_dict(self, limits: Thresholds) -> dict[str, Any]:
        return {
            "root": self.root,
            "window_minutes": self.window_minutes,
            "healthy": not self.problems(limits),
            "problems": self.problems(limits),
            "tables": [asdict(t) for t in self.tables],
            "instruments": [{**asdict(i), "completeness": round(i.completeness, 4)} for i in self.instruments],
            "open_gaps": self.open_gaps,
        }

    def render(self, limits: Thresholds) -> str:
        lines = [
            f"lake {self.root}",
            "",
            f"  {'table':<22} {'rows':>12} {'files':>7} {'size MB':>9} {'version':>8} {'last data':>12}",
        ]
        for t in self.tables:
            lines.append(
                f"  {t.key:<22} {t.rows:>12,} {t.files:>7} {t.size_bytes / 1e6:>9.1f} {t.version:>8} {_age(t.last_commit_age_s):>12}"
            )
        lines += [
            "",
            f"  bronze/trades over the last {self.window_minutes} min (complete = share of minutes with trades)",
            f"  {'instrument':<34} {'complete':>8} {'trades':>9} {'last trade':>10} {'open gaps':>9}",
        ]
        for i in self.instruments:
            name = f"{i.venue}/{i.instrument}"
            lines.append(
                f"  {name:<34} {i.completeness:>8.0%} {i.trades:>9,} {_age(i.last_trade_age_s):>10} {self.open_gaps.get(name, 0):>9}"
            )
        problems = self.problems(limits)
        lines += ["", "HEALTHY" if not problems else "UNHEALTHY:\n" + "\n".join(f"  - {p}" for p in problems)]
        return "\n".join(lines)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# Commits that rewrite or tidy files without bringing data: a compaction must not make a stalled stream look
# alive, so freshness is the newest commit of any other kind (append, merge, write, delete).
MAINTENANCE_OPERATIONS = frozenset({"OPTIMIZE", "VACUUM START", "VACUUM END"})
HISTORY_LOOKBACK = 64  # commits read back from the newest; maintenance adds at most three per run


def last_data_commit_ms(history: list[dict[str, Any]]) -> int | None:
    """The timestamp of the newest commit in ``history`` (newest first) that is not maintenance. When every
    commit read is maintenance, the oldest one read: the data is at least that old."""
    for commit in history:
        if commit.get("operation") not in MAINTENANCE_OPERATIONS and commit.get("timestamp"):
            return int(commit["timestamp"])
    oldest = [c["timestamp"] for c in history if c.get("timestamp")]
    return int(oldest[-1]) if oldest else None


def table_statuses(lake: Lake, now_s: float) -> list[TableStatus]:
    out = []
    for spec in all_tables():
        table = writer.open_table(lake, spec)
        if table is None:
            continue
        actions = pa.table(table.get_add_actions(flatten=True))
        rows = sum(int(n or 0) for n in actions.column("num_records").to_pylist())
        size = sum(int(n or 0) for n in actions.column("size_bytes").to_pylist())
        last_ms = last_data_commit_ms(table.history(HISTORY_LOOKBACK))
        age = now_s - last_ms / 1000 if last_ms is not None else None
        out.append(TableStatus(spec.key, rows, actions.num_rows, size, table.version(), age))
    return out


def instrument_statuses(lake: Lake, window_minutes: int, now_s: float) -> list[InstrumentStatus]:
    """Minutes with at least one trade, per instrument, over the window.

    Instruments that traded in the day before the window are listed too, so one that went silent shows
    0% instead of disappearing from the report.
    """
    table = writer.open_table(lake, BRONZE_TRADES)
    if table is None:
        return []
    now = datetime.fromtimestamp(now_s, UTC)
    start = now - timedelta(minutes=window_minutes)
    lookback = start - timedelta(days=1)
    frame = (
        pl.scan_delta(table)
        .filter(pl.col("date") >= pl.lit(lookback.date(), dtype=pl.Date))  # partition pruning
        .filter(pl.col("exchange_ts") >= lookback)
        .select("venue", "instrument", "exchange_ts")
        .collect()
    )
    if frame.is_empty():
        return []
    in_window = frame.filter((pl.col("exchange_ts") >= start) & (pl.col("exchange_ts") <= now))
    per = in_window.group_by("venue", "instrument").agg(
        pl.col("exchange_ts").dt.truncate("1m").n_unique().alias("minutes"), pl.len().alias("trades")
    )
    last = frame.group_by("venue", "instrument").agg(pl.col("exchange_ts").max().alias("last"))
    joined = last.join(per, on=["venue", "instrument"], how="left").sort("venue", "instrument")
    return [
        InstrumentStatus(
            venue=r["venue"],
            instrument=r["instrument"],
            minutes_with_data=int(r["minutes"] or 0),
            window_minutes=window_minutes,
            trades=int(r["trades"] or 0),
            last_trade_age_s=max(0.0, now_s - r["last"].timestamp()),
        )
        for r in joined.iter_rows(named=True)
    ]


def lake_status(lake: Lake, *, window_minutes: int = 60, now_s: float | None = None) -> LakeStatus:
    """Gather the figures (reads bronze/trades for the window plus one day, and the table logs)."""
    now_s = time.time() if now_s is None else now_s
    status = LakeStatus(lake.root, window_minutes)
    status.tables = table_statuses(lake, now_s)
    status.instruments = instrument_statuses(lake, window_minutes, now_s)
    for gap in open_gaps(lake):
        key = f"{gap['venue']}/{gap['instrument']}"
        status.open_gaps[key] = status.open_gaps.get(key, 0) + 1
    return status


__all__ = ["InstrumentStatus", "LakeStatus", "TableStatus", "Thresholds", "lake_status"]
