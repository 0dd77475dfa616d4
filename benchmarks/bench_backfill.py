"""Backfill throughput against the simulator: rows/s and requests/s against the venue's rate limit.

The target is that the limit, not the code, is the bottleneck: requests/s close to the limit (OKX
history-trades / history-candles: 20 requests per 2 s; the client aims at 95 % of it) and most of the run
time spent waiting on the limiter. The simulator runs in its own process with REST rate limits on and no
faults, so every 429 would be our limiter's fault.

    .venv/bin/python benchmarks/bench_backfill.py [--minutes 15] [--instruments 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from simproc import get_json, start_sim_process  # noqa: E402

from pipeline.backfill import make_plan, run_backfill  # noqa: E402
from pipeline.backfill import okx as okx_rest  # noqa: E402
from pipeline.lake.location import resolve_lake  # noqa: E402


def _line(name: str, result, limit_per_s: float, burst: int, workers: int) -> dict[str, float]:  # noqa: ANN001 - BackfillResult
    s = result.rest
    # the venue's bucket starts full: the first `burst` requests are free, the rest are paced by the limit
    rps = max(0, s.requests - burst) / result.seconds
    wait_share = s.limiter_wait_secs / (result.seconds * workers)
    print(
        f"{name:<16} {result.rows:>7,} rows {s.requests:>4} requests in {result.seconds:5.1f} s: "
        f"{result.rows / result.seconds:>7,.0f} rows/s, {rps:5.2f} req/s after the burst vs limit {limit_per_s:.1f} "
        f"({rps / limit_per_s:4.0%}), waiting on the limiter {wait_share:4.0%} of the time, {s.rate_limited} x 429"
    )
    return {
        "rows_per_s": result.rows / result.seconds,
        "req_per_s": rps,
        "limit_share": rps / limit_per_s,
        "wait_share": wait_share,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, default=15, help="minutes of trade history per instrument (10 trades/s)")
    parser.add_argument("--instruments", type=int, default=2, help="OKX instruments to backfill")
    parser.add_argument("--candle-days", type=int, default=3, help="days of 1m candles per instrument")
    args = parser.parse_args()

    proc, port = start_sim_process(seed=3, okx_instruments=max(2, args.instruments * 2), deribit_options=2,
                                   trade_rate_per_instrument_per_s=10.0, history_trade_rate_per_instrument_per_s=10.0,
                                   trade_history_minutes=args.minutes)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        state = get_json(port, "/sim/state")
        start_ms = int(state["market_now_ms"])
        t0 = start_ms - start_ms % 60_000 - args.minutes * 60_000
        spot = [f"{b}-USDT" for b in ("BTC", "ETH", "SOL", "XRP", "DOGE", "ADA")][: args.instruments]
        lake = resolve_lake(tempfile.mkdtemp(prefix="bench-backfill-"))
        limit = okx_rest.REST_LIMITS["market/history-trades"][0] / okx_rest.REST_LIMITS["market/history-trades"][1]
        print(
            f"simulator on {url}; OKX history limit {limit:.0f} req/s per endpoint (client target {limit * okx_rest.LIMIT_SAFETY:.1f})"
        )
        trades = run_backfill(
            lake, make_plan("okx", spot, "trades", t0, start_ms, chunk_secs=3_600), rest_url=url, concurrency=2
        )
        t = _line("okx trades", trades, limit, 20, 2)
        candles_plan = make_plan("okx", spot, "candles", f"-{args.candle_days}d", "now", timeframe="1m")
        candles = run_backfill(lake, candles_plan, rest_url=url, concurrency=2)
        c = _line("okx 1m candles", candles, limit, 20, 2)
        deribit = run_backfill(
            lake, make_plan("deribit", ["ETH-PERPETUAL"], "trades", t0, start_ms, chunk_secs=3_600), rest_url=url
        )
        d = _line("deribit trades", deribit, 20.0, 0, 1)  # 1000 rows a call: a handful of requests, inside the burst
    finally:
        proc.terminate()
        proc.wait(10)
    print(
        f"RESULT okx trades rows/s {t['rows_per_s']:.0f} | baseline okx_limit_rows_per_s {limit * 100:.0f} | okx trades req/s vs limit {t['limit_share']:.0%} | "
        f"okx trades limiter wait {t['wait_share']:.0%} | okx candles req/s vs limit {c['limit_share']:.0%} | "
        f"deribit trades rows/s {d['rows_per_s']:.0f}"
    )
    return 0


if __name__ == "__main__":
    from versions import versions_line  # benchmarks/ is on sys.path when a script runs

    print(f"versions: {versions_line()}", flush=True)
    sys.exit(main())
