"""The order books on the wire, over real loopback WebSockets and REST: OKX ``books`` / ``books-l2-tbt`` /
``books50-l2-tbt`` replayed as a client would rebuild exactly the simulator's true book at sampled seqIds, with
every checksum verified by an independent CRC32; ``books5``/``bbo-tbt`` are its top; Deribit ``book.*.100ms``
chains and rebuilds the same way and ``quote.*`` is its top; REST snapshots equal the WebSocket at the same
seq; the no-snapshot mode rebuilds from the REST snapshot; ccxt's ``fetch_order_book`` equals the truth."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import aiohttp
import ccxt.async_support as ccxt
import pytest

from pipeline.simulator.config import SimConfig
from pipeline.simulator.server import SimulatorThread
from tests.simulator.bookkit import LocalBook, okx_checksum, record

pytestmark = pytest.mark.timeout(90)


def _config(**extra: Any) -> SimConfig:
    base: dict[str, Any] = dict(
        port=0,
        seed=11,
        okx_instruments=4,
        deribit_options=2,
        history_days=2,
        ws_connections_per_s=0,
        rest_rate_limits=False,
        trade_rate_per_instrument_per_s=5.0,
        book_updates_per_s=300.0,
    )
    return SimConfig(**(base | extra))


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(_config()) as s:
        yield s


def _okx_record(sim: SimulatorThread, args: list[dict[str, str]], seconds: float, during: Any = None) -> list[Any]:
    acks = [0]

    def done(frame: Any) -> bool:
        acks[0] += frame.get("event") == "unsubscribe"
        return acks[0] == len(args)

    return asyncio.run(
        record(
            sim.okx_ws_url(),
            {"op": "subscribe", "args": args},
            {"op": "unsubscribe", "args": args},
            done,
            seconds,
            during,
            log_in=True,
        )
    )


def _truth(sim: SimulatorThread, venue: str, inst_id: str, seq: int, depth: int = 400) -> Any:
    return sim.call(lambda: sim.ctx.books.view(venue, inst_id, depth, seq))


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _replay_okx(frames: list[Any], checksum_mode: str = "crc32") -> dict[tuple[str, str], dict[int, LocalBook]]:
    """Rebuild every OKX book stream; asserts the chain, the checksums and that no book crosses. Returns
    (channel, instId) -> seqId -> the book right after that message."""
    books: dict[tuple[str, str], LocalBook] = {}
    states: dict[tuple[str, str], dict[int, LocalBook]] = {}
    for f in frames:
        if "action" not in f:
            continue
        key = (f["arg"]["channel"], f["arg"]["instId"])
        data = f["data"][0]
        book = books.setdefault(key, LocalBook())
        if f["action"] == "snapshot":
            assert data["prevSeqId"] == -1
            book.load(data["bids"], data["asks"])
        else:
            assert book.seq is not None, "an update before the snapshot"
            assert data["prevSeqId"] == book.seq, (key, data["prevSeqId"], book.seq)
            if not data["bids"] and not data["asks"]:
                assert data["seqId"] == data["prevSeqId"]  # keep-alive
            else:
                assert data["seqId"] > data["prevSeqId"]
            book.apply_okx(data)
        book.seq = data["seqId"]
        assert not book.crossed(), key
        bids, asks = book.top(25)
        want = okx_checksum(bids, asks) if checksum_mode == "crc32" else 0
        assert data["checksum"] == want, (key, data["seqId"])
        copy = LocalBook()
        copy.bids, copy.asks, copy.seq = dict(book.bids), dict(book.asks), book.seq
        states.setdefault(key, {})[book.seq] = copy
    return states


def test_okx_books_rebuild_the_truth_and_checksums_verify(sim: SimulatorThread) -> None:
    args = [
        {"channel": "books", "instId": "BTC-USDT"},
        {"channel": "books", "instId": "ETH-USDT-SWAP"},
        {"channel": "books-l2-tbt", "instId": "ETH-USDT"},
        {"channel": "books50-l2-tbt", "instId": "BTC-USDT"},
        {"channel": "books5", "instId": "BTC-USDT"},
        {"channel": "bbo-tbt", "instId": "ETH-USDT-SWAP"},
    ]
    rest: list[Any] = []

    async def during(t: float) -> None:
        if t > 1.2 and not rest:
            async with aiohttp.ClientSession() as http:
                url = f"{sim.base_http_url}/api/v5/market/books?instId=BTC-USDT&sz=400"
                async with http.get(url) as r:
                    rest.append(await r.json())

    frames = _okx_record(sim, args, 2.5, during)
    states = _replay_okx(frames)
    assert set(states) == {(a["channel"], a["instId"]) for a in args[:4]}
    for (channel, inst_id), by_seq in states.items():
        depth = 50 if channel == "books50-l2-tbt" else 400
        assert len(by_seq) >= 10, (channel, inst_id)
        seqs = sorted(by_seq)
        for seq in seqs[:: max(1, len(seqs) // 8)] + [seqs[-1]]:
            truth = _truth(sim, "okx", inst_id, seq, depth)
            assert by_seq[seq].floats(depth) == (truth.bids, truth.asks), (channel, inst_id, seq)
    # books5 / bbo-tbt: whole snapshots equal to the top of the same book
    tops = [f for f in frames if f.get("arg", {}).get("channel") in ("books5", "bbo-tbt") and "data" in f]
    assert len(tops) >= 5
    for f in tops:
        data, n = f["data"][0], 5 if f["arg"]["channel"] == "books5" else 1
        truth = _truth(sim, "okx", f["arg"]["instId"], data["seqId"], n)
        assert [(float(b[0]), float(b[1])) for b in data["bids"]] == truth.bids
        assert [(float(a[0]), float(a[1])) for a in data["asks"]] == truth.asks
    # REST at seqId S == the WebSocket book after the message with seqId S, string for string
    body = rest[0]["data"][0]
    seq = int(body["seqId"])
    ws_book = states[("books", "BTC-USDT")][seq]
    bids, asks = ws_book.top(400)
    assert body["bids"] == bids and body["asks"] == asks
    assert body["ts"].isdigit() and len(body["bids"]) > 25


def test_deribit_book_rebuilds_the_truth_and_quote_is_its_top(sim: SimulatorThread) -> None:
    option = next(i.inst_id for i in sim.market.instruments("deribit") if i.market == "option")
    channels = ["book.ETH-PERPETUAL.100ms", f"book.{option}.100ms", "quote.ETH-PERPETUAL"]
    rest: list[Any] = []

    async def during(t: float) -> None:
        if t > 1.2 and not rest:
            async with aiohttp.ClientSession() as http:
                url = f"{sim.base_http_url}/api/v2/public/get_order_book?instrument_name=ETH-PERPETUAL&depth=50"
                async with http.get(url) as r:
                    rest.append(await r.json())

    frames = asyncio.run(
        record(
            sim.deribit_ws_url,
            {"jsonrpc": "2.0", "id": 1, "method": "public/subscribe", "params": {"channels": channels}},
            {"jsonrpc": "2.0", "id": 2, "method": "public/unsubscribe", "params": {"channels": channels}},
            lambda f: f.get("id") == 2,
            2.5,
            during,
        )
    )
    pushes = [f["params"] for f in frames if f.get("method") == "subscription"]
    books: dict[str, LocalBook] = {}
    states: dict[str, dict[int, LocalBook]] = {}
    tops_at: list[tuple[int, tuple[Any, Any]]] = []  # (timestamp, perp top) after each perp book message
    quotes: list[dict[str, Any]] = []
    for p in pushes:
        ch, data = p["channel"], p["data"]
        if ch.startswith("quote."):
            quotes.append(data)
            continue
        book = books.setdefault(ch, LocalBook())
        if data["type"] == "snapshot":
            book.load(data["bids"] and [lv[1:] for lv in data["bids"]], [lv[1:] for lv in data["asks"]])
        else:
            assert data["prev_change_id"] == book.seq and data["change_id"] > book.seq
            assert book.apply_deribit(data) == []
        book.seq = data["change_id"]
        assert not book.crossed()
        copy = LocalBook()
        copy.bids, copy.asks = dict(book.bids), dict(book.asks)
        states.setdefault(ch, {})[book.seq] = copy
        if ch == channels[0]:
            tops_at.append((data["timestamp"], copy.floats(1)))
    inst_of = {channels[0]: "ETH-PERPETUAL", channels[1]: option}
    for ch, by_seq in states.items():
        assert len(by_seq) >= 3, ch
        seqs = sorted(by_seq)
        for seq in seqs[:: max(1, len(seqs) // 8)] + [seqs[-1]]:
            truth = _truth(sim, "deribit", inst_of[ch], seq)
            assert by_seq[seq].floats() == (truth.bids, truth.asks), (ch, seq)
    # quote.{inst}: the top of the book as of the last book message at or before its timestamp
    assert len(quotes) >= 3
    for q in quotes:
        before = [top for ts, top in tops_at if ts <= q["timestamp"]]
        (bid,), (ask,) = before[-1]
        assert (q["best_bid_price"], q["best_bid_amount"], q["best_ask_price"], q["best_ask_amount"]) == (*bid, *ask)
    # get_order_book at change_id C == the WebSocket book after the change with change_id C
    result = rest[0]["result"]
    ws_book = states[channels[0]][result["change_id"]]
    bids, asks = ws_book.floats(50)
    assert [tuple(b) for b in result["bids"]] == bids and [tuple(a) for a in result["asks"]] == asks
    assert (result["best_bid_price"], result["best_ask_price"]) == (bids[0][0], asks[0][0])
    assert result["instrument_name"] == "ETH-PERPETUAL" and "mark_price" in result


def test_ccxt_fetch_order_book_equals_the_truth(sim: SimulatorThread) -> None:
    async def run() -> tuple[Any, Any, Any]:
        okx = ccxt.okx({"enableLastJsonResponse": True})
        okx.urls["api"] = {"rest": sim.base_http_url}
        deribit = ccxt.deribit()
        deribit.urls["api"] = {"rest": sim.base_http_url}
        try:
            await okx.load_markets()
            ob = await okx.fetch_order_book("ETH/USDT:USDT", 50)
            raw = okx.last_json_response
            await deribit.load_markets()
            db = await deribit.fetch_order_book("ETH/USD:ETH", 30)
            return ob, raw, db
        finally:
            await okx.close()
            await deribit.close()

    ob, raw, db = asyncio.run(run())
    truth = _truth(sim, "okx", "ETH-USDT-SWAP", int(raw["data"][0]["seqId"]), 50)
    assert len(ob["bids"]) == 50 and [tuple(b[:2]) for b in ob["bids"]] == truth.bids
    assert [tuple(a[:2]) for a in ob["asks"]] == truth.asks
    truth = _truth(sim, "deribit", "ETH-PERPETUAL", db["nonce"], 30)
    assert [tuple(b) for b in db["bids"]] == truth.bids and [tuple(a) for a in db["asks"]] == truth.asks


def test_control_endpoint_answers_the_truth(sim: SimulatorThread) -> None:
    now = _get(f"{sim.base_http_url}/sim/book?venue=okx&instId=BTC-USDT&depth=5")
    assert len(now["bids"]) == 5 and now["bids"][0][0] < now["asks"][0][0]
    at = _get(f"{sim.base_http_url}/sim/book?venue=okx&instId=BTC-USDT&depth=5&seq={now['seq']}")
    assert at["seq"] == now["seq"] and at["first_seq"] <= now["seq"]
    truth = _truth(sim, "okx", "BTC-USDT", now["seq"], 5)
    assert [tuple(b) for b in at["bids"]] == truth.bids and [tuple(a) for a in at["asks"]] == truth.asks
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(f"{sim.base_http_url}/sim/book?venue=okx&instId=BTC-USDT&seq={now['first_seq'] - 1}")
    assert err.value.code == 404
    faults = _get(f"{sim.base_http_url}/sim/book-faults")
    assert set(faults["kinds"]) == {"skip", "duplicate", "cross", "checksum"}


def test_no_ws_snapshot_mode_rebuilds_from_the_rest_snapshot() -> None:
    with SimulatorThread(_config(seed=12, book_ws_snapshot=False, book_checksum="zero")) as sim:
        rest: list[Any] = []

        async def during(t: float) -> None:
            if t > 0.6 and not rest:
                async with aiohttp.ClientSession() as http:
                    url = f"{sim.base_http_url}/api/v5/market/books?instId=ETH-USDT&sz=400"
                    async with http.get(url) as r:
                        rest.append(await r.json())

        frames = _okx_record(sim, [{"channel": "books", "instId": "ETH-USDT"}], 2.0, during)
        updates = [f["data"][0] for f in frames if "action" in f]
        assert updates and all(f["action"] == "update" for f in frames if "action" in f)
        assert all(d["checksum"] == 0 for d in updates)
        snap = rest[0]["data"][0]
        seq = int(snap["seqId"])
        book = LocalBook()
        book.load(snap["bids"], snap["asks"])
        book.seq = seq
        applied = 0
        for d in updates:
            if d["seqId"] <= seq:  # older than the snapshot
                continue
            if applied == 0:
                assert d["prevSeqId"] <= seq < d["seqId"]
            else:
                assert d["prevSeqId"] == book.seq
            book.apply_okx(d)
            book.seq = d["seqId"]
            applied += 1
            if applied % 3 == 1:
                truth = _truth(sim, "okx", "ETH-USDT", book.seq)
                assert book.floats() == (truth.bids, truth.asks)
        assert applied >= 5


def test_quiet_books_send_keepalives_that_chain() -> None:
    # no order flow, few trades and a coarse tick (SHIB: 1e-8 at ~1.65e-5): seconds pass without a change,
    # and OKX then sends an update with nothing in it and prevSeqId == seqId
    config = _config(seed=13, okx_instruments=38, book_updates_per_s=0.0, trade_rate_per_instrument_per_s=0.1)
    with SimulatorThread(config) as sim:
        frames = _okx_record(sim, [{"channel": "books", "instId": "SHIB-USDT"}], 3.0)
    _replay_okx(frames)  # the chain holds across keep-alives, checksums included
    updates = [f["data"][0] for f in frames if f.get("action") == "update"]
    keepalives = [d for d in updates if not d["bids"] and not d["asks"]]
    assert keepalives and all(d["seqId"] == d["prevSeqId"] for d in keepalives)


def test_same_seed_and_start_serve_the_same_books() -> None:
    start = int(time.time() * 1000) - 3_000
    sets = []
    for _ in range(2):
        with SimulatorThread(_config(seed=14, start_ms=start)) as sim:
            time.sleep(0.3)
        sets.append(sim.ctx.books)  # stopped: nothing mutates them any more
    first, second = sets
    for key in first.books:
        book, other = first.book(*key), second.book(*key)  # looked at now: caught up to where each clock stopped
        common = min(book.seq, other.seq)
        assert common > max(book.first_seq(), other.first_seq()), key  # both moved on from their start
        assert book.levels_at(common) == other.levels_at(common), key
