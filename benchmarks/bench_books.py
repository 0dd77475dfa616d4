"""Books rebuilt in silver (issue #16): rebuild + 1 s top-25 snapshots from bronze/book_deltas, in level updates
per second, beside replaying the same messages through the ``order-book`` C library from Python (what a
cryptofeed user writes: a dict-like side per book, a chain check per message, the top 25 read every second);
and an incremental hour of books with 1 day and with 30 days of book history behind it.

The messages are made here with numpy, shaped like OKX ``books`` (a 400-level snapshot, then an update every
100 ms of 1 to 14 levels, most near the touch, a quarter of them deletes, chained by seq/prev_seq). Figures:
- ``rebuild``: ``pipeline.silver.books.rebuild`` over the bronze rows in memory (sort, price ranks, the
  compiled replay, the snapshot rows);
- ``from_bronze``: the same plus reading them from the Delta table;
- ``books_pass``: the silver step end to end (read, rebuild, contract, writes of snapshots, segments, state);
- ``orderbook_c``: the baseline (CPU seconds of one Python thread); ours are given by the wall clock (polars
  uses both cores) and by CPU seconds (``*_cpu_*``: all threads), the fair figure on a busy machine;
- ``incremental_hour_*``: a books pass over one new hour (10 s grid, depth 10,
  history at a lower message rate so 30 days fit on this machine), 1 day vs 30 days of history.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pipeline.lake import writer
from pipeline.lake.location import Lake, resolve_lake
from pipeline.lake.tables import BRONZE_BOOK_DELTAS
from pipeline.silver import files
from pipeline.silver.books import snapshots
from pipeline.silver.books.rebuild import rebuild
from pipeline.silver.books.step import DELTA_COLUMNS, BookSettings, books_pass
from pipeline.silver.handles import Handles

T0_MS = 1_786_000_000_000
MID, TICK = 30_000.0, 0.1


def messages(n: int, *, t0_ms: int, step_ms: int, seed: int, seq0: int = 1, instrument: str = "BTC-USDT",
             session: str = "bench/1") -> pl.DataFrame:  # fmt: skip
    """bronze/book_deltas rows of ``n`` messages (the first a 400-level snapshot), in the table's columns."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 15, n)
    counts[0] = 800
    msg = np.repeat(np.arange(n), counts)
    total = len(msg)
    side = rng.integers(0, 2, total)
    depth = np.minimum(1 + rng.geometric(0.08, total), 400)
    size = np.where(rng.random(total) < 0.25, 0.0, rng.integers(1, 100, total).astype(float))
    first = counts[0]
    side[:first] = np.repeat([0, 1], 400)
    depth[:first] = np.tile(np.arange(1, 401), 2)
    size[:first] = rng.integers(1, 100, first)
    price = np.round(MID + np.where(side == 0, -1, 1) * depth * TICK, 1)
    seq = seq0 + msg
    ts = (t0_ms + msg.astype(np.int64) * step_ms) * 1000
    df = pl.DataFrame(
        {
            "venue": "okx", "market": "spot", "instrument": instrument, "channel": "books",
            "exchange_ts": pl.Series(ts).cast(pl.Datetime("us", "UTC")),
            "receive_ts": pl.Series(ts + 700).cast(pl.Datetime("us", "UTC")),
            "source": "ws", "session": session, "seq": seq, "prev_seq": np.where(msg == 0, -1, seq - 1),
            "is_snapshot": msg == 0,
            "side": pl.Series(np.where(side == 0, "bid", "ask")), "price": price, "size": size,
        }
    )  # fmt: skip
    return df.with_columns(
        checksum=pl.lit(None, pl.Int64),
        orders=pl.lit(None, pl.Int64),
        action=pl.lit(None, pl.String),
        date=pl.col("exchange_ts").dt.date(),
    )


def write_bronze(lake: Lake, df: pl.DataFrame) -> None:
    writer.append(
        lake, BRONZE_BOOK_DELTAS, df.select(BRONZE_BOOK_DELTAS.schema.names).to_arrow().cast(BRONZE_BOOK_DELTAS.schema)
    )


def orderbook_c(df: pl.DataFrame) -> tuple[float, int]:
    """(CPU seconds, snapshots taken) of the same messages replayed through ``order-book``."""
    from order_book import OrderBook

    rows = df.select("seq", "prev_seq", "exchange_ts", "side", "price", "size", "is_snapshot")
    ts_ms = (rows["exchange_ts"].dt.epoch("us") // 1000).to_list()
    keys = list(
        zip(rows["seq"].to_list(), rows["prev_seq"].to_list(), ts_ms, rows["is_snapshot"].to_list(), strict=True)
    )
    levels = list(zip(rows["side"].to_list(), rows["price"].to_list(), rows["size"].to_list(), strict=True))
    msgs: list[tuple[Any, list[tuple[str, float, float]]]] = []
    for key, level in zip(keys, levels, strict=True):
        if msgs and msgs[-1][0] == key:
            msgs[-1][1].append(level)
        else:
            msgs.append((key, [level]))
    start = time.process_time()
    book = OrderBook()
    last = None
    next_t = None
    taken = 0
    for (seq, prev, t, snap), lv in msgs:
        if snap:
            book = OrderBook()
        elif prev != last:
            raise AssertionError("chain broke")
        if next_t is None:
            next_t = -(-t // 1000) * 1000
        while next_t < t:  # the state before this message, at every grid instant it passed
            bids, asks = book.bids, book.asks
            _ = [bids.index(i) for i in range(min(25, len(bids)))], [asks.index(i) for i in range(min(25, len(asks)))]
            taken += 1
            next_t += 1000
        for s, p, z in lv:
            side = book.bids if s == "bid" else book.asks
            if z == 0:
                if p in side:
                    del side[p]
            else:
                side[p] = z
        if len(book.bids) and len(book.asks) and book.bids.index(0)[0] >= book.asks.index(0)[0]:
            raise AssertionError("crossed")
        last = seq
    return time.process_time() - start, taken


def timed(fn: Any) -> tuple[float, float, Any]:
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w, time.process_time() - c, out


def _continued(df: pl.DataFrame, seq0: int) -> pl.DataFrame:
    """``messages`` whose first message is an update chained onto seq ``seq0 - 1`` instead of a snapshot."""
    return df.with_columns(
        is_snapshot=pl.lit(False), prev_seq=pl.when(pl.col("seq") == seq0).then(seq0 - 1).otherwise("prev_seq")
    )


def incremental_hour(root: Path, days: int, history_step_ms: int) -> float:
    """Seconds of the books pass over a new hour (the best of two hours) after ``days`` of history."""
    lake = resolve_lake(str(root / f"inc{days}"))
    settings = BookSettings(interval_ms=10_000, depth=10)
    per_day = 86_400_000 // history_step_ms
    seq = 1
    for d in range(days):  # one commit per day, as a daily import or the stream's compacted day
        df = messages(per_day, t0_ms=T0_MS + d * 86_400_000, step_ms=history_step_ms, seed=d, seq0=seq)
        if d:  # one chain over the whole history: only the first day starts with a snapshot
            df = _continued(df, seq)
        write_bronze(lake, df)
        seq += per_day
    now = dt.datetime.now(dt.UTC)
    books_pass(Handles(lake), settings, run_id="history", now=now)
    best = float("inf")
    t = T0_MS + days * 86_400_000
    for h in range(2):
        hour = messages(36_000, t0_ms=t + h * 3_600_000, step_ms=100, seed=1000 + h, seq0=seq)
        hour = _continued(hour, seq)
        seq += 36_000
        write_bronze(lake, hour)
        w, _, done = timed(partial(books_pass, Handles(lake), settings, run_id=f"h{h}", now=now))
        assert done is not None and done.snapshots.inserted > 0
        best = min(best, w)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=6.0, help="hours of 100 ms book messages to rebuild (default 6)")
    ap.add_argument("--history-days", type=int, default=30)
    ap.add_argument("--history-step-ms", type=int, default=5000, help="message spacing of the history (default 5000)")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    n = int(args.hours * 36_000)
    df = messages(n, t0_ms=T0_MS, step_ms=100, seed=1)
    updates = df.height
    print(f"{n:,} messages, {updates:,} level updates ({args.hours:g} h of one instrument)", flush=True)
    rebuild(df.head(2000))  # compile (cached on disk after the first run)

    best: dict[str, tuple[float, float]] = {}

    def keep(name: str, w: float, c: float) -> None:
        if name not in best or w < best[name][0]:
            best[name] = (w, c)

    with tempfile.TemporaryDirectory() as tmp:
        lake = resolve_lake(str(Path(tmp) / "lake"))
        write_bronze(lake, df)
        for r in range(args.repeat):
            w, c, rep = timed(lambda: snapshots.snapshot_rows(rebuild(df).samples))
            keep("rebuild", w, c)

            def from_bronze() -> pl.DataFrame:
                t = Handles(lake)
                rows = files.scan(lake, t.files(BRONZE_BOOK_DELTAS), DELTA_COLUMNS).collect()
                return snapshots.snapshot_rows(rebuild(rows).samples)

            w, c, snaps = timed(from_bronze)
            keep("from_bronze", w, c)
            one = resolve_lake(str(Path(tmp) / f"pass{r}"))
            write_bronze(one, df)
            w, c, _ = timed(partial(books_pass, Handles(one), BookSettings(), run_id="b", now=dt.datetime.now(dt.UTC)))
            keep("books_pass", w, c)
        assert snaps.height == rep.height > 0
        c_ob, taken = min(orderbook_c(df) for _ in range(args.repeat))
        assert taken == snaps.height, (taken, snaps.height)
        rates = {k: updates / w for k, (w, _) in best.items()}
        for k, (w, c) in best.items():
            print(f"{k:12s} {w:7.2f} s wall {c:7.2f} s cpu  {updates / w:13,.0f} level updates/s", flush=True)
        print(f"{'orderbook_c':12s} {c_ob:7.2f} s cpu            {updates / c_ob:13,.0f} level updates/s", flush=True)
        print(f"snapshots: {snaps.height:,} (1 s, top 25)", flush=True)
        h1 = incremental_hour(Path(tmp), 1, args.history_step_ms)
        h30 = incremental_hour(Path(tmp), args.history_days, args.history_step_ms)
        print(
            f"incremental hour: {h1:.2f} s with 1 day, {h30:.2f} s with {args.history_days} days of history", flush=True
        )
    print(
        f"RESULT books_rebuild_levels_per_s {rates['rebuild']:.0f} | books_from_bronze_levels_per_s "
        f"{rates['from_bronze']:.0f} | books_from_bronze_cpu_levels_per_s {updates / best['from_bronze'][1]:.0f} | "
        f"books_pass_levels_per_s {rates['books_pass']:.0f} | baseline orderbook_c_levels_per_s {updates / c_ob:.0f} | "
        f"speedup_vs_orderbook_c {rates['from_bronze'] * c_ob / updates:.1f} | "
        f"cpu_speedup_vs_orderbook_c {c_ob / best['from_bronze'][1]:.1f} | incremental_hour_1d_s {h1:.2f} | "
        f"incremental_hour_{args.history_days}d_s {h30:.2f} | incremental_ratio {h30 / h1:.2f}",
        flush=True,
    )
    from versions import versions_line  # benchmarks/ is on sys.path when a script runs

    try:
        ob = version("order-book")
    except PackageNotFoundError:
        ob = "(not installed)"
    print(f"versions: {versions_line()}, numba {version('numba')}, order-book {ob}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
