"""Parser throughput: our OKX / Deribit trade parsers vs bare ``orjson.loads`` and vs ccxt.

    .venv/bin/python benchmarks/bench_parsers.py [--frames 300000] [--ccxt-frames 30000]

Frames are synthetic but shaped exactly like the recorded 2026 traffic in ../shared/realdata (OKX
trades with count/source/int seqId; Deribit trades.{inst}.100ms with index/mark price), 1 to 3 trades
per frame as on a busy book. ccxt runs offline: its markets come from the recorded OKX REST
instruments bodies (``exchange.parse_markets`` + ``set_markets``), then ``exchange.parse_trades`` is
timed on the same payloads (with and without the JSON decode, ours always includes it).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

import orjson

from pipeline.venues import deribit, okx
from pipeline.venues.base import ParsedBatch

REALDATA = Path(
    os.environ.get("CRYPTOLAKE_REALDATA", Path(__file__).resolve().parents[1].parent / "shared" / "realdata")
)
OKX_INSTRUMENTS = ("BTC-USDT-SWAP", "BTC-USDT", "ETH-USDT-SWAP", "ETH-USDT")
DERIBIT_INSTRUMENTS = ("BTC-PERPETUAL", "ETH-PERPETUAL", "ETH-27DEC26-3000-C", "BTC-27DEC26")
FLUSH_ROWS = 100_000  # the buffer is cleared like a flush would, so memory stays flat


def okx_frames(n: int, rng: random.Random) -> tuple[list[str], int]:
    """As OKX sends them: trade ids count fills per instrument (the next id = this id + the next ``count``),
    so a gap-free stream is gap-free to the gap detector too."""
    frames, trades, seq = [], 0, 333793117432
    ids = {inst: 2832749635 - i * 10**8 for i, inst in enumerate(OKX_INSTRUMENTS)}
    for _ in range(n):
        inst = rng.choice(OKX_INSTRUMENTS)
        data = []
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            count = rng.choice((1, 1, 1, 1, 2, 3, 10))
            ids[inst] = trade_id = ids[inst] + count
            seq += rng.randint(1, 50)
            data.append(
                {
                    "instId": inst,
                    "tradeId": str(trade_id),
                    "px": f"{63900 + rng.randint(0, 400) / 10:.1f}",
                    "sz": str(rng.choice((1, 0.4, 34.95, 0.00240857))),
                    "side": rng.choice(("buy", "sell")),
                    "ts": str(1786540435948 + trade_id % 100000),
                    "count": str(count),
                    "source": "0",
                    "seqId": seq,
                }
            )
        trades += len(data)
        frames.append(orjson.dumps({"arg": {"channel": "trades", "instId": inst}, "data": data}).decode())
    return frames, trades


def deribit_frames(n: int, rng: random.Random) -> tuple[list[str], int]:
    """trade_seq counts per instrument, as on Deribit; trade ids are venue-wide."""
    frames, trades, trade_id = [], 0, 440192723
    seqs = dict.fromkeys(DERIBIT_INSTRUMENTS, 296152987)
    for _ in range(n):
        inst = rng.choice(DERIBIT_INSTRUMENTS)
        data = []
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            trade_id += 1
            seqs[inst] = seq = seqs[inst] + 1
            item = {
                "timestamp": 1786563104514 + trade_id % 100000,
                "price": 63344.5 + rng.randint(-20, 20) / 2,
                "direction": rng.choice(("buy", "sell")),
                "index_price": 63325.19,
                "trade_id": str(trade_id),
                "instrument_name": inst,
                "trade_seq": seq,
                "amount": float(rng.choice((10, 20, 40, 1000))),
                "mark_price": 63341.87,
                "tick_direction": 1,
                "contracts": 2.0,
            }
            if inst.endswith("-C"):
                item["iv"] = 61.3
            data.append(item)
        trades += len(data)
        channel = f"trades.{inst}.100ms"
        frames.append(
            orjson.dumps(
                {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}}
            ).decode()
        )
    return frames, trades


def time_loads(frames: list[str]) -> float:
    loads = orjson.loads
    start = time.perf_counter()
    for text in frames:
        loads(text)
    return time.perf_counter() - start


def time_parse(parse, frames: list[str]) -> tuple[float, int]:
    out = ParsedBatch()
    rows = 0
    start = time.perf_counter()
    for text in frames:
        parse(text, 1786540435950000, out, "ws")
        if len(out.trades) >= FLUSH_ROWS:
            rows += len(out.trades)
            out.trades.clear()
    elapsed = time.perf_counter() - start
    return elapsed, rows + len(out.trades)


def time_columnar(venue, frames: list[str]) -> tuple[float, int]:
    """The stream's trade path without gap check and commit: keep the raw frames, decode them columnar at a
    flush of ``FLUSH_ROWS``-ish rows (what the collector does), build the bronze Arrow table."""
    from pipeline.ingest import trade_decoder
    from pipeline.ingest.rawframes import RawFrames

    data = [f.encode() for f in frames]
    limit = FLUSH_ROWS / 1.6
    rows = 0
    start = time.perf_counter()
    raw = RawFrames(limit)
    for frame in data:
        if raw.add(frame, 1786540435950000):
            rows += trade_decoder.decode(venue, raw).trades.num_rows
            raw = RawFrames(limit)
    rows += trade_decoder.decode(venue, raw).trades.num_rows
    return time.perf_counter() - start, rows


def best_of(repeat: int, fn, *args):
    return min((fn(*args) for _ in range(repeat)), key=lambda r: r if isinstance(r, float) else r[0])


def ccxt_exchange():
    import ccxt

    exchange = ccxt.okx()  # no network: markets come from the recorded REST bodies
    bodies: dict[str, list] = {}
    for line in (REALDATA / "okx" / "cryptofeed-2022-05-instruments.rest.log").read_text().splitlines():
        if " -> " not in line:
            continue
        url, _, rest = line.partition(" -> ")
        _, _, body = rest.partition(": ")
        bodies.setdefault(url, orjson.loads(body)["data"])  # first body per request URL
    instruments = [inst for data in bodies.values() for inst in data]
    exchange.set_markets(exchange.parse_markets(instruments))
    return exchange


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300_000)
    ap.add_argument("--ccxt-frames", type=int, default=30_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rng = random.Random(7)

    print(
        f"python {sys.version.split()[0]}, orjson {orjson.__version__}, {args.frames:,} frames per venue, best of {args.repeat}"
    )
    results = {}
    for name, make, parse in (("okx", okx_frames, okx.parse), ("deribit", deribit_frames, deribit.parse)):
        frames, trades = make(args.frames, rng)
        t_loads = best_of(args.repeat, time_loads, frames)
        t_parse, rows = best_of(args.repeat, time_parse, parse, frames)
        assert rows == trades, (rows, trades)
        t_col, rows = best_of(args.repeat, time_columnar, {"okx": okx, "deribit": deribit}[name], frames)
        assert rows == trades, (rows, trades)
        results[name] = (frames, trades, t_parse, t_col)
        print(
            f"{name:8s} per-frame parse: {len(frames) / t_parse:12,.0f} frames/s {trades / t_parse:12,.0f} trades/s | "
            f"bare orjson.loads: {len(frames) / t_loads:12,.0f} frames/s | parse/loads time ratio {t_parse / t_loads:.2f}x"
        )
        print(
            f"{name:8s} columnar (stream): {len(frames) / t_col:10,.0f} frames/s {trades / t_col:12,.0f} trades/s | "
            f"columnar/loads time ratio {t_col / t_loads:.2f}x"
        )

    try:
        exchange = ccxt_exchange()
    except Exception as exc:  # noqa: BLE001 - ccxt missing or the recording absent: report, do not fail the run
        print(f"ccxt comparison skipped: {exc}")
        return 0
    frames, _, _, _ = results["okx"]
    subset = frames[: args.ccxt_frames]
    payloads = [orjson.loads(text) for text in subset]
    n_trades = sum(len(p["data"]) for p in payloads)
    markets = {inst: exchange.markets_by_id[inst][0] for inst in OKX_INSTRUMENTS}

    def ccxt_parse_only() -> float:
        start = time.perf_counter()
        for p in payloads:
            exchange.parse_trades(p["data"], markets[p["arg"]["instId"]])
        return time.perf_counter() - start

    def ccxt_with_loads() -> float:
        loads = orjson.loads
        start = time.perf_counter()
        for text in subset:
            p = loads(text)
            exchange.parse_trades(p["data"], markets[p["arg"]["instId"]])
        return time.perf_counter() - start

    t_ccxt = best_of(args.repeat, ccxt_with_loads)
    t_ccxt_only = best_of(args.repeat, ccxt_parse_only)
    t_ours, rows = best_of(args.repeat, time_parse, okx.parse, subset)
    assert rows == n_trades
    print(
        f"ccxt {exchange.version if hasattr(exchange, 'version') else ''} okx.parse_trades on {len(subset):,} frames: "
        f"{n_trades / t_ccxt:,.0f} trades/s with orjson.loads, {n_trades / t_ccxt_only:,.0f} trades/s parse_trades alone"
    )
    print(
        f"our okx.parse on the same frames: {n_trades / t_ours:,.0f} trades/s -> "
        f"{t_ccxt / t_ours:.1f}x ccxt (decode+parse both), {t_ccxt_only / t_ours:.1f}x ccxt parse_trades alone"
    )
    t_col, rows = best_of(args.repeat, time_columnar, okx, subset)
    assert rows == n_trades
    print(
        f"our columnar decode (the stream's trade path) on the same frames: {n_trades / t_col:,.0f} trades/s -> "
        f"{t_ccxt / t_col:.1f}x ccxt (decode+parse both)"
    )
    _, okx_trades, _, okx_col = results["okx"]
    print(
        f"RESULT okx_columnar_trades_per_s {okx_trades / okx_col:.0f} | baseline ccxt_parse_trades_per_s {n_trades / t_ccxt:.0f} "
        f"| vs_ccxt {t_ccxt / t_col:.1f}x | per_frame_vs_ccxt {t_ccxt / t_ours:.1f}x"
    )
    return 0


if __name__ == "__main__":
    from versions import versions_line  # benchmarks/ is on sys.path when a script runs

    print(f"versions: {versions_line()}", flush=True)
    raise SystemExit(main())
