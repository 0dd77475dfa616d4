"""Writing one frequency of a Qlib provider directory from silver bars, in full or as an append.

Vectorised: one ``np.unique`` builds the calendar, one ``searchsorted`` places every bar on it, and
each instrument's field is one NaN-padded float32 array written with one ``tofile`` (field notes:
~7x faster than ``dump_bin.py``). A full build and an append of the same bars produce the same bytes:
an append pads the gap between an instrument's last bar and its next one with NaN against the
calendar (``dump_bin.py dump_update`` does not, and shifts every later value).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from pipeline.gold import binfile, names
from pipeline.gold.calendar import FREQ_STEP_US, calendar_text, format_times, future_slots, is_intraday
from pipeline.gold.errors import GoldContractError
from pipeline.gold.source import FIELD_COLUMNS, FIELDS
from pipeline.gold.state import FreqState, Series
from pipeline.gold.validate import validate_calendar


def with_derived_fields(bars: pl.DataFrame, prev_close: dict[str, float] | None = None) -> pl.DataFrame:
    """Add ``factor`` (1.0) and ``change`` = close / previous bar's close - 1 (Qlib's convention), sorted
    by instrument and time.

    The previous bar is the instrument's previous *existing* bar (a hole does not reset it); the first
    bar of an instrument has no change (NaN) unless ``prev_close`` carries its close from a former run.
    Used for small frames (incremental bars, read-back samples); ``build_freq`` computes the same
    numbers on its dense arrays without sorting the whole history.
    """
    prev = pl.col("close").shift(1).over("instrument")
    if prev_close:
        carried = pl.col("instrument").replace_strict(prev_close, default=None, return_dtype=pl.Float64)
        prev = prev.fill_null(carried)
    return bars.sort("instrument", "t").with_columns(
        pl.lit(1.0).alias("factor"),
        (pl.col("close") / prev - 1.0).fill_null(float("nan")).alias("change"),
    )


def _groups(bars: pl.DataFrame) -> list[tuple[str, int, int]]:
    """(instrument, first row, row count) of each instrument in a frame sorted by instrument."""
    counts = bars.group_by("instrument", maintain_order=True).len()
    offsets = np.concatenate([[0], np.cumsum(counts["len"].to_numpy())[:-1]])
    return [
        (str(n), int(o), int(c))
        for n, o, c in zip(counts["instrument"].to_list(), offsets, counts["len"].to_list(), strict=True)
    ]


def extra_columns(bars: pl.DataFrame) -> list[str]:
    """The fields of ``bars`` beyond the candle fields (``extra_fields``: funding, oi, ...), in frame order."""
    return [c for c in bars.columns if c not in ("instrument", "t", *FIELDS)]


def _field_arrays(bars: pl.DataFrame) -> dict[str, np.ndarray]:
    return {f: bars[f].to_numpy().astype(binfile.F32) for f in (*FIELDS, *extra_columns(bars))}


def _calendar_slots(times: np.ndarray, step_us: int) -> tuple[np.ndarray, np.ndarray]:
    """The calendar (sorted distinct times) and each row's slot in it, in O(rows) when bars sit on the
    timeframe grid (silver's are): a presence mask over the grid replaces a sort of every timestamp."""
    lo = int(times.min())
    rel = times - lo
    grid = rel // step_us
    if (rel % step_us).any() or int(grid.max()) > 50 * len(times) + 1_000_000:
        calendar = np.unique(times)
        return calendar, np.searchsorted(calendar, times)
    present = np.zeros(int(grid.max()) + 1, dtype=bool)
    present[grid] = True
    lookup = np.cumsum(present) - 1
    return lo + np.flatnonzero(present).astype(np.int64) * step_us, lookup[grid]


def _duplicates(table: str, name: str, count: int, distinct: int) -> None:
    if distinct != count:
        raise GoldContractError(
            table, {"one bar per instrument and slot": count - distinct}, count, [{"instrument": name}]
        )


def build_freq(root: Path, freq: str, bars: pl.DataFrame) -> FreqState:
    """Write ``calendars/<freq>.txt``, ``<freq>_future.txt`` and every ``features/*/<field>.<freq>.bin``.

    ``bars`` may come in any order (silver files are not sorted): rows are grouped by a stable sort of
    small integer instrument codes and scattered onto each instrument's dense calendar range."""
    state = FreqState()
    if bars.is_empty():
        return state
    times = bars["t"].to_numpy()
    calendar, slots = _calendar_slots(times, FREQ_STEP_US[freq])
    instruments = sorted(bars["instrument"].unique().to_list())
    codes = bars["instrument"].cast(pl.Enum(instruments)).to_physical().to_numpy()
    order = np.argsort(codes, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=len(instruments)))])
    close64 = bars["close"].to_numpy()
    arrays = {f: bars[f].to_numpy().astype(binfile.F32) for f in (*FIELD_COLUMNS, *extra_columns(bars))}
    for i, name in enumerate(instruments):
        rows = order[bounds[i] : bounds[i + 1]]
        folder = root / "features" / names.feature_dir_name(name)
        folder.mkdir(parents=True, exist_ok=True)
        where = slots[rows]
        start, end = int(where.min()), int(where.max())
        offsets = where - start
        dense_close = np.full(end - start + 1, np.nan)
        dense_close[offsets] = close64[rows]
        _duplicates(f"gold/qlib/{freq}", name, len(rows), int(np.count_nonzero(~np.isnan(dense_close))))
        for f, values in arrays.items():
            dense = np.full(end - start + 1, np.nan, dtype=binfile.F32)
            dense[offsets] = values[rows]
            binfile.write_series(folder / f"{f}.{freq}.bin", start, dense)
        binfile.write_series(folder / f"factor.{freq}.bin", start, np.where(np.isnan(dense_close), np.nan, 1.0))
        binfile.write_series(folder / f"change.{freq}.bin", start, _change(dense_close))
        state.series[name] = Series(start, end, int(calendar[start]), int(calendar[end]), float(dense_close[-1]))
    validate_calendar(calendar, table=f"gold/qlib/{freq}")
    state.calendar_len, state.last_us = len(calendar), int(calendar[-1])
    _write_calendars(root, freq, calendar_text(calendar, freq), state.last_us)
    return state


def _change(dense_close: np.ndarray) -> np.ndarray:
    """close / previous existing close - 1 on a NaN-padded float64 series (NaN at holes and at the start)."""
    index = np.where(np.isnan(dense_close), -1, np.arange(len(dense_close)))
    last_seen = np.maximum.accumulate(index)
    prev = np.full(len(dense_close), -1)
    prev[1:] = last_seen[:-1]
    prev_close = np.where(prev >= 0, dense_close[np.maximum(prev, 0)], np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        return dense_close / prev_close - 1.0


def append_freq(root: Path, freq: str, bars: pl.DataFrame, old: FreqState) -> FreqState:
    """Append bars that all open after ``old.last_us`` to a version whose files are hard links of the
    live version (see ``binfile.append_series`` for why appending in place is safe)."""
    if bars.is_empty():
        return old
    times = bars["t"].to_numpy()
    if int(times.min()) <= old.last_us:
        raise ValueError("append_freq needs bars after the published calendar")  # publish guarantees it
    new_slots = np.unique(times)
    slots = old.calendar_len + np.searchsorted(new_slots, times)
    closes = bars["close"].to_numpy()
    arrays = _field_arrays(bars)
    state = FreqState(old.calendar_len + len(new_slots), int(new_slots[-1]), dict(old.series))
    for name, first, count in _groups(bars):
        rows = slice(first, first + count)
        folder = root / "features" / names.feature_dir_name(name)
        folder.mkdir(parents=True, exist_ok=True)
        begin, end = int(slots[first]), int(slots[first + count - 1])
        offsets = slots[rows] - begin
        _duplicates(f"gold/qlib/{freq}", name, count, len(np.unique(offsets)))
        prior = old.series.get(name)
        for f, values in arrays.items():
            dense = np.full(end - begin + 1, np.nan, dtype=binfile.F32)
            dense[offsets] = values[rows]
            path = folder / f"{f}.{freq}.bin"
            if prior is None:
                binfile.write_series(path, begin, dense)
            else:
                binfile.append_series(
                    path,
                    expected_values=prior.length,
                    pad=begin - prior.end - 1,
                    dense=dense,
                    # In place only if the live version's calendar ends at this series' last bar.
                    shared=prior.end == old.calendar_len - 1,
                )
        first_us = prior.first_us if prior else int(times[first])
        start = prior.start if prior else begin
        state.series[name] = Series(
            start, end, first_us, int(times[first + count - 1]), float(closes[first + count - 1])
        )
    validate_calendar(np.concatenate([[old.last_us], new_slots]), table=f"gold/qlib/{freq}")
    old_text = (root / "calendars" / f"{freq}.txt").read_bytes()
    _write_calendars(root, freq, old_text + calendar_text(new_slots, freq), state.last_us)
    return state


def _write_calendars(root: Path, freq: str, text: bytes, last_us: int) -> None:
    cal_dir = root / "calendars"
    cal_dir.mkdir(parents=True, exist_ok=True)
    # Fresh files (unlink first): calendars are read whole, so a hard link shared with the live
    # version must never be written through.
    for name, body in (
        (f"{freq}.txt", text),
        (f"{freq}_future.txt", text + calendar_text(future_slots(last_us, freq), freq)),
    ):
        path = cal_dir / name
        path.unlink(missing_ok=True)
        path.write_bytes(body)


def write_instruments(root: Path, freqs: dict[str, FreqState]) -> None:
    """``instruments/all.txt``: CODE<TAB>first bar<TAB>last bar over every published frequency.

    One file serves every frequency (Qlib has one per market), so the span is the union; it is written
    with the intraday format whenever an intraday frequency is present, else the daily one (what
    dump_bin writes for a single frequency). Rows sorted by feature folder name, as dump_bin lists its
    per-instrument source files."""
    spans: dict[str, list[int]] = {}
    for state in freqs.values():
        for name, s in state.series.items():
            span = spans.setdefault(name, [s.first_us, s.last_us])
            span[0], span[1] = min(span[0], s.first_us), max(span[1], s.last_us)
    intraday = any(is_intraday(f) for f, s in freqs.items() if s.series)
    ordered = sorted(spans, key=names.feature_dir_name)
    firsts = format_times(np.array([spans[n][0] for n in ordered], dtype=np.int64), intraday=intraday)
    lasts = format_times(np.array([spans[n][1] for n in ordered], dtype=np.int64), intraday=intraday)
    lines = "".join(f"{names.qlib_code(n)}\t{a}\t{b}\n" for n, a, b in zip(ordered, firsts, lasts, strict=True))
    folder = root / "instruments"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "all.txt"
    path.unlink(missing_ok=True)
    path.write_bytes(lines.encode("utf-8"))
