"""Deribit JSON-RPC behaviour of the simulator over real sockets: subscribe/unsubscribe, the 13778 and
-32602 refusals, heartbeats, book chains, trade_seq continuity, faults, REST limits."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from pipeline.simulator.config import SimConfig

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def sim() -> Iterator[Any]:
    from pipeline.simulator.server import SimulatorThread

    # 830 options: the collector's full ETH option universe must be subscribable
    cfg = SimConfig(port=0, okx_instruments=2, deribit_options=830, seed=11, trade_rate_per_instrument_per_s=5.0)
    with SimulatorThread(cfg) as s:
        s.ctx.hubs["deribit"].min_heartbeat_s = 0.2  # the venue's floor is 10 s; tests need short intervals
        yield s


def ws_url(sim: Any) -> str:
    return f"http://127.0.0.1:{sim.port}/ws/api/v2"


class Client:
    """A minimal JSON-RPC client: ``call`` waits for the reply with its id, pushes are kept in order."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 1
        self.pushes: list[dict[str, Any]] = []

    async def call(self, method: str, params: dict[str, Any] | None = None, timeout_s: float = 10.0) -> dict[str, Any]:
        rid = self.next_id
        self.next_id += 1
        await self.ws.send_str(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            frame = await self.recv(deadline - time.monotonic())
            if frame is None:
                break
            if frame.get("id") == rid:
                return frame
            self.pushes.append(frame)
        raise AssertionError(f"no reply to {method} within {timeout_s} s")

    async def recv(self, timeout_s: float) -> dict[str, Any] | None:
        """The next frame, or None on timeout/close."""
        try:
            msg = await asyncio.wait_for(self.ws.receive(), max(0.01, timeout_s))
        except TimeoutError:
            return None
        if msg.type != aiohttp.WSMsgType.TEXT:
            return None
        return json.loads(msg.data)

    async def pump(self, seconds: float, until: Any = None) -> None:
        """Collect pushes for ``seconds`` (or until ``until(pushes)`` is true)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (until and until(self.pushes)):
            frame = await self.recv(deadline - time.monotonic())
            if frame is not None:
                self.pushes.append(frame)
            elif self.ws.closed:
                return


def run_client(sim: Any, body: Any) -> Any:
    async def go() -> Any:
        async with aiohttp.ClientSession() as s, s.ws_connect(ws_url(sim), max_msg_size=0) as ws:
            return await body(Client(ws))

    return asyncio.run(go())


def on_channel(pushes: list[dict[str, Any]], channel: str) -> list[dict[str, Any]]:
    return [p for p in pushes if p.get("method") == "subscription" and p["params"]["channel"] == channel]


# -- subscribe ------------------------------------------------------------------------------------------------
def test_subscribe_answers_the_channel_names(sim: Any) -> None:
    channels = ["trades.ETH-PERPETUAL.100ms", "ticker.ETH-PERPETUAL.100ms", "quote.ETH-PERPETUAL"]

    async def body(c: Client) -> dict[str, Any]:
        return await c.call("public/subscribe", {"channels": channels})

    reply = run_client(sim, body)
    assert reply["result"] == channels
    assert reply["jsonrpc"] == "2.0" and reply["testnet"] is False
    assert reply["usOut"] - reply["usIn"] == reply["usDiff"] >= 0


def test_raw_channel_refused_with_13778_for_the_whole_request(sim: Any) -> None:
    async def body(c: Client) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        reply = await c.call(
            "public/subscribe", {"channels": ["ticker.ETH-PERPETUAL.100ms", "trades.ETH-PERPETUAL.raw"]}
        )
        await c.pump(1.5)
        return reply, c.pushes

    reply, pushes = run_client(sim, body)
    assert reply["error"] == {"message": "raw_subscriptions_not_available_for_unauthorized", "code": 13778}
    assert "result" not in reply
    assert on_channel(pushes, "ticker.ETH-PERPETUAL.100ms") == []  # nothing of the refused request was added


def test_unknown_instrument_or_channel_is_invalid_params(sim: Any) -> None:
    async def body(c: Client) -> list[dict[str, Any]]:
        return [
            await c.call("public/subscribe", {"channels": ["ticker.ETH-1JAN20-1000-C.100ms"]}),
            await c.call("public/subscribe", {"channels": ["candles.ETH-PERPETUAL.100ms"]}),
            await c.call("public/subscribe", {"channels": "ticker.ETH-PERPETUAL.100ms"}),
            await c.call("public/no_such_method"),
        ]

    bad_inst, bad_chan, not_a_list, no_method = run_client(sim, body)
    for reply in (bad_inst, bad_chan, not_a_list):
        assert reply["error"]["code"] == -32602 and reply["error"]["message"] == "Invalid params"
    assert no_method["error"]["code"] == -32601


def test_830_options_times_two_channels_in_one_request(sim: Any) -> None:
    options = [i.inst_id for i in sim.ctx.market.instruments("deribit") if i.market == "option"]
    assert len(options) == 830
    channels = [f"trades.{o}.100ms" for o in options] + [f"ticker.{o}.100ms" for o in options]

    async def body(c: Client) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        reply = await c.call("public/subscribe", {"channels": channels}, timeout_s=20)
        # every fresh ticker subscription gets the current state at once
        await c.pump(
            10, until=lambda p: len({x["params"]["channel"] for x in p if x.get("method") == "subscription"}) >= 830
        )
        return reply, c.pushes

    reply, pushes = run_client(sim, body)
    assert sorted(reply["result"]) == sorted(channels)
    tickers = {p["params"]["channel"] for p in pushes if p["params"]["channel"].startswith("ticker.")}
    assert len(tickers) == 830


def test_unsubscribe_stops_pushes(sim: Any) -> None:
    ch = "ticker.ETH-PERPETUAL.100ms"

    async def body(c: Client) -> tuple[int, dict[str, Any], int]:
        await c.call("public/subscribe", {"channels": [ch]})
        await c.pump(3, until=lambda p: len(on_channel(p, ch)) >= 2)
        before = len(on_channel(c.pushes, ch))
        reply = await c.call("public/unsubscribe", {"channels": [ch]})
        c.pushes.clear()
        await c.pump(2.5)
        return before, reply, len(on_channel(c.pushes, ch))

    before, reply, after = run_client(sim, body)
    assert before >= 2
    assert reply["result"] == [ch]
    assert after == 0


# -- heartbeat ------------------------------------------------------------------------------------------------
def test_heartbeat_answered_keeps_the_connection(sim: Any) -> None:
    async def body(c: Client) -> tuple[dict[str, Any], int, bool]:
        reply = await c.call("public/set_heartbeat", {"interval": 0.3})
        answered = 0
        deadline = time.monotonic() + 1.6
        while time.monotonic() < deadline:
            frame = await c.recv(deadline - time.monotonic())
            if frame and frame.get("method") == "heartbeat":
                assert frame == {"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "test_request"}}
                test = await c.call("public/test")
                assert test["result"] == {"version": "1.2.26"}
                answered += 1
        return reply, answered, c.ws.closed

    reply, answered, closed = run_client(sim, body)
    assert reply["result"] == "ok"
    assert answered >= 3
    assert not closed


def test_unanswered_heartbeat_disconnects(sim: Any) -> None:
    before = sim.ctx.counters.get("heartbeat_disconnects", 0)

    async def body(c: Client) -> tuple[int, float, bool]:
        await c.call("public/set_heartbeat", {"interval": 0.3})
        t0 = time.monotonic()
        requests = 0
        while time.monotonic() - t0 < 5:
            msg = await c.ws.receive(timeout=5)
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            if json.loads(msg.data).get("method") == "heartbeat":
                requests += 1  # and do not answer
        return requests, time.monotonic() - t0, c.ws.closed

    requests, elapsed, closed = run_client(sim, body)
    assert closed and elapsed < 2.0  # closed at the second interval, not at our 5 s guard
    assert requests >= 1
    assert sim.ctx.counters.get("heartbeat_disconnects", 0) > before


def test_heartbeat_below_the_floor_is_refused(sim: Any) -> None:
    async def body(c: Client) -> dict[str, Any]:
        return await c.call("public/set_heartbeat", {"interval": 0.05})

    reply = run_client(sim, body)
    assert reply["error"]["code"] == -32602


# -- data integrity -------------------------------------------------------------------------------------------
def test_trade_seq_contiguous_and_equal_to_ground_truth(sim: Any) -> None:
    ch = "trades.ETH-PERPETUAL.100ms"

    async def body(c: Client) -> list[dict[str, Any]]:
        await c.call("public/subscribe", {"channels": [ch]})
        # Trades arrive at random (~2-3 a second on this instrument): wait long enough that 12 is all but certain;
        # ``until`` returns as soon as they are in (a CI run once saw 9 in 4 s).
        await c.pump(15, until=lambda p: sum(len(x["params"]["data"]) for x in on_channel(p, ch)) >= 12)
        return [t for p in on_channel(c.pushes, ch) for t in p["params"]["data"]]

    trades = run_client(sim, body)
    assert len(trades) >= 12
    seqs = [t["trade_seq"] for t in trades]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "trade_seq must step by exactly 1"
    truth = sim.call(
        lambda: sim.ctx.market.trades(
            "deribit",
            "ETH-PERPETUAL",
            start_ms=trades[0]["timestamp"],
            end_ms=trades[-1]["timestamp"],
            limit=None,
            newest_first=False,
        )
    )
    by_seq = {t.seq: t for t in truth}
    for t in trades:
        g = by_seq[t["trade_seq"]]
        assert t["trade_id"] == f"ETH-{g.trade_id}"
        assert (t["price"], t["amount"], t["direction"], t["timestamp"]) == (g.price, g.size, g.side, g.ts_ms)


def test_book_changes_chain_from_the_snapshot(sim: Any) -> None:
    ch = "book.ETH-PERPETUAL.100ms"

    async def body(c: Client) -> list[dict[str, Any]]:
        await c.call("public/subscribe", {"channels": [ch]})
        await c.pump(5, until=lambda p: len(on_channel(p, ch)) >= 4)
        return [p["params"]["data"] for p in on_channel(c.pushes, ch)]

    books = run_client(sim, body)
    assert books[0]["type"] == "snapshot" and len(books) >= 4
    bids = {px: sz for _, px, sz in books[0]["bids"]}
    asks = {px: sz for _, px, sz in books[0]["asks"]}
    prev = books[0]["change_id"]
    for b in books[1:]:
        assert b["type"] == "change" and b["prev_change_id"] == prev and b["change_id"] > prev
        prev = b["change_id"]
        for side, levels in ((bids, b["bids"]), (asks, b["asks"])):
            for action, px, sz in levels:
                assert (px in side) == (action != "new"), f"{action} {px} against the local book"
                if action == "delete":
                    del side[px]
                else:
                    side[px] = sz
        assert max(bids) < min(asks)


# -- faults and limits ----------------------------------------------------------------------------------------
def test_duplicate_and_malformed_faults_are_sent_and_counted(sim: Any) -> None:
    ch = "trades.ETH-PERPETUAL.100ms"
    counters = sim.ctx.counters
    dup0, bad0 = counters.get("duplicates_sent", 0), counters.get("malformed_sent", 0)
    sim.call(lambda: sim.ctx.faults.update({"duplicate_rate": 1.0, "malformed_rate": 1.0}))
    try:

        async def body(c: Client) -> tuple[list[str], list[int]]:
            await c.call("public/subscribe", {"channels": [ch]})
            raw: list[str] = []
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline and len(raw) < 12:
                msg = await c.ws.receive(timeout=4)
                raw.append(msg.data)
            seqs = []
            for text in raw:
                try:
                    f = json.loads(text)
                except ValueError:
                    continue
                if f.get("params", {}).get("channel") == ch and isinstance(f["params"]["data"][0]["price"], float):
                    seqs += [t["trade_seq"] for t in f["params"]["data"]]
            return raw, seqs

        raw, seqs = run_client(sim, body)
    finally:
        sim.call(lambda: sim.ctx.faults.update({"duplicate_rate": 0.0, "malformed_rate": 0.0}))
    assert len(seqs) > len(set(seqs)), "every trades frame is sent twice"
    assert counters.get("duplicates_sent", 0) > dup0 and counters.get("malformed_sent", 0) > bad0
    unparsable_or_odd = 0
    for text in raw:
        try:
            f = json.loads(text)
        except ValueError:
            unparsable_or_odd += 1
            continue
        if "params" in f and (
            f["params"]["channel"] != ch or not isinstance(f["params"]["data"][0].get("price"), float)
        ):
            unparsable_or_odd += 1
    assert unparsable_or_odd >= 1


def test_rest_rate_limit_answers_deribits_429(sim: Any) -> None:
    async def go() -> list[tuple[int, dict[str, Any]]]:
        out = []
        async with aiohttp.ClientSession() as s:
            for _ in range(8):  # get_instruments allows ~1/s with a small burst
                async with s.get(
                    f"http://127.0.0.1:{sim.port}/api/v2/public/get_instruments", params={"currency": "BTC"}
                ) as r:
                    out.append((r.status, await r.json()))
        return out

    answers = asyncio.run(go())
    assert answers[0][0] == 200
    limited = [body for status, body in answers if status == 429]
    assert limited, "8 get_instruments calls in a burst must hit the limit"
    assert limited[0]["error"] == {"message": "too_many_requests", "code": 10028}


def test_silence_window_sends_nothing_and_counts(sim: Any) -> None:
    ch = "ticker.ETH-PERPETUAL.100ms"
    counters = sim.ctx.counters
    silences0, suppressed0 = counters.get("silences", 0), counters.get("frames_suppressed", 0)

    async def body(c: Client) -> list[float]:
        await c.call("public/subscribe", {"channels": [ch]})
        await c.pump(3, until=lambda p: len(on_channel(p, ch)) >= 1)
        sim.call(lambda: sim.ctx.faults.update({"silence_for_s": 1.0}))
        arrivals = [time.monotonic()]
        deadline = arrivals[0] + 2.5
        while time.monotonic() < deadline:
            if await c.recv(deadline - time.monotonic()) is not None:
                arrivals.append(time.monotonic())
        return arrivals

    try:
        arrivals = run_client(sim, body)
    finally:
        sim.call(lambda: sim.ctx.faults.update({"silence_for_s": 0.0}))
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert len(arrivals) > 2, "pushes resume after the window"
    assert max(gaps) >= 0.8
    assert counters.get("silences", 0) > silences0 and counters.get("frames_suppressed", 0) > suppressed0


def test_out_of_order_fault_reorders_but_loses_nothing(sim: Any) -> None:
    ch = "trades.ETH-PERPETUAL.100ms"
    before = sim.ctx.counters.get("out_of_order_sent", 0)

    async def body(c: Client) -> list[int]:
        await c.call("public/subscribe", {"channels": [ch]})
        sim.call(lambda: sim.ctx.faults.update({"out_of_order_rate": 0.5}))
        try:
            await c.pump(3)
        finally:
            sim.call(lambda: sim.ctx.faults.update({"out_of_order_rate": 0.0}))
        await c.pump(2)  # held frames are released after at most ~1 s
        return [t["trade_seq"] for p in on_channel(c.pushes, ch) for t in p["params"]["data"]]

    seqs = run_client(sim, body)
    assert seqs != sorted(seqs), "some frames arrive after a later one"
    assert sorted(seqs) == list(range(min(seqs), max(seqs) + 1)), "and none is lost"
    assert sim.ctx.counters.get("out_of_order_sent", 0) > before
