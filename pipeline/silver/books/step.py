"""The books part of a silver pass: new bronze/book_deltas rows continue every chain from its stored state.

Cost follows the new deltas: a pass reads the commits since the version in silver/book_state, the states
of the chains they touch, and the bronze gaps of their time range; nothing of the history before them. The
exceptions are chains whose new rows do not come after the state's position (a late part of a session, an
older capture of the same session imported again with more in it), or a chain whose open book was not kept:
those are replayed from their session's first message and their snapshots restated (rows of the session's
segments that the replay no longer gives are deleted). A capture imported late is new sessions: it is
rebuilt from its own rows, and its snapshots meet the stream's at the same instants through the
freshest-book rule of ``snapshots``.

Order of writes: snapshots, segments, then the state with its bronze version in one commit (see ``state``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import polars as pl
from deltalake import DeltaTable

from pipeline.errors import ConfigError, LakeWriteError
from pipeline.lake.tables import (
    BOOK_SEGMENT_KEY,
    BRONZE_BOOK_DELTAS,
    BRONZE_GAPS,
    SILVER_BOOK_FEATURES,
    SILVER_BOOK_SEGMENTS,
    SILVER_BOOK_SNAPSHOTS,
)
from pipeline.silver import files, writes
from pipeline.silver.books import features, segments, snapshots
from pipeline.silver.books.rebuild import CHAIN, rebuild
from pipeline.silver.books.state import read_state, retire, write_state
from pipeline.silver.handles import Handles
from pipeline.silver.report import SilverReport
from pipeline.silver.validate import QUARANTINE_POLARS, Checked
from pipeline.silver.writes import Watermark

W_BOOKS = "books/bronze/book_deltas"  # shown with the run's watermarks; silver/book_state holds the real one
DELTA_COLUMNS = [
    "venue", "instrument", "channel", "session", "exchange_ts", "receive_ts", "source", "seq", "prev_seq",
    "is_snapshot", "side", "price", "size",
]  # fmt: skip
_LOW = -(2**63)


@dataclass(frozen=True)
class BookSettings:
    """``interval_ms``: the snapshot grid (100 ms .. 1 h); ``depth``: levels per side in a snapshot."""

    enabled: bool = True
    interval_ms: int = 1000
    depth: int = 25

    def __post_init__(self) -> None:
        if (
            isinstance(self.interval_ms, bool)
            or not isinstance(self.interval_ms, int)
            or not (100 <= self.interval_ms <= 3_600_000)
        ):
            raise ConfigError(
                "book_interval_ms", f"{self.interval_ms!r} is not 100..3600000", "give milliseconds, e.g. 1000"
            )
        if isinstance(self.depth, bool) or not isinstance(self.depth, int) or not 1 <= self.depth <= 1000:
            raise ConfigError("book_depth", f"{self.depth!r} is not 1..1000", "give levels per side, e.g. 25")


def _position(ts: str, seq: str, rcv: str) -> list[pl.Expr]:
    return [pl.col(ts), pl.col(seq).fill_null(_LOW), pl.col(rcv)]


def _not_after(a: list[pl.Expr], b: list[pl.Expr]) -> pl.Expr:
    """Position ``a`` <= position ``b`` (lexicographic over exchange ts, seq, receive ts)."""
    return (a[0] < b[0]) | ((a[0] == b[0]) & ((a[1] < b[1]) | ((a[1] == b[1]) & (a[2] <= b[2]))))


def chains_to_replay(new: pl.DataFrame, states: pl.DataFrame) -> pl.DataFrame:
    """CHAIN + ``first_ts`` of the chains whose new rows do not simply continue their state."""
    first = (
        new.sort("exchange_ts", pl.col("seq").fill_null(_LOW), "receive_ts")
        .group_by(CHAIN, maintain_order=True)
        .first()
        .select(*CHAIN, n_ts="exchange_ts", n_seq="seq", n_rcv="receive_ts")
    )
    j = first.join(states, on=CHAIN, how="inner")
    behind = _not_after(
        _position("n_ts", "n_seq", "n_rcv"), _position("position_ts", "position_seq", "position_receive_ts")
    )
    again = j.filter(behind.fill_null(False) | pl.col("valid").is_null())
    return again.select(*CHAIN, first_ts=pl.min_horizontal("first_ts", "n_ts"))  # the new rows may come first


def _session_rows(tables: Handles, chains: pl.DataFrame) -> pl.DataFrame:
    """Every bronze row of these chains from their first message on (all files, old and new)."""
    lo = chains["first_ts"].min()
    assert isinstance(lo, dt.datetime)
    fs = files.overlapping(tables.files(BRONZE_BOOK_DELTAS), "exchange_ts", lo, None)
    return (
        files.scan(tables.lake, fs, DELTA_COLUMNS)
        .with_columns(pl.col("session").fill_null(""))
        .join(chains.lazy().select(CHAIN), on=CHAIN, how="semi")
        .collect()
    )


def _gaps(tables: Handles, rows: pl.DataFrame) -> pl.DataFrame:
    """bronze/gaps of kind book whose break message falls in the rows' time range."""
    lo, hi = rows["exchange_ts"].min(), rows["exchange_ts"].max()
    assert isinstance(lo, dt.datetime) and isinstance(hi, dt.datetime)
    fs = files.overlapping(tables.files(BRONZE_GAPS), "to_ts", lo, hi + dt.timedelta(microseconds=1))
    lf = files.scan(tables.lake, fs).filter((pl.col("kind") == "book") & pl.col("to_ts").is_between(lo, hi))
    return lf.collect()


def _existing_segments(tables: Handles, sessions: list[str]) -> pl.DataFrame:
    lf = files.scan(tables.lake, tables.files(SILVER_BOOK_SEGMENTS))
    return lf.filter(pl.col("session").is_in(sessions)).collect()


def _delete_snapshots(tables: Handles, segment_ids: list[str]) -> None:
    """Remove the snapshot rows of these segments (a replayed session writes its own again)."""
    table = tables.table(SILVER_BOOK_SNAPSHOTS)
    if table is None or not segment_ids:
        return
    quoted = ", ".join("'" + s.replace("'", "''") + "'" for s in segment_ids)
    try:
        DeltaTable.delete(table, f"segment_id IN ({quoted})")
    except Exception as exc:  # noqa: BLE001
        raise LakeWriteError(f"restating silver/book_snapshots failed: {type(exc).__name__}: {exc}") from exc


@dataclass
class BooksPass:
    checked: Checked
    more: bool
    snapshots: writes.Written
    segments: writes.Written
    version: int | None = None  # the bronze/book_deltas version this pass reached
    level_updates: int = 0
    features: writes.Written = field(default_factory=writes.Written)


def books_pass(
    tables: Handles, settings: BookSettings, *, run_id: str, now: dt.datetime, max_rows: int | None = None
) -> BooksPass | None:
    """One pass over the bronze/book_deltas commits since silver/book_state's version (None: nothing new)."""
    lake = tables.lake
    states, version = read_state(tables)
    listed = tables.files(BRONZE_BOOK_DELTAS)
    fs = files.files_since(lake, listed, version, max_rows)
    more = fs.version is not None and listed.version is not None and fs.version < listed.version
    if fs.version is None or (fs.version == version and fs.actions.height == 0):
        return None
    new = files.scan(lake, fs, DELTA_COLUMNS).with_columns(pl.col("session").fill_null("")).collect()
    replay_chains = chains_to_replay(new, states) if new.height else pl.DataFrame()
    restated: list[str] = []
    if replay_chains.height:
        again = _session_rows(tables, replay_chains)
        new = pl.concat([new.join(replay_chains.select(CHAIN), on=CHAIN, how="anti"), again])
        old = _existing_segments(tables, replay_chains["session"].to_list())
        restated = old.join(replay_chains.select(CHAIN), on=CHAIN, how="semi")["segment_id"].to_list()
        states = states.join(replay_chains.select(CHAIN), on=CHAIN, how="anti")
    touched = new.select(CHAIN).unique()
    start = states.join(touched, on=CHAIN, how="semi")
    gaps = _gaps(tables, new) if new.height else None
    replay = rebuild(
        new, start, gaps, interval_ms=settings.interval_ms, depth=settings.depth, msg_depth=features.FEATURE_DEPTH
    )

    rows = snapshots.snapshot_rows(replay.samples)
    res = snapshots.checked(rows, run_id=run_id, detected=now)
    _delete_snapshots(tables, restated)
    snap_written = snapshots.write(tables, res.good)

    last = replay.states.select(*CHAIN, "segment_no")
    fresh = segments.new_segment_rows(replay.messages, last)
    sessions = touched["session"].unique().to_list()
    existing = _existing_segments(tables, sessions)
    continuing = existing.filter(~pl.col("segment_id").is_in(restated))
    seg_rows = pl.concat(
        [
            segments.merge_segments(fresh, continuing),
            segments.replaced(continuing.join(fresh.select("segment_id"), on="segment_id", how="anti"), last),
        ]
    )
    seg_written = writes.upsert(tables, SILVER_BOOK_SEGMENTS, seg_rows, existing, BOOK_SEGMENT_KEY)

    out = pl.concat([states.join(touched, on=CHAIN, how="anti"), replay.states])
    feats = features.features_pass(
        tables, replay, out, replay_chains, (version, fs.version), run_id=run_id, now=now
    )  # silver/book_features, before the state commit (see features)
    write_state(tables, retire(out), fs.version, now)
    q = pl.concat([res.quarantine, feats.checked.quarantine])
    res = Checked(res.table, res.good, q, res.failures + feats.checked.failures)
    return BooksPass(res, more, snap_written, seg_written, fs.version, replay.level_updates, feats.written)


def books_step(
    tables: Handles,
    new_marks: dict[str, Watermark],
    report: SilverReport,
    settings: BookSettings,
    max_rows: int | None,
) -> tuple[Checked, bool]:
    """``books_pass`` inside a silver pass: counts and failures into ``report``; returns the quarantine rows
    and whether more bronze is waiting."""
    nothing = Checked(SILVER_BOOK_SNAPSHOTS.key, pl.DataFrame(), pl.DataFrame(schema=QUARANTINE_POLARS))
    if not settings.enabled:
        return nothing, False
    done = books_pass(tables, settings, run_id=report.run_id, now=report.now, max_rows=max_rows)
    if done is None:
        return nothing, False
    report.failures += done.checked.failures
    report.bronze_rows[BRONZE_BOOK_DELTAS.key] = report.bronze_rows.get(BRONZE_BOOK_DELTAS.key, 0) + done.level_updates
    report.count(SILVER_BOOK_SNAPSHOTS.key, done.snapshots.inserted + done.snapshots.updated, done.snapshots.updated)
    report.count(SILVER_BOOK_SEGMENTS.key, done.segments.inserted + done.segments.updated, done.segments.updated)
    report.count(SILVER_BOOK_FEATURES.key, done.features.inserted + done.features.updated, done.features.updated)
    new_marks[W_BOOKS] = Watermark(done.version)
    return done.checked, done.more
