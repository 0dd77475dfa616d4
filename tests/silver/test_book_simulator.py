"""Books rebuilt in silver equal the simulator's true books (issue #16).

OKX ``books`` of two instruments are recorded over 127.0.0.1 by a client that resubscribes an instrument
when its chain, crossing or checksum breaks (as the stream does), written as a cryptofeed recording and
imported with the project's importer; silver then runs. Every silver/book_snapshots row equals the
simulator's true top 25 at the row's ``last_seq`` (``GET /sim/book``), so no snapshot holds a book that a
lost or crossing update spoiled; with faults injected, every break bronze recorded ends a segment (and names
its gap), no snapshot lies past its segment's last good message, and the breaks are at most the faults
the simulator injected and at least one per faulted stream.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import websockets

from pipeline.ingest.importer import import_capture
from pipeline.lake.location import Lake, resolve_lake
from pipeline.lake.tables import BRONZE_GAPS, SILVER_BOOK_SEGMENTS, SILVER_BOOK_SNAPSHOTS
from pipeline.silver import files
from pipeline.silver.books.query import book_at
from pipeline.silver.books.step import BookSettings, books_pass
from pipeline.silver.handles import Handles
from pipeline.simulator.config import SimConfig
from pipeline.simulator.server import SimulatorThread
from tests.simulator.bookkit import okx_checksum

pytestmark = pytest.mark.timeout(120)

INSTRUMENTS = ["BTC-USDT", "ETH-USDT"]
RATES = {"book_skip_rate": 0.03, "book_duplicate_rate": 0.03, "book_cross_rate": 0.03, "book_checksum_rate": 0.03}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorThread]:
    config = SimConfig(
        port=0, seed=5, okx_instruments=4, deribit_options=2, history_days=2, ws_connections_per_s=0,
        rest_rate_limits=False, trade_rate_per_instrument_per_s=5.0, book_updates_per_s=200.0,
    )  # fmt: skip
    with SimulatorThread(config) as s:
        yield s


def _http(sim: SimulatorThread, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(sim.base_http_url + path, data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


class _Chain:
    """A client's check of one instrument's book: chain, crossing, checksum; broken until a snapshot."""

    def __init__(self) -> None:
        self.bids: dict[float, list[str]] = {}
        self.asks: dict[float, list[str]] = {}
        self.seq: int | None = None
        self.ok = False

    def feed(self, action: str, d: dict[str, Any]) -> bool:
        """Apply one message; False when it breaks the book (the caller resubscribes)."""
        if action == "snapshot":
            self.bids, self.asks, self.ok = {}, {}, True
        elif not self.ok:
            return True
        elif d["prevSeqId"] != self.seq:
            self.ok = False
            return False
        for side, levels in ((self.bids, d["bids"]), (self.asks, d["asks"])):
            for lv in levels:
                if float(lv[1]) == 0:
                    side.pop(float(lv[0]), None)
                else:
                    side[float(lv[0])] = lv
        self.seq = d["seqId"]
        top_b = [self.bids[p] for p in sorted(self.bids, reverse=True)[:25]]
        top_a = [self.asks[p] for p in sorted(self.asks)[:25]]
        crossed = bool(self.bids and self.asks and max(self.bids) >= min(self.asks))
        if crossed or (d.get("checksum") and okx_checksum(top_b, top_a) != d["checksum"]):
            self.ok = False
            return False
        return True


async def _record(url: str, seconds: float) -> list[str]:
    """cryptofeed recorder lines of one connection: books of INSTRUMENTS, an instrument resubscribed when
    its book breaks, everything unsubscribed at the end and read until acknowledged."""
    lines = [f"{url} <-> {time.time():.7f}"]
    chains = {inst: _Chain() for inst in INSTRUMENTS}
    args = [{"channel": "books", "instId": i} for i in INSTRUMENTS]
    async with websockets.connect(url, max_size=None, ping_interval=None) as ws:

        async def send(msg: dict[str, Any]) -> None:
            text = json.dumps(msg)
            lines.append(f"{url} <- {time.time():.7f}: {text}")
            await ws.send(text)

        await send({"op": "subscribe", "args": args})
        start, acks = time.monotonic(), 0
        async with asyncio.timeout(seconds + 15):
            while True:
                closing = time.monotonic() - start >= seconds
                if closing and acks == 0:
                    await send({"op": "unsubscribe", "args": args})
                    acks = -len(args)
                try:
                    got = await asyncio.wait_for(ws.recv(), 0.2)
                except TimeoutError:
                    continue
                raw = got if isinstance(got, str) else got.decode()
                lines.append(f"{time.time():.7f}: {raw}")
                frame = json.loads(raw)
                if frame.get("event") == "unsubscribe" and acks < 0:
                    acks += 1
                    if acks == 0:
                        return lines
                if "data" not in frame or closing:
                    continue
                inst = frame["arg"]["instId"]
                for d in frame["data"]:
                    if not chains[inst].feed(frame["action"], d):
                        one = [{"channel": "books", "instId": inst}]
                        await send({"op": "unsubscribe", "args": one})
                        await send({"op": "subscribe", "args": one})


def _lake(sim: SimulatorThread, tmp: Path, seconds: float) -> Lake:
    path = tmp / "sim.ws.log"
    path.write_text("\n".join(asyncio.run(_record(sim.okx_ws_url(), seconds))) + "\n")
    lake = resolve_lake(str(tmp / "lake"))
    import_capture(lake, path, "okx")
    assert books_pass(Handles(lake), BookSettings(), run_id="t", now=dt.datetime.now(dt.UTC)) is not None
    return lake


def _tables(lake: Lake) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    t = Handles(lake)
    snaps = files.scan(lake, t.files(SILVER_BOOK_SNAPSHOTS)).collect()
    segs = files.scan(lake, t.files(SILVER_BOOK_SEGMENTS)).collect()
    gaps = files.scan(lake, t.files(BRONZE_GAPS)).filter(pl.col("kind") == "book").collect()
    return snaps, segs, gaps


def _assert_truth(sim: SimulatorThread, snaps: pl.DataFrame) -> None:
    assert snaps.height > 0
    for row in snaps.iter_rows(named=True):
        truth = _http(sim, f"/sim/book?venue=okx&instId={row['instrument']}&depth=25&seq={row['last_seq']}")
        assert [float(p) for p, _ in truth["bids"]] == row["bid_px"], (row["instrument"], row["ts"])
        assert [float(s) for _, s in truth["bids"]] == row["bid_sz"]
        assert [float(p) for p, _ in truth["asks"]] == row["ask_px"]
        assert [float(s) for _, s in truth["asks"]] == row["ask_sz"]


def _assert_inside(snaps: pl.DataFrame, segs: pl.DataFrame) -> None:
    j = snaps.join(segs.select("segment_id", "start_ts", "end_ts"), on="segment_id", how="left")
    assert j["start_ts"].null_count() == 0
    assert j.filter((pl.col("ts") < pl.col("start_ts")) | (pl.col("ts") >= pl.col("end_ts"))).height == 0


def test_snapshots_equal_the_true_books(sim: SimulatorThread, tmp_path: Path) -> None:
    lake = _lake(sim, tmp_path, 3.0)
    snaps, segs, gaps = _tables(lake)
    assert gaps.height == 0 and set(segs["end_reason"].drop_nulls()) <= {"snapshot"}
    assert set(snaps["instrument"]) == set(INSTRUMENTS)
    _assert_inside(snaps, segs)
    _assert_truth(sim, snaps)


def test_every_break_ends_a_segment_and_no_snapshot_spans_one(sim: SimulatorThread, tmp_path: Path) -> None:
    before = _http(sim, "/sim/book-faults?venue=okx")["kinds"]
    _http(sim, "/sim/faults", RATES)
    try:
        lake = _lake(sim, tmp_path, 4.0)
    finally:
        _http(sim, "/sim/faults", dict.fromkeys(RATES, 0.0))
    after = _http(sim, "/sim/book-faults?venue=okx")["kinds"]
    injected = sum(after.values()) - sum(before.values())
    snaps, segs, gaps = _tables(lake)
    broken = segs.filter(pl.col("end_reason").is_in(["chain", "crossed", "gap", "rest_chain"]))
    assert 1 <= broken.height == gaps.height <= injected
    # each break bronze recorded is the end of the segment it broke, named by its gap where silver did not
    # find it itself (a checksum: silver has no strings)
    assert set(broken.filter(pl.col("end_reason") == "gap")["gap_id"]) <= set(gaps["gap_id"])
    assert sorted(broken["break_ts"].to_list()) == sorted(gaps["to_ts"].to_list())
    _assert_inside(snaps, segs)
    _assert_truth(sim, snaps)
    # the book query inside a break says so and names the gap bronze recorded
    tables, answered = Handles(lake), 0
    for seg in broken.iter_rows(named=True):
        at = seg["end_ts"] + (seg["break_ts"] - seg["end_ts"]) / 2  # after the last good message, before the break
        got = book_at(lake, seg["instrument"], at, venue="okx", channel="books", tables=tables)
        if got.reason is None:  # the next segment (a resubscription) may already cover that instant
            assert got.segment_id != seg["segment_id"]
            continue
        assert got.in_break and got.gap_id is not None and got.reason is not None
        assert got.gap_id in set(gaps["gap_id"]) and got.gap_id in got.reason
        answered += 1
    assert answered >= 1
