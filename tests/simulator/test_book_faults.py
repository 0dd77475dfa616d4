"""Book faults on the wire: a client that checks the chain, the crossing and the OKX checksum detects exactly
the faults the simulator says it injected, per kind and per stream (``GET /sim/book-faults``)."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from pipeline.simulator.server import SimulatorThread
from tests.simulator.bookkit import LocalBook, okx_checksum, record
from tests.simulator.test_book_wire import _config

pytestmark = pytest.mark.timeout(90)

RATES = {"book_skip_rate": 0.07, "book_duplicate_rate": 0.07, "book_cross_rate": 0.07, "book_checksum_rate": 0.07}
OKX_ARGS = [
    {"channel": "books", "instId": "BTC-USDT"},
    {"channel": "books", "instId": "ETH-USDT"},
    {"channel": "books-l2-tbt", "instId": "BTC-USDT-SWAP"},
]
DERIBIT_CHANNELS = ["book.ETH-PERPETUAL.100ms"]


def _post(sim: SimulatorThread, path: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(
        sim.base_http_url + path, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(_config(seed=21)) as s:
        yield s


def _record_both(sim: SimulatorThread) -> tuple[list[Any], list[Any]]:
    """Both venues at once with the fault rates on for 3 s, then off for 1 s (so a skip near the end is
    revealed by a later update) before unsubscribing."""

    async def faults_off(t: float) -> None:
        if t > 3.0 and sim.ctx.faults.settings.book_skip_rate:
            await asyncio.to_thread(_post, sim, "/sim/faults", dict.fromkeys(RATES, 0.0))

    async def both() -> tuple[list[Any], list[Any]]:
        acks = [0]

        def okx_done(frame: Any) -> bool:
            acks[0] += frame.get("event") == "unsubscribe"
            return acks[0] == len(OKX_ARGS)

        okx = record(
            sim.okx_ws_url(),
            {"op": "subscribe", "args": OKX_ARGS},
            {"op": "unsubscribe", "args": OKX_ARGS},
            okx_done,
            4.0,
            faults_off,
            log_in=True,
        )
        deribit = record(
            sim.deribit_ws_url,
            {"jsonrpc": "2.0", "id": 1, "method": "public/subscribe", "params": {"channels": DERIBIT_CHANNELS}},
            {"jsonrpc": "2.0", "id": 2, "method": "public/unsubscribe", "params": {"channels": DERIBIT_CHANNELS}},
            lambda f: f.get("id") == 2,
            4.0,
        )
        return await asyncio.gather(okx, deribit)

    _post(sim, "/sim/faults", RATES)
    try:
        return asyncio.run(both())
    finally:
        _post(sim, "/sim/faults", dict.fromkeys(RATES, 0.0))


def _resync(sim: SimulatorThread, venue: str, inst_id: str, seq: int) -> LocalBook:
    """What a client gets from a fresh snapshot; here the simulator's truth at that seq."""
    book = LocalBook()
    view = sim.call(lambda: sim.ctx.books.view(venue, inst_id, 400, seq))
    if venue == "okx":  # back to the strings OKX sends
        fmt = sim.call(lambda: sim.ctx.hubs["okx"].book_frames)
        book.bids, book.asks = _okx_levels(fmt, inst_id, seq)
    else:
        book.load_truth(view)
    book.seq = seq
    return book


def _okx_levels(frames: Any, inst_id: str, seq: int) -> tuple[dict[float, list[str]], dict[float, list[str]]]:
    from pipeline.simulator.okx_books import okx_level

    book = frames.books.book("okx", inst_id)
    bids, asks = book.levels_at(seq)
    return (
        {float(okx_level(book.spec, t, n)[0]): okx_level(book.spec, t, n) for t, n in bids.items()},
        {float(okx_level(book.spec, t, n)[0]): okx_level(book.spec, t, n) for t, n in asks.items()},
    )


def _detect(sim: SimulatorThread, venue: str, pushes: list[tuple[str, str, str, dict[str, Any]]]) -> Counter:
    """(channel, inst, kind) -> breaks seen: a duplicate (an update already applied), a skip (prev seq not the
    last seq), a crossed book after applying, a checksum that does not verify. After a break the client takes
    a snapshot (prev seq for a skip, so the message itself is still checked; its own seq otherwise)."""
    seen: Counter = Counter()
    books: dict[tuple[str, str], LocalBook] = {}
    for channel, inst_id, kind, data in pushes:
        key = (channel, inst_id)
        seq, prev = (
            (data["seqId"], data["prevSeqId"]) if venue == "okx" else (data["change_id"], data.get("prev_change_id"))
        )
        if kind == "snapshot":
            book = books[key] = LocalBook()
            book.load(
                *(
                    (data["bids"], data["asks"])
                    if venue == "okx"
                    else ([b[1:] for b in data["bids"]], [a[1:] for a in data["asks"]])
                )
            )
            book.seq = seq
            continue
        book = books[key]
        if seq == book.seq and prev != seq:
            seen[(channel, inst_id, "duplicate")] += 1
            continue
        if prev != book.seq:
            seen[(channel, inst_id, "skip")] += 1
            book = books[key] = _resync(sim, venue, inst_id, prev)
        if venue == "okx":
            book.apply_okx(data)
        else:
            book.apply_deribit(data)
        book.seq = seq
        if book.crossed():
            seen[(channel, inst_id, "cross")] += 1
            books[key] = _resync(sim, venue, inst_id, seq)
        elif venue == "okx" and data["checksum"] != okx_checksum(*book.top(25)):
            seen[(channel, inst_id, "checksum")] += 1
            books[key] = _resync(sim, venue, inst_id, seq)
    return seen


def test_every_injected_book_fault_is_detected_per_kind_and_stream(sim: SimulatorThread) -> None:
    okx_frames, deribit_frames = _record_both(sim)
    okx = [(f["arg"]["channel"], f["arg"]["instId"], f["action"], f["data"][0]) for f in okx_frames if "action" in f]
    deribit = [
        (p["channel"], p["data"]["instrument_name"], p["data"]["type"], p["data"])
        for p in (f["params"] for f in deribit_frames if f.get("method") == "subscription")
    ]
    seen = _detect(sim, "okx", okx) + _detect(sim, "deribit", deribit)
    with urllib.request.urlopen(f"{sim.base_http_url}/sim/book-faults", timeout=10) as r:
        body = json.loads(r.read())
    injected = Counter({(row["channel"], row["instId"], row["kind"]): row["count"] for row in body["streams"]})
    assert seen == injected
    kinds = Counter()
    for (_c, _i, kind), n in injected.items():
        kinds[kind] += n
    assert all(kinds[k] >= 1 for k in ("skip", "duplicate", "cross", "checksum")), kinds
    assert body["kinds"] == {k: kinds[k] for k in ("skip", "duplicate", "cross", "checksum")}
    assert not any(kind == "checksum" for (c, _i, kind) in injected if c.startswith("book."))  # Deribit has none
    assert sum(n for (c, _i, _k), n in injected.items() if c.startswith("book.")) >= 1
