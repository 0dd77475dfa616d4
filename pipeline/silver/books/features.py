"""silver/book_features: one row per (venue, instrument, channel, minute) of a verified book, computed in the
books pass from the rebuild's per-message tape (``Replay.messages`` + ``Replay.top``).

Definitions (the tests recompute them from the deltas with their own book):
- The book after a message that applied (a snapshot or an update) is in force from that message's exchange
  time to the next message of its chain, and counts only when that next message applies cleanly to the same
  segment: the same rule as the snapshots' (no message missing up to it). A break, a new snapshot or the end
  of the data leaves the stretch after the last good message uncovered: no time weight ever spans a break.
  A one-sided book (no bid or no ask) has no mid and counts as uncovered.
- Each covered stretch is cut at minute boundaries; per minute: ``book_cover`` = covered time / 60 s
  (a minute with none has no row), time-weighted means of the spread in bps ((ask - bid) / mid * 1e4),
  ``imb1`` = Qb / (Qb + Qa) on the best levels, ``imb5`` the same over the sizes of the top 5 levels, and the
  size within +-10 / +-50 bps of mid per side (price >= mid * (1 - b) for bids, <= mid * (1 + b) for asks,
  inclusive) counted over the top ``FEATURE_DEPTH`` levels per side (a bound: a thin book's 50 bps may lie
  deeper); ``mid_open``/``mid_close`` = the mid in force at the start / end of the minute's covered time,
  ``mid_high``/``mid_low`` over its covered stretches; ``*_last`` and ``microprice`` ((Pa*Qb + Pb*Qa) /
  (Qb + Qa)) at the end of the covered time.
- ``ofi``: Cont, Kukanov and Stoikov (2014) on the best levels, summed over the minute's updates (a snapshot
  starts a segment and has no predecessor): e = Qb 1{Pb >= Pb'} - Qb' 1{Pb <= Pb'} - Qa 1{Pa <= Pa'} +
  Qa' 1{Pa >= Pa'} (primes: the book before the message); ``messages``: snapshots and updates applied,
  both by the message's minute.

Incremental: a minute is published once it has ended by the run's clock (``now``), closed minutes only, as
candles. A chain's minutes before the one of its last message (or of an earlier good message whose stretch
is not confirmed yet) are final; from that open minute on, the chain's tape rows (and the one before, whose
stretch reaches in) are carried to the next run in silver/book_feature_state (per-message values, never
levels), at the bronze version of silver/book_state they belong to, so a run that dies before its state
commit is redone from the old carry. An open minute already ended by the clock is published as it stands and
restated when a later message confirms its last stretch (coverage only grows). A chain superseded by a newer
session of its (venue, instrument, channel) is final at once (the collector moved on) and carries nothing. A chain the books pass replays from its session's start (a
late part of it) has its rows deleted and written again. Two sessions covering one minute (a capture
imported late beside the stream): the row kept is the most covered, then the most messages, then the
smallest session, whatever order they arrive in.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from deltalake import DeltaTable

from contracts.silver import SilverBookFeatures
from pipeline.errors import LakeWriteError
from pipeline.lake.fast_append import polars_schema
from pipeline.lake.tables import BOOK_FEATURE_KEY, SILVER_BOOK_FEATURE_STATE, SILVER_BOOK_FEATURES
from pipeline.silver import writes
from pipeline.silver.books import kernel
from pipeline.silver.books.kernel import njit
from pipeline.silver.books.rebuild import CHAIN, Replay
from pipeline.silver.handles import Handles
from pipeline.silver.validate import Checked, check

FEATURE_DEPTH = 25  # levels per side the tape carries per message: L5 and the depth within 10/50 bps
MINUTE_US = 60_000_000
GOOD = (kernel.APPLIED, kernel.STARTED)
_SKIP = (kernel.IGNORED, kernel.SKIPPED_REST)  # messages that neither change nor confirm a book
BEST = ("bid_px", "bid_sz", "ask_px", "ask_sz")
VALUES = (
    "mid", "spread_bps", "imb1", "imb5", "microprice", "depth10_bid", "depth10_ask", "depth50_bid", "depth50_ask",
)  # fmt: skip
KEY = list(BOOK_FEATURE_KEY)
_NO_END = 2**62


@njit(cache=True, nogil=True)
def _message_values(bpx, bsz, apx, asz, good):
    """Per message (rows of the top-level arrays, best first, NaN-padded): the ``_COLUMNS`` values, NaN where
    ``good`` is False or a side is empty. One pass, no (messages x levels) temporaries."""
    n, depth = bpx.shape
    out = np.full((n, 13), np.nan)
    for i in range(n):
        pb, pa = bpx[i, 0], apx[i, 0]
        if not good[i] or np.isnan(pb) or np.isnan(pa):
            continue
        qb, qa = bsz[i, 0], asz[i, 0]
        mid = (pb + pa) / 2
        qb5 = qa5 = d10b = d10a = d50b = d50a = 0.0
        for j in range(depth):
            p = bpx[i, j]
            if not np.isnan(p):
                q = bsz[i, j]
                qb5 += q if j < 5 else 0.0
                d10b += q if p >= mid * (1 - 10e-4) else 0.0
                d50b += q if p >= mid * (1 - 50e-4) else 0.0
            p = apx[i, j]
            if not np.isnan(p):
                q = asz[i, j]
                qa5 += q if j < 5 else 0.0
                d10a += q if p <= mid * (1 + 10e-4) else 0.0
                d50a += q if p <= mid * (1 + 50e-4) else 0.0
        row = (pb, qb, pa, qa, mid, (pa - pb) / mid * 1e4, qb / (qb + qa), qb5 / (qb5 + qa5),
               (pa * qb + pb * qa) / (qb + qa), d10b, d10a, d50b, d50a)  # fmt: skip
        for k in range(13):
            out[i, k] = row[k]
    return out


_COLUMNS = (*BEST, *VALUES)  # the order of ``_message_values``' columns


def tape(replay: Replay) -> pl.DataFrame:
    """CHAIN, ``ts`` (exchange time, us), ``status`` and, after each message that left a verified two-sided
    book, its best levels and values (null otherwise); ``pos`` = the chain's last message (any outcome).
    Messages that neither change nor confirm a book (ignored after a break, skipped before a REST snapshot's
    seq) are left out. Rows keep the replay's order."""
    m = replay.messages
    good = m["status"].is_in(list(GOOD)).to_numpy()
    if m.height:
        bpx, bsz, apx, asz = (np.ascontiguousarray(replay.top[k][:, :FEATURE_DEPTH]) for k in BEST)
    else:
        bpx = bsz = apx = asz = np.full((0, 1), np.nan)
    vals = _message_values(bpx, bsz, apx, asz, good)
    values = {k: pl.Series(k, vals[:, i]).fill_nan(None) for i, k in enumerate(_COLUMNS)}
    ts = pl.col("exchange_ts").dt.epoch("us")
    out = m.select(*CHAIN, ts=ts, status=pl.col("status").cast(pl.Int8)).with_columns(**values)
    out = out.with_columns(pos=pl.col("ts").max().over(CHAIN))
    return out.filter(~pl.col("status").is_in(list(_SKIP)))


def _floor(e: pl.Expr) -> pl.Expr:
    return (e // MINUTE_US) * MINUTE_US


def _along(col: str, step: int) -> pl.Expr:
    """``col`` of the row ``step`` away in the same chain (rows come grouped by ``g``), else null."""
    return pl.when(pl.col("g").shift(step) == pl.col("g")).then(pl.col(col).shift(step))


def minutes(rows: pl.DataFrame, now_us: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Feature minutes and the carry from tape ``rows`` (ordered per chain) with per chain ``from_time``
    (us: minutes before it are final and published; null: none) and ``flush`` (the chain has no future).
    Returns (the minutes from ``from_time`` on that are final or have ended by ``now_us``, the rows to carry
    from the chain's first open minute on)."""
    # an integer per chain: the window steps below compare it instead of four strings
    t = rows.lazy().with_columns(g=pl.struct(CHAIN).rle_id())
    t = t.with_columns(
        next_ts=_along("ts", -1),
        next_status=_along("status", -1),
        prev_ok=_along("mid", 1).is_not_null(),
        **{f"prev_{c}": _along(c, 1) for c in BEST},
    )
    last_good = pl.col("status").is_in(list(GOOD)) & pl.col("next_ts").is_null()
    pending = pl.when(last_good).then("ts").min().over("g")
    open_at = pl.when(pl.col("flush")).then(pl.lit(_NO_END)).otherwise(_floor(pl.min_horizontal("pos", pending)))
    t = t.with_columns(lo=pl.col("from_time").fill_null(-_NO_END))
    # a published minute is final: the open minute never moves back before ``from_time``
    t = t.with_columns(open_at=pl.max_horizontal(open_at, "lo")).collect().lazy()
    # final minutes, and open ones the clock has closed (published as they stand, restated when confirmed)
    m = pl.col("minute")
    publish = (m >= pl.col("lo")) & ((m < pl.col("open_at")) | (m + MINUTE_US <= now_us))

    # covered stretches, cut at minute boundaries (most lie inside one minute: only the others are exploded)
    covered = (
        pl.col("mid").is_not_null() & (pl.col("next_status") == kernel.APPLIED) & (pl.col("next_ts") > pl.col("ts"))
    )
    stretches = t.filter(covered).with_columns(
        minute=_floor(pl.col("ts")), spans=_floor(pl.col("ts")) != _floor(pl.col("next_ts") - 1)
    )
    spanning = (
        stretches.filter(pl.col("spans"))
        .with_columns(minute=pl.int_ranges(_floor(pl.col("ts")), _floor(pl.col("next_ts") - 1) + 1, MINUTE_US))
        .explode("minute")
    )
    pieces = (
        pl.concat([stretches.filter(~pl.col("spans")), spanning])
        .filter(publish)
        .with_columns(
            w=(pl.min_horizontal("next_ts", pl.col("minute") + MINUTE_US) - pl.max_horizontal("ts", "minute")).cast(
                pl.Float64
            )
        )
        .sort("g", "minute", "ts", maintain_order=True)  # a stretch's pieces in time order within the chain
    )
    per_minute = _per_minute(pieces.collect())

    # order-flow imbalance and messages, by the message's minute
    pb, qb, pa_, qa = (pl.col(c) for c in BEST)
    pb0, qb0, pa0, qa0 = (pl.col(f"prev_{c}") for c in BEST)
    e = (
        pl.when(pb >= pb0).then(qb).otherwise(0.0)
        - pl.when(pb <= pb0).then(qb0).otherwise(0.0)
        - pl.when(pa_ <= pa0).then(qa).otherwise(0.0)
        + pl.when(pa_ >= pa0).then(qa0).otherwise(0.0)
    )
    applied = pl.col("status") == kernel.APPLIED
    flow = (
        t.filter(pl.col("status").is_in(list(GOOD)))
        .with_columns(minute=_floor(pl.col("ts")))
        .filter(publish)
        .select(
            "g", "minute", e=pl.when(applied & pl.col("prev_ok") & pl.col("mid").is_not_null()).then(e).otherwise(0.0)
        )
        .collect()
    )
    starts = _starts(flow)
    ofi = _sums(flow["e"].to_numpy(), starts)
    flow = flow[starts[:-1]].select("g", "minute", ofi=pl.Series(ofi), messages=pl.Series(np.diff(starts)))
    keys = t.group_by("g").agg(pl.col(CHAIN).first()).collect()
    out = (
        per_minute.join(flow, on=["g", "minute"], how="left")
        .join(keys, on="g", how="left")
        .with_columns(pl.col("ofi").fill_null(0.0), pl.col("messages").fill_null(0).cast(pl.Int64))
        .drop("g")
    )

    # the carry: each open chain's rows from its open minute on, and the one before (its stretch reaches in)
    before = pl.col("ts") < pl.col("open_at")
    last_before = before & (~_along("ts", -1).lt(pl.col("open_at"))).fill_null(True)
    carry = t.filter(~pl.col("flush") & (~before | last_before)).select(
        *CHAIN, from_time="open_at", ts="ts", status="status", **{c: c for c in (*BEST, *VALUES)}
    )
    return out, carry.collect()


def _starts(df: pl.DataFrame) -> np.ndarray:
    """Row indices where a (g, minute) group starts, and the row count at the end (rows grouped in order)."""
    g, m = df["g"].to_numpy(), df["minute"].to_numpy()
    new = np.ones(len(g), np.bool_)
    new[1:] = (g[1:] != g[:-1]) | (m[1:] != m[:-1])
    return np.append(np.flatnonzero(new), len(g)).astype(np.int64)


@njit(cache=True, nogil=True)
def _sums(x, starts):  # one left-to-right sum per group: the same bits whichever run computes it
    out = np.zeros(len(starts) - 1)
    for k in range(len(starts) - 1):
        acc = 0.0
        for i in range(starts[k], starts[k + 1]):
            acc += x[i]
        out[k] = acc
    return out


_MEANS = ("spread_bps", "imb1", "imb5", "depth10_bid", "depth10_ask", "depth50_bid", "depth50_ask")


def _per_minute(pieces: pl.DataFrame) -> pl.DataFrame:
    """One row per (g, minute) from time-ordered pieces: weighted means, mid OHLC, the last values, cover."""
    starts = _starts(pieces)
    first, last = starts[:-1], starts[1:] - 1
    w = pieces["w"].to_numpy()
    wsum = _sums(w, starts)
    mid = pieces["mid"].to_numpy()
    cols: dict[str, np.ndarray] = {
        "mid_open": mid[first],
        "mid_high": np.maximum.reduceat(mid, first) if len(first) else mid[first],
        "mid_low": np.minimum.reduceat(mid, first) if len(first) else mid[first],
        "mid_close": mid[last],
    }
    for c in _MEANS:
        cols[c] = _sums(pieces[c].to_numpy() * w, starts) / wsum
    cols["imb1_last"] = pieces["imb1"].to_numpy()[last]
    cols["imb5_last"] = pieces["imb5"].to_numpy()[last]
    cols["microprice"] = pieces["microprice"].to_numpy()[last]
    cols["book_cover"] = wsum / MINUTE_US
    named = {"imb1": "imb1_mean", "imb5": "imb5_mean"}
    return pieces[first].select("g", "minute").with_columns(**{named.get(k, k): pl.Series(v) for k, v in cols.items()})


def table_rows(per_minute: pl.DataFrame) -> pl.DataFrame:
    """SILVER_BOOK_FEATURES rows from ``minutes``' output."""
    rows = per_minute.with_columns(open_time=pl.col("minute").cast(pl.Datetime("us", "UTC"))).with_columns(
        date=pl.col("open_time").dt.date()
    )
    return writes.conform(rows.select(writes.polars_schema(SILVER_BOOK_FEATURES).names()), SILVER_BOOK_FEATURES)


def best_per_key(rows: pl.DataFrame) -> pl.DataFrame:
    """One row per key: the most covered, then the most messages, then the smallest session."""
    order = [*KEY, "book_cover", "messages", "session"]
    desc = [False] * len(KEY) + [True, True, False]
    return rows.sort(order, descending=desc).unique(KEY, keep="first", maintain_order=True)


# --- the carry table ----------------------------------------------------------------------------------------
_CARRY = polars_schema(SILVER_BOOK_FEATURE_STATE)


def read_carry(tables: Handles) -> pl.DataFrame:
    table = tables.table(SILVER_BOOK_FEATURE_STATE)
    if table is None:
        return pl.DataFrame(schema=_CARRY)
    return pl.DataFrame(table.to_pyarrow_table()).cast(dict(_CARRY))  # type: ignore[arg-type]


def _carry_rows(carry: pl.DataFrame, version: int | None) -> pl.DataFrame:
    """``minutes``' carry (times in us) as table rows at ``version``."""
    df = carry.with_columns(
        pl.col("from_time", "ts").cast(pl.Datetime("us", "UTC")), bronze_version=pl.lit(version, pl.Int64)
    )
    return df.select(_CARRY.names()).cast(dict(_CARRY))  # type: ignore[arg-type]


def write_carry(tables: Handles, keep: pl.DataFrame, carry: pl.DataFrame, version: int | None) -> None:
    """Replace the carry table with ``keep`` (the rows at the old version) and ``carry`` at ``version``."""
    df = pl.concat([keep.select(_CARRY.names()), _carry_rows(carry, version)])
    writes.overwrite(tables, SILVER_BOOK_FEATURE_STATE, df)


# --- the pass ------------------------------------------------------------------------------------------------
@dataclass
class FeaturesPass:
    checked: Checked
    written: writes.Written = field(default_factory=writes.Written)


def superseded(states: pl.DataFrame) -> pl.DataFrame:
    """CHAIN of the chains a newer session of their (venue, instrument, channel) follows (silver/book_state's
    rule for keeping a book: ``state.retire``)."""
    newest = pl.col("position_ts") == pl.col("position_ts").max().over("venue", "instrument", "channel")
    return states.filter(~newest.fill_null(True)).select(CHAIN)


def _delete_sessions(tables: Handles, chains: pl.DataFrame) -> None:
    table = tables.table(SILVER_BOOK_FEATURES)
    if table is None or chains.height == 0:
        return

    def q(v: str) -> str:
        return "'" + v.replace("'", "''") + "'"

    pairs = chains.select("channel", "session").unique().sort("channel", "session")
    where = " OR ".join(f"(channel = {q(c)} AND session = {q(s)})" for c, s in pairs.iter_rows())
    try:
        DeltaTable.delete(table, where)
    except Exception as exc:  # noqa: BLE001
        raise LakeWriteError(f"restating {SILVER_BOOK_FEATURES.key} failed: {type(exc).__name__}: {exc}") from exc


def write(tables: Handles, rows: pl.DataFrame, replayed: pl.DataFrame) -> writes.Written:
    """Delete the rows of replayed chains, then upsert ``rows`` against the table's rows of the same minutes
    (another session's better row stays)."""
    existing = pl.DataFrame(schema=writes.polars_schema(SILVER_BOOK_FEATURES))
    if rows.height:
        lo, hi = rows["open_time"].min(), rows["open_time"].max()
        assert isinstance(lo, dt.datetime) and isinstance(hi, dt.datetime)
        where = pl.col("instrument").is_in(rows["instrument"].unique().implode())
        existing = writes.existing_rows(
            tables, SILVER_BOOK_FEATURES, "open_time", lo, hi + dt.timedelta(microseconds=1), where
        )
        existing = writes.conform(existing, SILVER_BOOK_FEATURES)
    _delete_sessions(tables, replayed)
    if replayed.height and existing.height:
        existing = existing.join(replayed.select("channel", "session"), on=["channel", "session"], how="anti")
    if rows.height == 0:
        return writes.Written()
    others = existing.join(rows.select(*KEY, "session"), on=[*KEY, "session"], how="anti")
    return writes.upsert(
        tables, SILVER_BOOK_FEATURES, best_per_key(pl.concat([others, rows])), existing, BOOK_FEATURE_KEY
    )


def features_pass(
    tables: Handles,
    replay: Replay,
    states: pl.DataFrame,
    replayed: pl.DataFrame,
    versions: tuple[int | None, int | None],
    *,
    run_id: str,
    now: dt.datetime,
) -> FeaturesPass:
    """The features of a books pass: ``replay`` (with ``msg_depth >= FEATURE_DEPTH``), ``states`` (every
    chain's state after the pass, before ``retire``), ``replayed`` (CHAIN of the chains replayed from their
    session's start), ``versions`` (silver/book_state's bronze version before and after the pass).
    Writes the table and the carry; the caller commits silver/book_state afterwards."""
    old_version, new_version = versions
    all_carry = read_carry(tables)
    keep = all_carry.filter(pl.col("bronze_version") == old_version) if old_version is not None else all_carry.head(0)
    carry = keep.drop("bronze_version").with_columns(pl.col("from_time", "ts").dt.epoch("us"))
    replayed = replayed.select(CHAIN) if replayed.height else pl.DataFrame(schema=dict.fromkeys(CHAIN, pl.String))
    carry = carry.join(replayed, on=CHAIN, how="anti")

    new = tape(replay)
    flush = superseded(states).with_columns(flush=pl.lit(True))
    old = carry  # every open minute is looked at again: the clock may have closed it since
    starts = old.group_by(CHAIN).agg(pl.col("from_time").first())
    pos = new.group_by(CHAIN).agg(pl.col("pos").first())
    old_pos = old.group_by(CHAIN).agg(old_pos=pl.col("ts").max())
    rows = (
        pl.concat([old.drop("from_time").with_columns(src=pl.lit(0)), new.drop("pos").with_columns(src=pl.lit(1))])
        .with_row_index("__i")
        .join(starts, on=CHAIN, how="left")
        .join(pos, on=CHAIN, how="left")
        .join(old_pos, on=CHAIN, how="left")
        .join(flush, on=CHAIN, how="left")
        .sort(*CHAIN, "src", "__i")  # joins do not keep the order: the tape's order is set here
        .with_columns(pl.coalesce("pos", "old_pos").alias("pos"), pl.col("flush").fill_null(False))
        .drop("__i", "src", "old_pos")
    )
    per_minute, new_carry = minutes(rows, int(now.timestamp() * 1_000_000))
    res = check(
        SilverBookFeatures.to_schema(),
        best_per_key(table_rows(per_minute)),  # the pass's own sessions of one minute too
        SILVER_BOOK_FEATURES.key,
        run_id=run_id,
        detected=now,
        fail_share=1.0,
    )
    written = write(tables, res.good, replayed.join(new.select(CHAIN).unique(), on=CHAIN, how="semi"))
    if old_version == new_version:  # nothing to keep beside the new carry
        keep = keep.head(0)
    write_carry(tables, keep, new_carry, new_version)
    return FeaturesPass(res, written)
