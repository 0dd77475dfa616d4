"""`make demo`: the whole pipeline, end to end, on the embedded simulator.

simulator -> stream (bronze, with the swaps' funding, open interest, mark/index prices and liquidations) ->
import real captures -> universe -> backfill a year of daily candles, the swaps' funding history and the
trades behind every gap over REST -> silver (contracts, candles, funding, derivative bars) -> gold (Qlib
datasets, perpetuals with $funding $oi $basis $liq_buy $liq_sell) -> a daily backtest that pays funding.
"""

from __future__ import annotations

import asyncio
import logging
import time

from pipeline.config import load_config
from pipeline.ingest.importer import import_capture
from pipeline.ingest.stream import run_stream
from pipeline.lake import writer
from pipeline.lake.location import Lake
from pipeline.lake.summary import print_summary
from pipeline.lake.tables import BRONZE_BOOK_DELTAS, BRONZE_DERIVATIVES, BRONZE_LIQUIDATIONS, BRONZE_TRADES
from pipeline.realdata import realdata_dir

CAPTURES = (
    ("okx", "okx/cryptofeed-2022-05-public.ws.log"),
    ("okx", "okx/okcoin-v5-2023-05-candles.ws.log"),
    ("okx", "okx/ccxt-2026-08.jsonl"),
    ("deribit", "deribit/cryptofeed-2021-07-options.ws.log"),
    ("deribit", "deribit/ccxt-2026-08.jsonl"),
)
HISTORY_DAYS = 400  # a year of daily bars for the backtest, plus the momentum look-back
FUNDING_DAYS = 90  # OKX serves about the last 3 months of funding-rate-history
DERIBIT_SWAPS = ("ETH-PERPETUAL",)  # the Deribit perpetual the stream follows
BACKTEST_INSTRUMENTS = 12


class _Steps:
    def __init__(self) -> None:
        self.n = 0
        self.started = time.monotonic()

    def __call__(self, text: str) -> None:
        self.n += 1
        print(f"\n== {self.n}. {text}  [{time.monotonic() - self.started:.0f} s]", flush=True)


def run_demo(lake: Lake, *, seconds: float = 20.0) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from pipeline.simulator import SimConfig, SimulatorThread

    step = _Steps()
    step("exchange simulator (OKX v5 + Deribit protocols, WebSocket and REST) on 127.0.0.1")
    sim = SimulatorThread(SimConfig(port=0))
    port = sim.start()
    rest_url = f"http://127.0.0.1:{port}"
    print(f"   ws://127.0.0.1:{port}/ws/v5/public, /ws/api/v2; REST {rest_url}/api/v5/..., /api/v2/public/...")
    try:
        _stream(step, lake, port, seconds)
        _import_captures(step, lake)
        _history(step, lake, rest_url)
    finally:
        sim.stop()
    _silver(step, lake)
    dataset = _gold(step, lake)
    _backtest(step, lake, dataset)
    step("the lake")
    print_summary(lake)
    return 0


def _stream(step: _Steps, lake: Lake, port: int, seconds: float) -> None:
    step(f"stream OKX spot+swaps (with derivatives state) and Deribit ETH options into bronze for {seconds:.0f} s")
    counted = (BRONZE_TRADES, BRONZE_BOOK_DELTAS, BRONZE_DERIVATIVES, BRONZE_LIQUIDATIONS)
    before = {spec.key: writer.count_rows(lake, spec) for spec in counted}
    run = asyncio.run(run_stream(lake, load_config(), sim_ws_url=f"ws://127.0.0.1:{port}", seconds=seconds))
    s = run.stats
    for venue, names in run.instruments.items():
        print(f"   {venue}: {len(names)} instruments")
    print(
        f"   {s.frames:,} frames -> {s.trades:,} trades, {s.quotes:,} quotes, {s.rejects} rejects, {s.gaps} gaps "
        f"in {s.commits} commits over {run.connections} connections"
    )
    grew = ", ".join(f"{spec.key} +{writer.count_rows(lake, spec) - before[spec.key]:,}" for spec in counted)
    print(f"   rows: {grew}")


def _import_captures(step: _Steps, lake: Lake) -> None:
    step("import recorded real traffic (../shared/realdata) through the same parsers")
    realdata = realdata_dir()
    if not realdata.is_dir():
        print(f"   skipped: {realdata} not found (set $CRYPTOLAKE_REALDATA)")
        return
    for venue, rel in CAPTURES:
        path = realdata / rel
        if path.is_file():
            r = import_capture(lake, path, venue)
            state = "already imported" if r.already_imported else r.summary()  # book rows and book gaps included
            print(f"   {rel}: {state}")


def _history(step: _Steps, lake: Lake, rest_url: str) -> None:
    from pipeline.backfill import make_plan, run_backfill
    from pipeline.backfill.gapfill import fill_gaps
    from pipeline.universe import UniverseFilters, current_universe, refresh_universe

    step("universe: top OKX USDT swaps by 24h quote volume -> silver/instruments")
    refresh_universe(
        lake, ["okx"], filters=UniverseFilters(top_n=BACKTEST_INSTRUMENTS, okx_markets=("swap",)), rest_url=rest_url
    )
    names = current_universe(lake, "okx")
    print(f"   {len(names)} instruments: {', '.join(names)}")
    benchmark = _benchmark()
    if benchmark not in names:
        names.append(benchmark)  # the backtest compares against it, so it needs the same history
        print(f"   + {benchmark}, the backtest's benchmark")

    step(f"backfill {HISTORY_DAYS} days of daily candles over REST (ccxt, within OKX's rate limits)")
    plan = make_plan("okx", names, "candles", f"-{HISTORY_DAYS}d", timeframe="1d", chunk_secs=HISTORY_DAYS * 86_400)
    result = run_backfill(lake, plan, rest_url=rest_url)
    print(
        f"   {result.rows:,} candles in {result.seconds:.1f} s ({result.chunks_run} chunks run, {result.chunks_skipped} already done)"
    )

    step(f"backfill {FUNDING_DAYS} days of settled funding rates of the swaps (backfill --kind funding)")
    from pipeline.backfill.funding import swaps_of

    for venue, swaps in (("okx", swaps_of("okx", names)), ("deribit", list(DERIBIT_SWAPS))):
        plan = make_plan(venue, swaps, "funding", f"-{FUNDING_DAYS}d")
        done = run_backfill(lake, plan, rest_url=rest_url)
        print(f"   {venue}: {len(swaps)} swaps, {done.rows:,} settlements in {done.seconds:.1f} s")

    step("fill the gaps the stream recorded (trades over REST)")
    filled = fill_gaps(lake, rest_url=rest_url)
    print(
        f"   {filled.gaps} open gaps: {filled.filled} filled, {filled.unfillable} unfillable, {filled.trades:,} trades fetched"
    )


def _benchmark() -> str:
    from pipeline.backtest.config import load_backtest_config

    return load_backtest_config().benchmark


def _silver(step: _Steps, lake: Lake) -> None:
    from pipeline.silver import run_silver

    step("silver: pandera contracts, quarantine, deduplicated trades, candles 1m..1d, funding, derivative bars")
    report = run_silver(lake)
    for line in report.lines():
        print(f"   {line}")


def _gold(step: _Steps, lake: Lake) -> str:
    from pipeline.gold import publish_qlib

    step("gold: publish silver candles as Qlib datasets (day, 60min, 1min; swaps with $funding $oi $basis $liq_*)")
    report = publish_qlib(lake)
    for line in report.summary().splitlines():
        print(f"   {line}")
    return "okx-swap"


def _backtest(step: _Steps, lake: Lake, dataset: str) -> None:
    from pipeline.backtest import run_backtest

    step(f"daily backtest on {dataset}: Qlib TopkDropoutStrategy on momentum (config/workflow.toml)")
    report = run_backtest(lake, dataset=dataset)
    for key, value in report.metrics.items():
        if isinstance(value, (int, float)):
            print(f"   {key:<28} {value: .4f}")
    m = report.metrics
    if "funding_pnl" in m:  # perpetual positions paid (or received) funding at every settlement they held across
        print(
            f"   funding P&L {m['funding_pnl']:,.2f} over {int(m.get('funding_settlements', 0))} settlements: "
            f"total return {m.get('total_return', float('nan')):.4f} without funding, "
            f"{m.get('total_return_with_funding', float('nan')):.4f} with"
        )
    print(f"   report: {report.report_dir / 'report.html'}")
