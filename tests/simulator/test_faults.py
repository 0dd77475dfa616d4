"""Fault injection: what a client observes matches the counters; REST faults use the real bodies."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request

import pytest
import websockets

from pipeline.simulator.config import SimConfig
from pipeline.simulator.server import SimulatorThread

INST = "BTC-USDT"


@pytest.fixture(scope="module")
def sim():
    s = SimulatorThread(
        SimConfig(port=0, seed=21, ws_connections_per_s=0, trade_rate_per_instrument_per_s=20, deribit_options=4)
    )
    s.start()
    yield s
    s.stop()


def http(sim, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        sim.base_http_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def set_faults(sim, **faults) -> None:
    status, _ = http(sim, "POST", "/sim/faults", faults)
    assert status == 200


def counters(sim) -> dict:
    return http(sim, "GET", "/sim/state")[1]["counters"]


async def _trade_frames(url: str, seconds: float, channel: str = "trades", inst: str = INST) -> list[str]:
    """Raw frames of one subscription for ``seconds``; ends after the unsubscribe ack, so every frame the
    server pushed for it has been received."""
    frames = []
    arg = {"channel": channel, "instId": inst}
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"op": "subscribe", "args": [arg]}))
        end = time.monotonic() + seconds
        unsubscribed = False
        async with asyncio.timeout(seconds + 10):
            while True:
                if not unsubscribed and time.monotonic() >= end:
                    await ws.send(json.dumps({"op": "unsubscribe", "args": [arg]}))
                    unsubscribed = True
                raw = await ws.recv()
                if '"event":"unsubscribe"' in raw:
                    return frames
                if '"event":"subscribe"' not in raw:
                    frames.append(raw)


def test_malformed_frames_match_the_counter(sim) -> None:
    http(sim, "POST", "/sim/reset-counters")
    set_faults(sim, malformed_rate=0.25)
    try:
        frames = asyncio.run(_trade_frames(sim.okx_ws_url(), 2.5))
    finally:
        set_faults(sim, malformed_rate=0)
    bad = 0
    for raw in frames:
        try:
            msg = json.loads(raw)
        except json.JSONDecodeError:
            bad += 1
            continue
        item = msg["data"][0]
        if msg["arg"]["channel"] != "trades" or not all(isinstance(item[k], str) for k in ("px", "sz", "ts")):
            bad += 1
    c = counters(sim)
    assert bad >= 3
    assert c["malformed_sent"] == bad
    assert c["malformed_sent"] == sum(
        c.get(k, 0) for k in ("malformed_truncated", "malformed_wrong_type", "malformed_unknown_channel")
    )


def test_duplicates_and_out_of_order_match_counters_and_truth_lists_each_once(sim) -> None:
    http(sim, "POST", "/sim/reset-counters")
    set_faults(sim, duplicate_rate=0.2, out_of_order_rate=0.15)
    try:
        frames = asyncio.run(_trade_frames(sim.okx_ws_url(), 3.0))
    finally:
        set_faults(sim, duplicate_rate=0, out_of_order_rate=0)
    seen: set[str] = set()
    high = 0
    dups = ooo = 0
    for raw in frames:
        ids = [t["tradeId"] for t in json.loads(raw)["data"]]
        if ids[0] in seen:
            dups += 1
            continue
        seen.update(ids)
        if int(ids[0]) < high:
            ooo += 1
        high = max(high, int(ids[-1]))
    c = counters(sim)
    assert dups >= 3 and ooo >= 3
    assert (c["duplicates_sent"], c["out_of_order_sent"]) == (dups, ooo)
    truth = sim.call(lambda: sim.market.trades("okx", INST, limit=None))
    truth_ids = [str(t.trade_id) for t in truth]
    assert len(truth_ids) == len(set(truth_ids))
    assert seen <= set(truth_ids)


def test_rest_429_and_5xx_injection_and_real_rate_limit(sim) -> None:
    http(sim, "POST", "/sim/reset-counters")
    set_faults(sim, rest_429_rate=1.0)
    try:
        answers = [http(sim, "GET", f"/api/v5/market/ticker?instId={INST}") for _ in range(3)]
    finally:
        set_faults(sim, rest_429_rate=0)
    assert answers == [(429, {"msg": "Too Many Requests", "code": "50011"})] * 3
    assert counters(sim)["rest_429"] == 3
    set_faults(sim, rest_5xx_rate=1.0)
    try:
        status, body = http(sim, "GET", f"/api/v5/market/ticker?instId={INST}")
    finally:
        set_faults(sim, rest_5xx_rate=0)
    assert status == 503 and body["code"] == "50001" and counters(sim)["rest_5xx"] == 1
    # the real limit of history-trades: 20 requests per 2 s per IP
    statuses = [http(sim, "GET", f"/api/v5/market/history-trades?instId={INST}")[0] for _ in range(26)]
    assert statuses[:20] == [200] * 20 and 429 in statuses[20:]
    assert http(sim, "GET", f"/api/v5/market/ticker?instId={INST}")[0] == 200  # other endpoints unaffected


def test_silence_suppresses_everything_including_pongs(sim) -> None:
    async def run() -> tuple[bool, bool]:
        async with websockets.connect(sim.okx_ws_url(), ping_interval=None) as ws:
            set_faults(sim, silence_for_s=1.2)
            await ws.send("ping")
            got_during = False
            try:
                async with asyncio.timeout(0.8):
                    await ws.recv()
                    got_during = True
            except TimeoutError:
                pass
            await asyncio.sleep(0.8)
            await ws.send("ping")
            async with asyncio.timeout(3):
                return got_during, await ws.recv() == "pong"

    got_during, pong_after = asyncio.run(run())
    set_faults(sim, silence_for_s=0)
    assert not got_during and pong_after
    assert counters(sim)["silences"] >= 1


def test_drop_closes_connections_and_counts(sim) -> None:
    http(sim, "POST", "/sim/reset-counters")

    async def run() -> int | None:
        async with websockets.connect(sim.okx_ws_url(), ping_interval=None) as ws:
            set_faults(sim, drop_every_s=0.4)
            try:
                async with asyncio.timeout(3):
                    while True:
                        await ws.recv()
            except websockets.ConnectionClosed as e:
                return e.rcvd.code if e.rcvd else None

    try:
        code = asyncio.run(run())
    finally:
        set_faults(sim, drop_every_s=0)
    assert code == 1011
    assert counters(sim)["drops"] >= 1


def test_crossed_quote_and_burst(sim) -> None:
    http(sim, "POST", "/sim/reset-counters")
    set_faults(sim, crossed_quote_rate=1.0)
    try:
        # the quote fault crosses the ticker; books5 follows the order book (its faults are book_*_rate)
        frames = asyncio.run(_trade_frames(sim.okx_ws_url(), 1.0, channel="tickers"))
    finally:
        set_faults(sim, crossed_quote_rate=0)
    crossed = [f for f in map(json.loads, frames) if float(f["data"][0]["bidPx"]) >= float(f["data"][0]["askPx"])]
    assert crossed and counters(sim)["crossed_quotes"] >= len(crossed)

    before = sim.call(lambda: sim.market.trade_count("okx", INST))
    set_faults(sim, burst_frames_per_s=3000, burst_for_s=1.0)
    frames = asyncio.run(_trade_frames(sim.okx_ws_url(), 1.5))
    burst = counters(sim)["burst_trades.okx"]  # 50 of the 51 shares of the total burst rate
    assert 2000 <= burst <= 3600
    per_inst = burst / 50
    after = sim.call(lambda: sim.market.trade_count("okx", INST))
    assert after - before >= per_inst * 0.8  # burst trades are real trades in the ground truth
    assert len(frames) >= per_inst * 0.5


def test_control_endpoint_rejects_unknown_faults_and_reports_state(sim) -> None:
    status, body = http(sim, "POST", "/sim/faults", {"explode_rate": 1})
    assert status == 400 and body["key"] == "simulator.faults.explode_rate"
    status, body = http(sim, "POST", "/sim/faults", {"malformed_rate": 3})
    assert status == 400
    state = http(sim, "GET", "/sim/state")[1]
    assert {"faults", "counters", "published", "connections"} <= set(state)
    assert state["faults"]["settings"]["malformed_rate"] == 0
    assert state["published"]["okx"][INST] > 0
