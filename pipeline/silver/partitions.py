"""Silver's backlog cut into partitions (venue x instrument group x day), each computed on its own (a Dask
worker, through ``flows/silver_fanout.py``), then committed together: one Delta transaction per table.

Why a day is a partition: a trade key lives in one day (silver/trades is partitioned by the trade's date and
the dedupe looks there), a 1m bar's trades are that minute's and every timeframe up to 1d divides a day, so
a day's bars depend on that day's rows only. A partition runs the single-process steps (``run.candle_step``,
``run.quote_bar_step``) on its slice of every input: the new bronze rows of its venue, instruments and day,
the work set clipped to the day and restricted to its instruments. The union of the partitions' bars is
what one pass over the whole backlog computes.

Workers only write Parquet files and return their add actions (``fast_append.write_files``); bars that
replace stored ones are written the same way, and the stored files holding the old versions are rewritten
without them (``rewrite``: remove + add). ``commit`` then commits each table once, with an application
transaction, so a failed partition leaves nothing half-committed and a retried commit is not applied twice.

Not covered (the single pass sees the whole batch): a ``sequence_order`` inversion across a UTC midnight and
copies of one trade whose timestamps straddle midnight are judged within each day. Local lakes only (workers
write the files through the filesystem; an object-store lake takes ``cryptolake silver``).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from functools import partial

import polars as pl
from deltalake.transaction import AddAction, RemoveAction

from contracts import bronze as bronze_contracts
from pipeline.errors import ConfigError, CryptolakeError
from pipeline.lake import fast_append
from pipeline.lake.location import Lake
from pipeline.lake.tables import (
    BRONZE_CANDLES,
    BRONZE_QUOTES,
    BRONZE_TRADES,
    SILVER_CANDLES,
    SILVER_QUOTE_BARS,
    SILVER_TRADES,
    TableSpec,
)
from pipeline.silver import files, trades, writes
from pipeline.silver.derivative_bars import derivative_bars_step
from pipeline.silver.funding import funding_step
from pipeline.silver.handles import Handles
from pipeline.silver.incremental import DAY, EPOCH, MINUTE, WorkSet, floor_to, touched_buckets, work_set
from pipeline.silver.report import SilverReport
from pipeline.silver.run import H_CANDLES, H_QUOTES, candle_step, quote_bar_step
from pipeline.silver.validate import Checked, RuleFailure, check
from pipeline.silver.writes import Watermark, Written

BRONZE = (BRONZE_TRADES, BRONZE_CANDLES, BRONZE_QUOTES)
TS = {BRONZE_TRADES.key: "exchange_ts", BRONZE_CANDLES.key: "open_time", BRONZE_QUOTES.key: "exchange_ts"}
STAGED = (SILVER_TRADES, SILVER_CANDLES, SILVER_QUOTE_BARS)  # the tables partitions write
DEFAULT_GROUP_SIZE = 25  # instruments of one venue per partition
APP_ID = "cryptolake-silver-fanout"  # the application transaction of the fan-out's commits


@dataclass(frozen=True)
class Partition:
    """One venue's instrument group on one UTC day; ``venue`` None: the new bronze rows with no venue,
    instrument or time (they can only be quarantined)."""

    venue: str | None
    group: int
    instruments: tuple[str, ...]
    day: dt.date | None

    @property
    def name(self) -> str:
        return "unplaced-rows" if self.venue is None else f"{self.venue}-g{self.group}-{self.day}"

    @property
    def start(self) -> dt.datetime:
        assert self.day is not None
        return dt.datetime.combine(self.day, dt.time(), dt.UTC)

    def only(self) -> pl.Expr:
        return (pl.col("venue") == self.venue) & pl.col("instrument").is_in(list(self.instruments))

    def rows(self, ts_col: str) -> pl.Expr:
        """This partition's rows of a bronze batch."""
        unplaced = pl.any_horizontal(pl.col("venue", "instrument", ts_col).is_null())
        if self.venue is None:
            return unplaced
        t = pl.col(ts_col)
        return ~unplaced & self.only() & (t >= self.start) & (t < self.start + DAY)


@dataclass(frozen=True)
class Job:
    """What a worker needs for one partition: the plan's settings and the file listings of its slice."""

    partition: Partition
    lake: Lake
    run_id: str
    now: dt.datetime
    h_new: dt.datetime
    h_old: dt.datetime | None  # the candle horizon the work set starts from (None: everything)
    q_old: dt.datetime | None  # the quote-bar horizon
    window: dict[str, float]
    do_trades: bool  # False: bronze trades or candles failed at the table level (schema drift)
    do_quotes: bool
    new: dict[str, files.FileSet]  # bronze files since the watermarks (this slice's)
    listed: dict[str, files.FileSet]  # every file of the tables read for rescans and existing rows

    def __dask_tokenize__(self) -> tuple[str, ...]:
        # Dask names a submitted call by hashing its arguments; hashing the file listings cost ~0.25 s a
        # partition in the flow's process. This names the same job (the run and the partition) in microseconds.
        return ("silver-partition", self.run_id, self.now.isoformat(), self.partition.name)


@dataclass
class PartitionResult:
    name: str
    checked: list[Checked]  # good rows dropped (only counts travel back): see ``_light``
    total: dict[str, int]  # rows of each bronze table in the slice
    good: dict[str, int]  # of which passed their contract
    actions: dict[str, list[AddAction]]
    updates: dict[str, pl.DataFrame]  # keys of bars that replace stored ones
    report: SilverReport
    seconds: float


class Listed(Handles):
    """The plan's file listings in place of open tables: a worker opens no Delta log and commits nothing."""

    def __init__(self, lake: Lake, listings: dict[str, files.FileSet]) -> None:
        super().__init__(lake)
        self._listings = listings

    def files(self, spec: TableSpec) -> files.FileSet:
        return self._listings[spec.key]

    def table(self, spec: TableSpec):  # noqa: ANN201 - never returns
        raise CryptolakeError(f"a silver partition does not open {spec.key}: it reads the plan's listing")


@dataclass
class Stage:
    """Writes of one partition as data files, to be committed by the flow (``writes.Upsert`` for the steps)."""

    lake: Lake
    actions: dict[str, list[AddAction]] = field(default_factory=dict)
    updates: dict[str, pl.DataFrame] = field(default_factory=dict)

    def append(self, spec: TableSpec, rows: pl.DataFrame | pl.LazyFrame) -> int:
        acts, count = fast_append.write_files(self.lake, spec, rows)
        self.actions.setdefault(spec.key, []).extend(acts)
        return count

    def upsert(
        self, tables: Handles, spec: TableSpec, rows: pl.DataFrame, existing: pl.DataFrame, key: tuple[str, ...]
    ) -> Written:
        """``writes.upsert``'s diff; changed rows go to new files, the keys of updated ones to ``rewrite``."""
        rows = writes.conform(rows, spec)
        if rows.height == 0:
            return Written()
        changed, updates = writes.diff(rows, writes.conform(existing, spec), key)
        if changed.height:
            self.append(spec, changed)
        if updates.height:
            keys = updates.select(key)
            self.updates[spec.key] = pl.concat([self.updates.get(spec.key, keys.head(0)), keys])
        return Written(inserted=changed.height - updates.height, updated=updates.height)


# --- planning (in the flow's process) ---------------------------------------------------------------


@dataclass
class Plan:
    lake: Lake
    run_id: str
    now: dt.datetime
    h_new: dt.datetime
    fail_share: float
    window: dict[str, float]
    marks: dict[str, Watermark]
    new: dict[str, files.FileSet]
    listed: dict[str, files.FileSet]
    failures: list[RuleFailure]  # schema drift found on the logs
    read: dict[str, int]  # new rows of each bronze table (also those of a drifted table, not read)
    h_old: dt.datetime | None
    q_old: dt.datetime | None
    partitions: list[Partition]
    tables: Handles  # opened once: the commit writes through the handles the plan read
    # The application-transaction version of this plan's commits: a retried commit of the same plan finds
    # it in the table and is skipped; another plan (even with the same ``now``) has its own.
    txn_version: int = field(default_factory=lambda: time.time_ns() // 1000)

    @property
    def do_trades(self) -> bool:
        return not {f.table for f in self.failures} & {BRONZE_TRADES.key, BRONZE_CANDLES.key}

    @property
    def do_quotes(self) -> bool:
        return BRONZE_QUOTES.key not in {f.table for f in self.failures}

    def job(self, p: Partition) -> Job:
        def cut(fs: files.FileSet, ts_col: str) -> files.FileSet:
            if p.venue is None:
                return fs
            return files.overlapping(files.partition_filter(fs, "venue", [p.venue]), ts_col, p.start, p.start + DAY)

        ts = {
            **TS,
            SILVER_TRADES.key: "exchange_ts",
            SILVER_CANDLES.key: "open_time",
            SILVER_QUOTE_BARS.key: "open_time",
        }
        return Job(
            p,
            self.lake,
            self.run_id,
            self.now,
            self.h_new,
            self.h_old,
            self.q_old,
            self.window,
            self.do_trades,
            self.do_quotes,
            {k: cut(fs, TS[k]) for k, fs in self.new.items()},
            {k: cut(fs, ts[k]) for k, fs in self.listed.items()},
        )


def _window(h_old: dt.datetime | None, h_new: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The window of ``work_set`` (without its late buckets, which come from the new rows)."""
    return (EPOCH, h_new) if h_old is None else (h_old, max(h_new, h_old))


def plan(
    lake: Lake,
    *,
    now: dt.datetime,
    run_id: str,
    lateness_secs: float = 60.0,
    fail_share: float = 0.05,
    skew_secs: float = 300.0,
    restate_candles: bool = False,
    group_size: int = DEFAULT_GROUP_SIZE,
) -> Plan:
    """The partitions of what silver has to do: every (venue, instrument group, day) holding a new bronze
    row, or a row the window since the last horizon recomputes (silver trades, exchange candles, stored 1m
    bars, quotes). Reads only venue, instrument and time columns."""
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ConfigError("group_size", f"{group_size!r} is not a positive whole number", "give e.g. 25")
    if not lake.is_local:
        raise ConfigError(
            "lake", f"{lake.root} is object storage", "run `cryptolake silver` (the Dask fan-out needs a local lake)"
        )
    h_new = floor_to(now - dt.timedelta(seconds=lateness_secs), MINUTE)
    tables = Handles(lake)
    marks = writes.read_watermarks(tables)
    new: dict[str, files.FileSet] = {}
    failures: list[RuleFailure] = []
    read: dict[str, int] = {}
    for spec in BRONZE:
        fs = files.files_since(lake, tables.files(spec), marks.get(spec.key, Watermark()).version)
        read[spec.key] = fs.rows
        drift = files.schema_drift(tables.table(spec), spec)
        if drift:  # as the single pass: the table fails before a row is read
            failures.append(
                RuleFailure(spec.key, "schema:drift", fs.rows, fs.rows, [{"problem": d} for d in drift], fatal=True)
            )
            fs = fs.without(fs)
        new[spec.key] = fs
    listed = {s.key: tables.files(s) for s in (BRONZE_CANDLES, BRONZE_QUOTES, *STAGED)}
    h_old = None if restate_candles else marks.get(H_CANDLES, Watermark()).horizon
    q_old = marks.get(H_QUOTES, Watermark()).horizon
    lo, hi = _window(h_old, h_new)
    q_lo, q_hi = _window(q_old, h_new)

    def seen(fs: files.FileSet, ts_col: str, rng: tuple[dt.datetime, dt.datetime] | None = None) -> pl.LazyFrame:
        if rng is not None:
            fs = files.overlapping(fs, ts_col, *rng)
        rows = files.scan(lake, fs, ["venue", "instrument", ts_col])
        if rng is not None:
            rows = rows.filter(pl.col(ts_col).is_between(*rng, closed="left"))
        return rows.select("venue", "instrument", day=pl.col(ts_col).dt.date())

    sources = [seen(fs, TS[k]) for k, fs in new.items()]
    sources += [
        seen(listed[SILVER_TRADES.key], "exchange_ts", (lo, hi)),
        seen(listed[BRONZE_CANDLES.key].without(new[BRONZE_CANDLES.key]), "open_time", (lo, hi)),
        seen(
            files.partition_filter(listed[SILVER_CANDLES.key], "timeframe", ["1m"]),
            "open_time",
            (floor_to(lo, DAY), hi),
        ),
        seen(listed[BRONZE_QUOTES.key].without(new[BRONZE_QUOTES.key]), "exchange_ts", (q_lo, q_hi)),
    ]
    cover = pl.concat(sources).unique().collect(engine="streaming")
    return Plan(
        lake,
        run_id,
        now,
        h_new,
        fail_share,
        {"skew_secs": skew_secs},
        marks,
        new,
        listed,
        failures,
        read,
        h_old,
        q_old,
        partitions(cover, group_size),
        tables,
    )


def partitions(cover: pl.DataFrame, group_size: int) -> list[Partition]:
    """``cover`` (venue, instrument, day) as partitions: each venue's instruments in sorted groups of
    ``group_size``, one partition per group and day that holds a row (plus one for unplaced rows)."""
    out: list[Partition] = []
    if cover.select(pl.any_horizontal(pl.all().is_null()).any()).item():
        out.append(Partition(None, 0, (), None))
    placed = cover.drop_nulls()
    for (venue,), rows in placed.group_by("venue", maintain_order=False):
        names = sorted(rows["instrument"].unique().to_list())
        groups = {name: i // group_size for i, name in enumerate(names)}
        members = [tuple(names[g * group_size : (g + 1) * group_size]) for g in range(max(groups.values()) + 1)]
        pairs = rows.select(g=pl.col("instrument").replace_strict(groups, return_dtype=pl.Int64), day="day").unique()
        for g, day in pairs.iter_rows():
            out.append(Partition(str(venue), g, members[g], day))
    return sorted(out, key=lambda p: (p.day or dt.date.min, p.venue or "", p.group))


# --- one partition (on a worker) --------------------------------------------------------------------


def _clip(ws: WorkSet, p: Partition) -> WorkSet:
    """The work set on the partition's day and instruments (a day's bars need no other day's rows)."""
    lo, hi = max(ws.lo, p.start), min(ws.hi, p.start + DAY)
    return WorkSet(min(lo, hi), hi, ws.late.filter(p.only()), p.only())


def compute(job: Job) -> PartitionResult:
    """Validate the partition's new bronze rows, find its new trades, compute its bars; write data files only."""
    started = time.perf_counter()
    p, lake = job.partition, job.lake
    tables = Listed(lake, {**job.new, **job.listed})
    report = SilverReport(job.run_id, job.now, job.h_new)
    # The failing share is judged over all partitions (``commit``), not per partition.
    chk = partial(check, run_id=job.run_id, detected=job.now, fail_share=1.0)
    batch = {k: files.scan(lake, fs).filter(p.rows(TS[k])).collect() for k, fs in job.new.items()}
    tbatch, cbatch, qbatch = batch[BRONZE_TRADES.key], batch[BRONZE_CANDLES.key], batch[BRONZE_QUOTES.key]
    early = trades.new_rows(tables, tbatch) if tbatch.height and p.venue is not None else None
    decided = {bronze_contracts.TRADE_ID_CONSISTENT: lambda: early.consistent} if early is not None else None
    t_schema = bronze_contracts.trades_schema(job.now, **job.window)
    t_ok = chk(t_schema, tbatch, BRONZE_TRADES.key, decided=decided)
    c_schema = bronze_contracts.candles_schema(job.now, **job.window)
    c_ok = chk(c_schema, cbatch, BRONZE_CANDLES.key)
    q_schema = bronze_contracts.quotes_schema(job.now, **job.window)
    q_ok = chk(q_schema, qbatch, BRONZE_QUOTES.key)
    if p.venue is None and (t_ok.good.height or c_ok.good.height or q_ok.good.height):
        raise CryptolakeError("bronze rows without a venue, instrument or time passed their contract")
    stage = Stage(lake)
    if job.do_trades and p.venue is not None and not (t_ok.fatal or c_ok.fatal):
        keep = early.keep if early is not None and t_ok.good is tbatch else None
        if t_ok.good.height and keep is None:
            keep = trades.new_rows(tables, t_ok.good).keep
        fresh = t_ok.good.lazy().filter(keep) if keep is not None else t_ok.good.lazy()
        inserted = stage.append(SILVER_TRADES, fresh) if t_ok.good.height else 0
        report.count(SILVER_TRADES.key, inserted)
        report.duplicates += t_ok.good.height - inserted
        touched = pl.concat([touched_buckets(t_ok.good, "exchange_ts"), touched_buckets(c_ok.good, "open_time")])
        ws = _clip(work_set(touched, job.h_old, job.h_new), p)
        if not ws.empty:
            before = tables.files(SILVER_TRADES)
            cfiles = job.new[BRONZE_CANDLES.key]
            candle_step(tables, ws, job.h_old, fresh, before, c_ok.good, cfiles, c_schema, report, upsert=stage.upsert)
    if job.do_quotes and p.venue is not None and not q_ok.fatal:
        ws_q = _clip(work_set(touched_buckets(q_ok.good, "exchange_ts"), job.q_old, job.h_new), p)
        if not ws_q.empty:
            qfiles = job.new[BRONZE_QUOTES.key]
            quote_bar_step(tables, ws_q, q_ok.good, qfiles, q_schema, report, upsert=stage.upsert)
    return PartitionResult(
        p.name,
        [_light(c) for c in (t_ok, c_ok, q_ok)],
        {k: b.height for k, b in batch.items()},
        {c.table: c.good.height for c in (t_ok, c_ok, q_ok)},
        stage.actions,
        stage.updates,
        report,
        time.perf_counter() - started,
    )


def _light(c: Checked) -> Checked:
    """A check's result without its good rows (they were written; the flow only needs their count)."""
    return Checked(c.table, c.good.head(0).with_columns(), c.quarantine, c.failures)


# --- rewriting stored files that hold replaced rows (on workers) ------------------------------------


@dataclass(frozen=True)
class Rewrite:
    """Stored files of one table that hold rows some partition replaced, and the keys replaced."""

    lake: Lake
    spec: TableSpec
    files: files.FileSet
    keys: pl.DataFrame

    @property
    def name(self) -> str:
        return f"rewrite-{self.spec.name}-{self.files.actions.height}-files"


def rewrites(
    lake: Lake, listed: dict[str, files.FileSet], results: list[PartitionResult], per_task: int = 50
) -> list[Rewrite]:
    """The stored files (``listed``: the plan's listings) whose time range meets a key some partition
    replaced, in tasks of ``per_task`` files."""
    out = []
    for spec in (SILVER_CANDLES, SILVER_QUOTE_BARS):
        parts = [r.updates[spec.key] for r in results if spec.key in r.updates]
        if not parts:
            continue
        keys = pl.concat(parts).unique()
        fs = listed[spec.key]
        a = fs.actions
        on = [c for c in spec.partition_by if c in keys.columns and f"partition.{c}" in a.columns]
        hit = (
            a.join(
                keys.select(*on, "open_time").rename({c: f"partition.{c}" for c in on}),
                on=[f"partition.{c}" for c in on],
            )
            .filter(pl.col("open_time").is_between(pl.col("min.open_time"), pl.col("max.open_time")))
            .select("path")
            .unique()
        )
        touched = a.filter(pl.col("path").is_in(hit["path"].implode()))
        for i in range(0, touched.height, per_task):
            chunk = files.FileSet(spec, fs.table_uri, touched.slice(i, per_task), fs.version)
            out.append(Rewrite(lake, spec, chunk, keys))
    return out


def rewrite(job: Rewrite) -> list[AddAction | RemoveAction]:
    """Each file without the replaced rows: its remove action and, if rows are left, the new file's add."""
    out: list[AddAction | RemoveAction] = []
    key = list(job.keys.columns)
    now_ms = int(time.time() * 1000)
    for row in job.files.actions.iter_rows(named=True):
        one = files.FileSet(
            job.spec, job.files.table_uri, job.files.actions.filter(pl.col("path") == row["path"]), None
        )
        rows = files.scan(job.lake, one).collect()
        kept = rows.join(job.keys, on=key, how="anti", nulls_equal=True)
        if kept.height == rows.height:
            continue
        if kept.height:
            acts, _ = fast_append.write_files(job.lake, job.spec, kept)
            out += acts
        values = {c: _text(row[f"partition.{c}"]) for c in job.spec.partition_by}
        out.append(RemoveAction(row["path"], True, now_ms, row.get("size_bytes"), values))
    return out


def _text(value: object) -> str | None:
    return None if value is None else value.isoformat() if isinstance(value, dt.date) else str(value)


# --- the commit (in the flow's process) -------------------------------------------------------------


def _merged_failures(p: Plan, results: list[PartitionResult]) -> list[RuleFailure]:
    """The partitions' rule failures as one pass over the whole batch reports them, plus the failing share
    over all partitions (each partition checked with no share limit)."""
    out = list(p.failures)
    for spec in BRONZE:
        total = sum(r.total.get(spec.key, 0) for r in results)
        by_rule: dict[str, list[RuleFailure]] = {}
        for r in results:
            for c in r.checked:
                if c.table == spec.key:
                    for f in c.failures:
                        by_rule.setdefault(f.rule, []).append(f)
        for rule, fs in by_rule.items():
            sample = [s for f in fs for s in f.sample][:5]
            out.append(
                RuleFailure(spec.key, rule, sum(f.failed_rows for f in fs), total, sample, any(f.fatal for f in fs))
            )
        bad = total - sum(r.good.get(spec.key, 0) for r in results)
        if total and bad / total > p.fail_share:
            share: list[dict[str, object]] = [
                {"failed_rows": bad, "total_rows": total, "share": round(bad / total, 6), "threshold": p.fail_share}
            ]
            out.append(RuleFailure(spec.key, "failing_share", bad, total, share, fatal=True))
    return out


def commit(
    p: Plan, results: list[PartitionResult], rewritten: dict[str, list[AddAction | RemoveAction]]
) -> SilverReport:
    """Commit the partitions' files, one Delta transaction per table (trades, candles, quote bars), then
    funding and derivative bars (single-process steps), quarantine and the watermarks, in the order of
    a single pass. A table that failed at the table level commits nothing: its files are removed."""
    report = SilverReport(p.run_id, p.now, p.h_new)
    report.passes = 1
    report.failures = _merged_failures(p, results)
    for spec in BRONZE:
        report.bronze_rows[spec.key] = p.read[spec.key]
        report.good[spec.key] = sum(r.good.get(spec.key, 0) for r in results)
    fatal = {f.table for f in report.fatal}
    t_ok = p.do_trades and not fatal & {BRONZE_TRADES.key, BRONZE_CANDLES.key}
    q_ok = p.do_quotes and BRONZE_QUOTES.key not in fatal
    new_marks = dict(p.marks)
    for spec, ok in ((SILVER_TRADES, t_ok), (SILVER_CANDLES, t_ok), (SILVER_QUOTE_BARS, q_ok)):
        actions: list[AddAction | RemoveAction] = [a for r in results for a in r.actions.get(spec.key, [])]
        actions += rewritten.get(spec.key, [])
        if not ok:
            fast_append.discard(p.lake, spec, [a for a in actions if isinstance(a, AddAction)])
            continue
        try:
            _commit_table(p, spec, actions)
        except CryptolakeError:
            fast_append.discard(p.lake, spec, [a for a in actions if isinstance(a, AddAction)])
            raise  # the tables committed before stay: the next run's keyed writes redo the rest exactly
        report.count(
            spec.key,
            sum(r.report.written.get(spec.key, 0) for r in results),
            sum(r.report.updated.get(spec.key, 0) for r in results),
        )
    if t_ok:
        report.duplicates = sum(r.report.duplicates for r in results)
        new_marks[BRONZE_TRADES.key] = Watermark(p.new[BRONZE_TRADES.key].version)
        new_marks[BRONZE_CANDLES.key] = Watermark(p.new[BRONZE_CANDLES.key].version)
        new_marks[H_CANDLES] = Watermark(horizon=_window(p.h_old, p.h_new)[1])
    if q_ok:
        new_marks[BRONZE_QUOTES.key] = Watermark(p.new[BRONZE_QUOTES.key].version)
        new_marks[H_QUOTES] = Watermark(horizon=_window(p.q_old, p.h_new)[1])
    checked = [c for r in results for c in r.checked]
    tables = p.tables
    f_checked, _ = funding_step(tables, p.marks, new_marks, report, p.h_new, None)
    kw = {"run_id": p.run_id, "detected": p.now, "fail_share": p.fail_share}
    db_checked, _ = derivative_bars_step(
        tables, p.marks, new_marks, report, p.h_new, max_rows=None, window=p.window, kw=kw
    )
    checked += [f_checked, *db_checked]  # (the steps put their failures in the report themselves)
    quarantine = pl.concat([c.quarantine for c in checked])
    report.count("silver/quarantine", writes.quarantine(tables, quarantine))
    if new_marks != p.marks:
        writes.write_watermarks(tables, new_marks, p.run_id, p.now)
    report.watermarks = {k: v.version for k, v in new_marks.items() if v.version is not None}
    for f in report.failures:
        if not f.fatal:
            key = f"{f.table} {f.rule}"
            report.quarantined[key] = report.quarantined.get(key, 0) + f.failed_rows
    return report


def _commit_table(p: Plan, spec: TableSpec, actions: list[AddAction | RemoveAction]) -> None:
    """One transaction, skipped when a commit of this plan (same app version) already landed: a retried
    commit is not applied twice."""
    if not actions:
        return
    handle = p.tables.table(spec)
    if handle is not None and handle.transaction_version(APP_ID) == p.txn_version:
        return
    fast_append.commit(p.lake, spec, actions, handle=handle, txn=(APP_ID, p.txn_version))
    if handle is None:
        p.tables.created(spec)
