"""Gold publish speed: silver/candles (Delta) -> Qlib provider directory.

    .venv/bin/python benchmarks/bench_gold.py [--instruments 50] [--days 365] [--keep DIR]

Writes N instruments x D days of 1-minute candles to a fresh silver table (not timed), then times
1. a full publish of the 1min frequency (target < 15 s for 50 x 365; qlib's scripts/dump_bin.py
   dump_all took 3 min 47 s for the same volume from CSV on this machine, field notes),
2. an incremental publish of one more day for every instrument (target < 2 s),
and checks that the incremental result is byte-identical to a full rebuild of the same silver.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from pipeline.gold import publish_qlib
from pipeline.lake import writer
from pipeline.lake.location import resolve_lake
from pipeline.lake.tables import SILVER_CANDLES

START_US = 1_704_067_200_000_000  # 2024-01-01 UTC
MIN_US = 60_000_000


def minute_bars(instruments: int, first_minute: int, minutes: int, seed: int) -> pa.Table:
    """Every instrument trades every minute in [first_minute, first_minute + minutes)."""
    rng = np.random.default_rng(seed)
    n = instruments * minutes
    k = np.tile(np.arange(first_minute, first_minute + minutes, dtype=np.int64), instruments)
    names = np.repeat(np.array([f"COIN{i:02d}-USDT-SWAP" for i in range(instruments)]), minutes)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    open_ = close * (1 + rng.normal(0, 1e-4, n))
    high, low = np.maximum(open_, close) * 1.0005, np.minimum(open_, close) * 0.9995
    vol = rng.uniform(0.1, 10, n)
    open_us = START_US + k * MIN_US
    ts = pa.timestamp("us", tz="UTC")
    return pa.table(
        {
            "venue": pa.array(["okx"] * n).dictionary_encode().cast(pa.string()),
            "market": pa.array(["swap"] * n).dictionary_encode().cast(pa.string()),
            "instrument": pa.array(names),
            "timeframe": pa.array(["1m"] * n),
            "open_time": pa.array(open_us, ts),
            "close_time": pa.array(open_us + MIN_US, ts),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": vol,
            "quote_volume": vol * close,
            "trade_count": rng.integers(1, 100, n),
            "vwap": (high + low) / 2,
            "buy_volume": vol / 2,
            "sell_volume": vol / 2,
            "source": pa.array(["trades"] * n),
            "date": pa.array((open_us // 86_400_000_000).astype(np.int32), pa.date32()),
        },
        schema=SILVER_CANDLES.schema,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--instruments", type=int, default=50)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--keep", type=Path, help="build in this folder and keep it (default: a temporary folder)")
    args = ap.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="bench-gold-"))
    lake = resolve_lake(str(base / "lake"))
    minutes = args.days * 1440
    try:
        t = time.perf_counter()
        per_commit = max(1, 5_000_000 // minutes)  # about 5 M rows per Delta commit
        for first in range(0, args.instruments, per_commit):
            count = min(per_commit, args.instruments - first)
            table = minute_bars(count, 0, minutes, seed=first)
            names = pa.array([f"COIN{first + i:02d}-USDT-SWAP" for i in range(count)])
            table = table.set_column(
                2, "instrument", pa.array(np.repeat(names.to_numpy(zero_copy_only=False), minutes))
            )
            writer.append(lake, SILVER_CANDLES, table)
        rows = args.instruments * minutes
        print(
            f"setup: {rows:,} silver 1m candles ({args.instruments} instruments x {args.days} days) in {time.perf_counter() - t:.1f} s"
        )

        t = time.perf_counter()
        full = publish_qlib(lake, freqs=("1min",), gold_dir=base / "gold")
        full_s = time.perf_counter() - t
        size = sum(p.stat().st_size for p in full.datasets[0].version_dir.rglob("*.bin"))
        print(
            f"full publish:        {full_s:6.2f} s  ({rows / full_s / 1e6:.1f} M bars/s, {size / 1e6:,.0f} MB of .bin)"
            f"   target < 15 s at 50 x 365 days (dump_bin.py dump_all: 227 s there)"
        )

        day = minute_bars(args.instruments, minutes, 1440, seed=999)
        writer.append(lake, SILVER_CANDLES, day)
        t = time.perf_counter()
        inc = publish_qlib(lake, freqs=("1min",), gold_dir=base / "gold")
        inc_s = time.perf_counter() - t
        d = inc.datasets[0]
        print(f"incremental one day: {inc_s:6.2f} s  ({sum(d.bars.values()):,} new bars, mode {d.mode})   target < 2 s")

        rebuilt = publish_qlib(lake, freqs=("1min",), gold_dir=base / "rebuilt").datasets[0]
        a, b = d.version_dir, rebuilt.version_dir
        files = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
        same = files == sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file()) and all(
            filecmp.cmp(a / f, b / f, shallow=False) for f in files
        )
        print(f"incremental == full rebuild, byte for byte: {same} ({len(files)} files)")
        # dump_bin.py dump_all is not run here (it needs qlib's scripts): its 227 s at 50 x 365 days is quoted.
        print(
            f"RESULT gold_full_publish_s {full_s:.2f} | baseline dump_bin_dump_all_s_quoted 227 | "
            f"bars_per_s {rows / full_s:.0f} | incremental_day_s {inc_s:.2f} | identical {same}"
        )
        return 0 if same else 1
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    from versions import versions_line  # benchmarks/ is on sys.path when a script runs

    print(f"versions: {versions_line()}", flush=True)
    sys.exit(main())
