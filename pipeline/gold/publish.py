"""Publishing silver/candles as Qlib provider directories, atomically, in full or incrementally.

Layout under the gold folder (``<lake>/gold`` or ``gold_dir``)::

    qlib/okx-swap                -> .versions/okx-swap/v000007   (symlink: the stable provider_uri)
    qlib/.versions/okx-swap/v000007/{calendars,instruments,features,cryptolake.json}

A publish writes a new version folder aside, renames it into place, then swaps the symlink with one
``os.replace`` (atomic on POSIX): a reader sees the old dataset or the new one, never a mix. Qlib
resolves the symlink in ``qlib.init``, so a running process keeps reading the version it started with;
the last ``keep_versions`` versions are kept for such readers.

An incremental publish (used automatically when silver only gained newer bars since the live version)
hard-links the live version's feature files and appends to them; see ``binfile.append_series``.
Perpetual datasets also carry fields from other silver tables (``extra_fields``: funding, oi, basis,
liq_buy, liq_sell); a change there that is not a pure append after the published calendar (a restated
minute, a backfilled settlement) rebuilds the dataset in full.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from pipeline.errors import ConfigError
from pipeline.gold import extra_fields, names, source, writer
from pipeline.gold.calendar import ALL_FREQS, FREQ_STEP_US, FREQ_TIMEFRAME, check_freqs
from pipeline.gold.state import MANIFEST, FreqState, Manifest
from pipeline.gold.validate import validate_bars
from pipeline.lake.location import Lake

_VERSION = re.compile(r"^v(\d{6})$")


@dataclass(frozen=True)
class DatasetResult:
    dataset: str
    path: Path  # the stable provider_uri (a symlink)
    version_dir: Path
    mode: str  # "full" | "incremental" | "unchanged"
    bars: dict[str, int] = field(default_factory=dict)  # bars written per frequency
    calendar_len: dict[str, int] = field(default_factory=dict)
    instruments: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class PublishReport:
    gold_dir: Path
    silver_version: int
    datasets: tuple[DatasetResult, ...]

    def summary(self) -> str:
        return (
            "\n".join(
                f"{d.dataset}: {d.mode}, {sum(d.bars.values()):,} bars, {d.instruments} instruments, "
                f"calendars {d.calendar_len} in {d.seconds:.2f} s -> {d.path}"
                for d in self.datasets
            )
            or "no silver candles to publish"
        )


def gold_root(lake: Lake, gold_dir: str | Path | None = None) -> Path:
    """The local gold folder: ``gold_dir`` if given, else ``<lake>/gold`` (the lake must then be local)."""
    if gold_dir is not None:
        return Path(gold_dir).expanduser().resolve()
    if not lake.is_local:
        raise ConfigError(
            "gold_dir",
            f"the lake {lake.root} is object storage, but Qlib reads its dataset from local files",
            "pass gold_dir=<a local folder> (cryptolake gold --gold-dir DIR)",
        )
    return lake.local_path("gold").resolve()


def publish_qlib(
    lake: Lake,
    *,
    datasets: Sequence[str] | None = None,
    freqs: Sequence[str] = ALL_FREQS,
    gold_dir: str | Path | None = None,
    full: bool = False,
    keep_versions: int = 3,
) -> PublishReport:
    """Publish silver/candles as one Qlib provider directory per venue and market (e.g. ``okx-swap``)."""
    wanted_freqs = check_freqs(tuple(freqs))
    if keep_versions < 1:
        raise ConfigError("keep_versions", "must keep at least the live version", "use 1 or more (default 3)")
    picked = [names.check_dataset(d) for d in datasets] if datasets is not None else None
    root = gold_root(lake, gold_dir)
    snap = source.snapshot(lake)
    available = {
        names.dataset_name(v, m): (v, m)
        for v, m in source.venue_markets(snap, tuple(FREQ_TIMEFRAME[f] for f in wanted_freqs))
    }
    if picked is not None:
        missing = [d for d in picked if d not in available]
        if missing:
            raise ConfigError(
                "datasets",
                f"silver/candles has no bars for {missing}",
                f"pick from {sorted(available) or 'nothing yet: run silver first'}",
            )
    qlib_dir = root / "qlib"
    qlib_dir.mkdir(parents=True, exist_ok=True)
    results = []
    with _publish_lock(qlib_dir):
        for name in picked if picked is not None else sorted(available):
            venue, market = available[name]
            results.append(_publish_one(lake, snap, qlib_dir, name, venue, market, wanted_freqs, full, keep_versions))
    return PublishReport(root, snap.version, tuple(results))


def _publish_one(
    lake: Lake,
    snap: source.SilverSnapshot,
    qlib_dir: Path,
    dataset: str,
    venue: str,
    market: str,
    freqs: tuple[str, ...],
    full: bool,
    keep: int,
) -> DatasetResult:
    started = time.perf_counter()
    link = qlib_dir / dataset
    if link.exists() and not link.is_symlink():
        raise ConfigError(
            str(link),
            "is a real folder, not a published dataset link",
            "move it away; gold publishes datasets as symlinks",
        )
    live = link.resolve() if link.is_symlink() else None
    current = Manifest.load(live) if live is not None else None
    extra_tables = extra_fields.open_sources(lake, market)
    extra_versions = extra_fields.versions(extra_tables)
    incremental = False
    if (
        current is not None
        and not full
        and set(current.freqs) == set(freqs)
        and (current.venue, current.market) == (venue, market)
    ):
        if current.silver_version == snap.version and current.sources == extra_versions:
            assert live is not None  # a manifest was loaded from it
            return DatasetResult(
                dataset,
                link,
                live,
                "unchanged",
                calendar_len={f: s.calendar_len for f, s in current.freqs.items()},
                instruments=len(_instrument_names(current.freqs)),
                seconds=time.perf_counter() - started,
            )
        cutoffs = {FREQ_TIMEFRAME[f]: s.last_us for f, s in current.freqs.items()}
        incremental = source.appended_only(lake, current.silver_version, venue, cutoffs) and _extras_appended(
            lake, current, venue, market
        )

    # Read and check everything before touching the file system: names, then the contract.
    frames: dict[str, pl.DataFrame] = {}
    for freq in freqs:
        old = current.freqs[freq] if incremental and current is not None else FreqState()
        after = old.last_us if old.calendar_len else None
        bars = source.read_bars(snap, venue, market, FREQ_TIMEFRAME[freq], after_us=after)
        step = FREQ_STEP_US[freq]
        bars = extra_fields.with_extra_fields(
            extra_tables, bars, venue, market, step, None if after is None else after + step
        )
        names.check_unique([*old.series, *bars["instrument"].unique().to_list()])
        if incremental:
            # A few new bars: sort and derive change in polars, carrying each instrument's last close.
            bars = writer.with_derived_fields(bars, {n: s.last_close for n, s in old.series.items()})
        # (A full build derives factor and change from its dense arrays: no sort of the whole history.)
        extra = extra_fields.fields_for(market)
        validate_bars(bars.drop(extra), table=f"gold/qlib/{dataset}/{freq}")
        extra_fields.validate_extra(bars, market, table=f"gold/qlib/{dataset}/{freq}")
        frames[freq] = bars

    versions = qlib_dir / ".versions" / dataset
    versions.mkdir(parents=True, exist_ok=True)
    number = 1 + max((int(m.group(1)) for p in versions.iterdir() if (m := _VERSION.match(p.name))), default=0)
    tmp = versions / f".v{number:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        states: dict[str, FreqState] = {}
        if incremental and live is not None and current is not None:
            _link_tree(live, tmp)
            for freq in freqs:
                old = current.freqs[freq]
                states[freq] = (
                    writer.append_freq(tmp, freq, frames[freq], old)
                    if old.calendar_len
                    else writer.build_freq(tmp, freq, frames[freq])
                )
        else:
            tmp.mkdir(parents=True)
            for freq in freqs:
                states[freq] = writer.build_freq(tmp, freq, frames[freq])
        writer.write_instruments(tmp, states)
        manifest = Manifest(dataset, venue, market, snap.version, states, extra_versions)
        (tmp / MANIFEST).unlink(missing_ok=True)
        (tmp / MANIFEST).write_bytes(manifest.to_json())
        final = versions / f"v{number:06d}"
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _swap_link(link, final)
    _collect_garbage(versions, keep, protect={final, live})
    return DatasetResult(
        dataset,
        link,
        final,
        "incremental" if incremental else "full",
        bars={f: b.height for f, b in frames.items()},
        calendar_len={f: s.calendar_len for f, s in states.items()},
        instruments=len(_instrument_names(states)),
        seconds=time.perf_counter() - started,
    )


def _extras_appended(lake: Lake, current: Manifest, venue: str, market: str) -> bool:
    """Whether every extra-field table of the dataset only gained rows after each published calendar (then
    an incremental publish joins them onto the new bars); else the dataset is rebuilt in full."""
    published = [s.last_us + FREQ_STEP_US[f] for f, s in current.freqs.items() if s.calendar_len]
    first_us = max(published, default=0)
    return all(
        extra_fields.appended_after(lake, s.spec, s.time_col, current.sources.get(s.spec.key), venue, first_us)
        for s in extra_fields.sources_for(market)
    )


def _instrument_names(states: dict[str, FreqState]) -> set[str]:
    return {n for s in states.values() for n in s.series}


def _link_tree(live: Path, target: Path) -> None:
    """The new version starts as hard links of the live feature files (no copy of history) and copies
    of the small text files (rewritten anyway; a copy keeps frequencies without new bars intact)."""
    for folder, _dirs, files in os.walk(live):
        rel = Path(folder).relative_to(live)
        (target / rel).mkdir(parents=True, exist_ok=True)
        for fname in files:
            src, dst = Path(folder) / fname, target / rel / fname
            if fname.endswith(".bin"):
                os.link(src, dst)
            else:
                shutil.copyfile(src, dst)


def _swap_link(link: Path, target: Path) -> None:
    tmp_link = link.with_name(f".{link.name}.link-{os.getpid()}")
    tmp_link.unlink(missing_ok=True)
    os.symlink(os.path.relpath(target, link.parent), tmp_link, target_is_directory=True)
    os.replace(tmp_link, link)  # rename(2) over the old symlink: atomic


def _collect_garbage(versions: Path, keep: int, protect: set[Path | None]) -> None:
    numbered = sorted((p for p in versions.iterdir() if _VERSION.match(p.name)), key=lambda p: p.name)
    for old in numbered[:-keep]:
        if old not in protect:
            shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _publish_lock(qlib_dir: Path) -> Iterator[None]:
    """One publisher per gold folder at a time (two would race for the same version number)."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; symlink swaps need POSIX anyway
        yield
        return
    with open(qlib_dir / ".publish.lock", "w") as fp:
        fcntl.flock(fp, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fp, fcntl.LOCK_UN)
