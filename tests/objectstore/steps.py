"""The demo's pipeline steps, run the same way on any lake, and the comparison of two lakes row for row."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

from pipeline.backfill import make_plan, run_backfill
from pipeline.backfill.gapfill import fill_gaps
from pipeline.demo import CAPTURES
from pipeline.gold import publish_qlib
from pipeline.ingest.importer import import_capture
from pipeline.lake import writer
from pipeline.lake.location import Lake
from pipeline.lake.maintenance import all_tables
from pipeline.silver import run_silver
from pipeline.universe import UniverseFilters, refresh_universe

# Columns a run stamps with its own clock (or an id drawn per run; also any ``*_receive_ts``, a receive clock
# carried along), and the universe's 24h volume (the venue's live ticker at the moment of the call): they
# legitimately differ between two runs.
CLOCK_COLUMNS = frozenset({"receive_ts", "detected_ts", "committed_at", "selected_at", "run_id", "volume_24h_quote"})


@dataclass(frozen=True)
class Steps:
    """One pinned run: the simulator's REST address and the 'now' every step is given."""

    rest_url: str
    now_ms: int
    realdata: Path
    okx: tuple[str, ...] = ("BTC-USDT-SWAP", "ETH-USDT-SWAP", "BTC-USDT")

    def run(self, lake: Lake, gold_dir: Path) -> None:
        for venue, rel in CAPTURES:
            if (self.realdata / rel).is_file():
                import_capture(lake, self.realdata / rel, venue)
        refresh_universe(lake, ["okx"], filters=UniverseFilters(top_n=5), rest_url=self.rest_url, now_ms=self.now_ms)
        for kind, start, timeframe in (("candles", "-30d", "1d"), ("candles", "-2h", "1m"), ("trades", "-20m", None)):
            plan = make_plan(
                "okx", list(self.okx), kind, start, timeframe=timeframe, chunk_secs=40 * 86_400, now_ms=self.now_ms
            )  # one chunk (one commit) per instrument: the days are not what is tested here
            run_backfill(lake, plan, rest_url=self.rest_url)
        fill_gaps(lake, rest_url=self.rest_url)
        run_silver(lake, now_ms=self.now_ms)
        publish_qlib(lake, gold_dir=gold_dir)


def table_rows(lake: Lake) -> dict[str, pl.DataFrame]:
    """Every table of the lake that has rows, without clock columns, sorted on every column (floats last:
    their last bits may differ, see ``differences``)."""
    out = {}
    for spec in all_tables():
        frame = writer.read(lake, spec)
        if frame.height:
            frame = frame.drop([c for c in frame.columns if c in CLOCK_COLUMNS or c.endswith("_receive_ts")])
            floats = [c for c, t in frame.schema.items() if t.is_float()]
            order = [c for c in frame.columns if c not in floats] + floats
            out[spec.key] = frame.sort(order, nulls_last=True)
    return out


def differences(a: dict[str, pl.DataFrame], b: dict[str, pl.DataFrame]) -> list[str]:
    """What differs between two lakes' ``table_rows``. Floats compare to 1e-12 relative: silver's sums
    (volume, vwap) add a bar's trades in the order polars' parallel group-by meets them, which moves the
    last bit from run to run on one disk as well."""
    problems = [f"{k}: only in one lake" for k in sorted(a.keys() ^ b.keys())]
    for key in sorted(a.keys() & b.keys()):
        try:
            assert_frame_equal(a[key], b[key], rel_tol=1e-12, abs_tol=1e-9)
        except AssertionError as exc:
            problems.append(f"{key}: {a[key].height} vs {b[key].height} rows; {str(exc).splitlines()[0]}")
    return problems


def gold_files(gold_dir: Path) -> dict[str, str]:
    """Each published dataset's files (through the live symlink) with their SHA-256; the manifest, which
    records versions and times, is left out."""
    out = {}
    qlib = gold_dir / "qlib"
    for link in sorted(p for p in qlib.iterdir() if not p.name.startswith(".")):
        live = link.resolve()
        for path in sorted(live.rglob("*")):
            if path.is_file() and path.name != "cryptolake.json":
                out[f"{link.name}/{path.relative_to(live)}"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out
