"""Read a published dataset back through Qlib's own reader and compare it with silver.

``qlib.init(provider_uri=<stable path>)`` + ``D.features`` is exactly what a researcher runs, so this
checks the bytes, the calendar, the instrument spans and the names end to end. Every silver bar must
come back as its float32 value; every slot Qlib returns without a silver bar must be NaN in every field.
The extra fields (``extra_fields``: the perpetuals' funding, oi, basis, liq_buy, liq_sell; the book fields
spread, imb1, imb5, microprice, depth10, depth50, ofi, book_cover) are compared the same way, against their
silver tables aggregated onto the candle bars.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pipeline.gold import extra_fields, names, source, writer
from pipeline.gold.calendar import FREQ_STEP_US, FREQ_TIMEFRAME, format_times, is_intraday
from pipeline.gold.source import FIELDS
from pipeline.lake.location import Lake


@dataclass(frozen=True)
class ReadBackResult:
    dataset: str
    checked_bars: int = 0
    mismatched: int = 0
    sample: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.mismatched == 0


def qlib_init(provider_uri: Path) -> None:
    """``qlib.init`` for a gold dataset: region "us" (trade unit 1, no price limit), one process."""
    import qlib

    qlib.init(provider_uri=str(provider_uri), region="us", kernels=1, logging_level=logging.WARNING)


def read_back(
    lake: Lake,
    provider_uri: Path,
    *,
    dataset: str,
    venue: str,
    market: str,
    freqs: tuple[str, ...],
    instruments: list[str] | None = None,
    last_bars: int | None = None,
) -> ReadBackResult:
    """Compare ``instruments`` (default: all) over the last ``last_bars`` calendar slots (default: all)."""
    from qlib.data import D

    qlib_init(provider_uri)
    snap = source.snapshot(lake)
    extra_tables = extra_fields.open_sources(lake, market)
    fields = (*FIELDS, *extra_fields.fields_for(market))
    checked = mismatched = 0
    sample: list[dict[str, Any]] = []
    for freq in freqs:
        silver = source.read_bars(snap, venue, market, FREQ_TIMEFRAME[freq])
        silver = extra_fields.with_extra_fields(extra_tables, silver, venue, market, FREQ_STEP_US[freq], None)
        chosen = instruments if instruments is not None else sorted(silver["instrument"].unique().to_list())
        if silver.is_empty() or not chosen:
            continue
        # The calendar comes from every instrument; the derived fields only for the sample (a sort).
        calendar = np.unique(silver["t"].to_numpy())
        silver = writer.with_derived_fields(silver.filter(pl.col("instrument").is_in(chosen)))
        since = int(calendar[-last_bars]) if last_bars and len(calendar) > last_bars else int(calendar[0])
        expected = silver.filter(pl.col("instrument").is_in(chosen) & (pl.col("t") >= since))
        by_code = {names.qlib_code(n): n for n in chosen}
        start, end = format_times(np.array([since, calendar[-1]], dtype=np.int64), intraday=is_intraday(freq))
        # Explicit instrument lists: Qlib caches market spans by market name only (field notes).
        got = D.features(list(by_code), [f"${f}" for f in fields], start_time=start, end_time=end, freq=freq)
        got_frame = _from_qlib(got, by_code, fields)
        joined = expected.join(got_frame, on=["instrument", "t"], how="full", suffix="_q", coalesce=True)
        for f in fields:
            want = joined[f].cast(pl.Float32).to_numpy()
            have = joined[f"{f}_q"].to_numpy()
            # A slot without a silver bar must be NaN; a silver bar must come back as its float32 value.
            bad = ~((want == have) | (np.isnan(want) & np.isnan(have)))
            for i in np.flatnonzero(bad)[: max(0, 5 - len(sample))]:
                row = joined.row(int(i), named=True)
                sample.append(
                    {
                        "freq": freq,
                        "instrument": row["instrument"],
                        "t": row["t"],
                        "field": f,
                        "silver": row[f],
                        "qlib": row[f"{f}_q"],
                    }
                )
            mismatched += int(bad.sum())
        checked += expected.height
    return ReadBackResult(dataset, checked, mismatched, sample)


def _from_qlib(frame: Any, by_code: dict[str, str], fields: tuple[str, ...]) -> pl.DataFrame:
    flat = frame.reset_index()
    return pl.DataFrame(
        {
            "instrument": [by_code.get(str(c).upper(), str(c)) for c in flat["instrument"]],
            "t": flat["datetime"].to_numpy().astype("datetime64[us]").astype(np.int64),
            **{f: flat[f"${f}"].to_numpy().astype(np.float32) for f in fields},
        }
    )
