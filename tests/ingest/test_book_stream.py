"""Order books on the live stream against the simulator over 127.0.0.1 (issue #15): with book faults injected,
every break is detected (book gaps = the simulator's faults, per kind and instrument), each broken book alone is
resynchronised (a new session opened by a snapshot, no reconnect, the other books untouched), the book rebuilt
from bronze/book_deltas equals the simulator's true book at sampled sequence numbers, and a duplicated update
is a chain break stored as often as the wire sent it. The REST-snapshot mode (no WebSocket snapshot, OKX's
2026 checksum 0) and ``book_rest_snapshots`` run the same checks end to end."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from dataclasses import replace
from functools import partial
from pathlib import Path

import polars as pl
import pytest

from pipeline.config import StreamConfig, VenueStreamConfig
from pipeline.ingest.stream import StreamRun, run_stream
from pipeline.lake import writer
from pipeline.lake.location import Lake
from pipeline.lake.tables import BRONZE_BOOK_DELTAS, BRONZE_GAPS
from pipeline.simulator import SimConfig, SimulatorThread
from tests.ingest.streamkit import FAST

pytestmark = pytest.mark.timeout(120)

BOOKS = {"okx": ("BTC-USDT", "ETH-USDT-SWAP"), "deribit": ("ETH-PERPETUAL",)}
RATES = {"book_skip_rate": 0.04, "book_duplicate_rate": 0.04, "book_cross_rate": 0.04, "book_checksum_rate": 0.04}
# The simulator's fault kinds as the stream sees them: a skipped update is a lost message (prev_seq ahead of the
# last seq), a duplicated one a replayed message (prev_seq behind it), both chain breaks.
SEEN_AS = {"skip": "lost", "duplicate": "replayed", "cross": "crossed", "checksum": "checksum"}
_CHAIN = re.compile(r"prev_seq (-?\d+) after seq (-?\d+)")


def _sim(**changes: object) -> SimConfig:
    return SimConfig(
        port=0, seed=11, okx_instruments=4, deribit_options=2, trade_rate_per_instrument_per_s=5
    ).with_changes(**changes)


def _stream_books(
    lake: Lake, sim: SimulatorThread, tmp_path: Path, faults: dict[str, float], rest: bool = False
) -> StreamRun:
    """Books and trades of BOOKS with ``faults`` on for 4 s, then off for 1.5 s (a skip near the end shows at
    the next update, and the last resync completes), then stop."""
    settings = replace(FAST, book_rest_snapshots=rest)
    venues = {v: VenueStreamConfig(v, "sim", names, (), ("trades", "book")) for v, names in BOOKS.items()}
    config = StreamConfig(name="books", settings=settings, venues=venues)

    async def main() -> StreamRun:
        stop = asyncio.Event()

        async def script() -> None:
            await asyncio.to_thread(sim.call, lambda: sim.ctx.faults.update(faults))
            await asyncio.sleep(4.0)
            await asyncio.to_thread(sim.call, lambda: sim.ctx.faults.update(dict.fromkeys(faults, 0.0)))
            await asyncio.sleep(1.5)
            stop.set()

        faulting = asyncio.create_task(script())
        run = await run_stream(
            lake,
            config,
            sim_ws_url=f"ws://127.0.0.1:{sim.port}",
            stop=stop,
            spool_dir=tmp_path / "spool",
            handle_signals=False,
        )
        await faulting
        return run

    return asyncio.run(main())


def _injected(sim: SimulatorThread) -> Counter[tuple[str, str]]:
    """(instrument, kind as the stream sees it) -> faults the simulator injected."""
    rows = sim.call(sim.ctx.books.fault_table)
    return Counter({(r["instId"], SEEN_AS[r["kind"]]): r["count"] for r in rows})


def _seen_kind(detail: str) -> str:
    kind = detail.split(":", 1)[0]
    if kind != "chain":
        return kind
    m = _CHAIN.search(detail)
    assert m, detail
    return "lost" if int(m.group(1)) > int(m.group(2)) else "replayed"


def _book_gaps(lake: Lake) -> pl.DataFrame:
    gaps = writer.read(lake, BRONZE_GAPS)
    return gaps.with_columns(pl.col("detail").map_elements(_seen_kind, return_dtype=pl.Utf8).alias("seen"))


def _session_no(session: str) -> int:
    return int(session.rsplit("/", 1)[1])


def _compare_with_truth(
    sim: SimulatorThread, deltas: pl.DataFrame, gaps: pl.DataFrame, venue: str, instrument: str
) -> int:
    """Rebuild each session's book from its snapshot and the updates chained after it (seq above the
    snapshot's, below the message that broke the session) and compare the top 10 with the simulator's true book
    at every third message. Returns the comparisons made."""
    rows = deltas.filter((pl.col("venue") == venue) & (pl.col("instrument") == instrument))
    compared = 0
    for session in sorted(rows["session"].unique().to_list(), key=_session_no):
        part = rows.filter(pl.col("session") == session)
        snap = part.filter(pl.col("is_snapshot"))
        assert snap["seq"].n_unique() == 1, f"{session}: one snapshot per session"
        start = snap["seq"][0]
        broke = gaps.filter(pl.col("detail").str.contains(f"session {session}:", literal=True))
        end = broke["to_seq"][0] if broke.height else None
        bids: dict[float, float] = {}
        asks: dict[float, float] = {}
        for r in snap.iter_rows(named=True):
            (bids if r["side"] == "bid" else asks)[r["price"]] = r["size"]
        updates = part.filter(~pl.col("is_snapshot") & (pl.col("seq") > start) & pl.col("side").is_not_null())
        if end is not None:
            updates = updates.filter(pl.col("seq") < end)
        for n, ((seq,), message) in enumerate(
            updates.sort("seq", maintain_order=True).group_by("seq", maintain_order=True)
        ):
            for r in message.iter_rows(named=True):
                side = bids if r["side"] == "bid" else asks
                if r["size"] == 0:
                    side.pop(r["price"], None)
                else:
                    side[r["price"]] = r["size"]
            if n % 3:
                continue
            truth = sim.call(partial(sim.ctx.books.view, venue, instrument, 10, seq))
            mine_bids = sorted(bids.items(), reverse=True)[:10]
            mine_asks = sorted(asks.items())[:10]
            assert (mine_bids, mine_asks) == (truth.bids, truth.asks), f"{session} at seq {seq}"
            compared += 1
    return compared


def _check_run(run: StreamRun, lake: Lake, sim: SimulatorThread, resync_source: dict[str, str]) -> None:
    """The assertions every mode shares; ``resync_source``: venue -> source of the snapshots after a break."""
    injected = _injected(sim)
    assert sum(injected.values()) >= 5 and len({k for _, k in injected}) >= 3, (
        f"too few faults to prove much: {injected}"
    )
    gaps = _book_gaps(lake)
    assert set(gaps["kind"]) == {"book"}, "no gap but the books' own (no reconnect, no trade gap)"
    detected = Counter(zip(gaps["instrument"], gaps["seen"], strict=True))
    # Every break injected is detected once, in its own instrument (so the other books recorded no gap).
    assert detected == injected
    assert run.stats.book_breaks == sum(injected.values()) == run.stats.book_resyncs
    assert run.stats.reconnects == 0 and run.stats.book_resync_failures == 0 and run.stats.book_resync_retries == 0

    deltas = writer.read(lake, BRONZE_BOOK_DELTAS)
    for venue, names in BOOKS.items():
        for instrument in names:
            rows = deltas.filter((pl.col("venue") == venue) & (pl.col("instrument") == instrument))
            breaks = sum(n for (inst, _), n in injected.items() if inst == instrument)
            sessions = sorted(rows["session"].unique().to_list(), key=_session_no)
            # One session to start with, and one more per resync, each opened by a snapshot.
            assert len(sessions) == 1 + breaks, (instrument, sessions)
            snaps = rows.filter(pl.col("is_snapshot")).group_by("session").agg(pl.col("source").unique())
            sources = dict(snaps.iter_rows())
            assert set(sources) == set(sessions)
            for session in sessions[1:]:
                assert sources[session] == [resync_source[venue]], (session, sources[session])
            # Stored as often as the wire sent it: a duplicated update twice, everything else once.
            messages = rows.filter(~pl.col("is_snapshot") & pl.col("side").is_not_null())
            copies = messages.group_by("session", "seq", "prev_seq").agg(
                (pl.len() / pl.struct("side", "price").n_unique()).alias("copies")
            )
            assert set(copies["copies"].to_list()) <= {1.0, 2.0}
            assert int((copies["copies"] - 1).sum()) == injected[(instrument, "replayed")]
            assert _compare_with_truth(sim, deltas, gaps, venue, instrument) >= 5


def test_every_break_is_detected_and_only_that_book_resubscribed(lake: Lake, tmp_path: Path) -> None:
    with SimulatorThread(_sim()) as sim:
        run = _stream_books(lake, sim, tmp_path, RATES)
        _check_run(run, lake, sim, {"okx": "ws", "deribit": "ws"})
    assert run.stats.book_checksums_verified > 100  # crc32: the checksum of every update is verified
    assert run.stats.book_rest_snapshots == 0


def test_no_websocket_snapshot_takes_the_rest_one_and_zero_checksums_rely_on_the_chain(
    lake: Lake, tmp_path: Path
) -> None:
    rates = RATES | {"book_checksum_rate": 0.0}
    with SimulatorThread(_sim(book_ws_snapshot=False, book_checksum="zero")) as sim:
        run = _stream_books(lake, sim, tmp_path, rates)
        _check_run(run, lake, sim, {"okx": "rest", "deribit": "ws"})
    deltas = writer.read(lake, BRONZE_BOOK_DELTAS).filter(pl.col("venue") == "okx")
    okx_sessions = deltas["session"].n_unique()
    # Every OKX session, the first ones included, starts from GET /api/v5/market/books.
    assert deltas.filter(pl.col("source") == "rest")["session"].n_unique() == okx_sessions
    assert run.stats.book_rest_snapshots == okx_sessions
    assert deltas.filter(~pl.col("is_snapshot"))["checksum"].unique().to_list() == [0]
    assert run.stats.book_checksums_verified == 0


def test_book_rest_snapshots_resyncs_over_rest_without_resubscribing(lake: Lake, tmp_path: Path) -> None:
    with SimulatorThread(_sim()) as sim:
        run = _stream_books(lake, sim, tmp_path, RATES, rest=True)
        _check_run(run, lake, sim, {"okx": "rest", "deribit": "rest"})
    # The subscribe answers of the start only (OKX answers each of its 4 args, Deribit its one request): no
    # resubscription.
    assert run.stats.acks == 5
