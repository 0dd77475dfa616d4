"""OKX WebSocket protocol: frame shapes equal the real 2026 captures; acks, error codes, ping, limits."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from pipeline.realdata import realdata_dir
from pipeline.simulator.config import SimConfig
from pipeline.simulator.server import SimulatorThread

REAL = realdata_dir() / "okx" / "ccxt-2026-08.jsonl"


def _shape(value):
    """Key set and JSON type of every value, recursively (lists: shape of each item)."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__


def _real_frames() -> dict[str, dict]:
    """channel -> one real push frame; "ack" -> a real subscribe ack."""
    out: dict[str, dict] = {}
    if not REAL.is_file():  # like every test on the recordings: skipped, not failed, where they are absent
        pytest.skip(f"real recordings not found at {REAL} (set CRYPTOLAKE_REALDATA)")
    for line in REAL.read_text().splitlines():
        rec = json.loads(line)
        msg = rec["msg"]
        if rec["dir"] != "recv":
            continue
        if msg.get("event") == "subscribe":
            out.setdefault("ack", msg)
        elif "data" in msg:
            out.setdefault(msg["arg"]["channel"], msg)
    return out


@pytest.fixture(scope="module")
def sim():
    s = SimulatorThread(
        SimConfig(port=0, seed=11, ws_connections_per_s=0, trade_rate_per_instrument_per_s=10, deribit_options=4)
    )
    s.start()
    yield s
    s.stop()


async def _collect(url: str, args: list[dict], want: set[str], timeout: float = 10.0) -> dict[str, dict]:
    """First frame per channel (and the first ack) on one connection."""
    got: dict[str, dict] = {}
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"op": "subscribe", "args": args}))
        async with asyncio.timeout(timeout):
            while not want <= set(got):
                msg = json.loads(await ws.recv())
                key = "ack" if msg.get("event") == "subscribe" else msg.get("arg", {}).get("channel", "?")
                got.setdefault(key, msg)
    return got


def test_push_frames_have_the_real_keys_and_types(sim) -> None:
    real = _real_frames()
    assert {"trades", "books5", "tickers", "candle1m", "ack"} <= set(real)
    pub = asyncio.run(
        _collect(
            sim.okx_ws_url("public"),
            [
                {"channel": c, "instId": i}
                for c in ("trades", "books5", "tickers")
                for i in ("BTC-USDT", "BTC-USDT-SWAP")
            ],
            {"trades", "books5", "tickers", "ack"},
        )
    )
    biz = asyncio.run(
        _collect(sim.okx_ws_url("business"), [{"channel": "candle1m", "instId": "BTC-USDT-SWAP"}], {"candle1m"})
    )
    ours = pub | {"candle1m": biz["candle1m"]}
    for channel in ("trades", "books5", "tickers", "candle1m", "ack"):
        assert _shape(ours[channel]) == _shape(real[channel]), channel
    trade = ours["trades"]["data"][0]
    assert isinstance(trade["seqId"], int) and trade["source"] == "0" and trade["ts"].isdigit()
    assert len(ours["candle1m"]["data"][0]) == 9
    assert len(ours["ack"]["connId"]) == 8 and int(ours["ack"]["connId"], 16) >= 0


def test_bbo_tbt_is_one_level_with_seq(sim) -> None:
    got = asyncio.run(_collect(sim.okx_ws_url("public"), [{"channel": "bbo-tbt", "instId": "ETH-USDT"}], {"bbo-tbt"}))
    data = got["bbo-tbt"]["data"][0]
    assert set(data) == {"asks", "bids", "ts", "seqId"}
    assert len(data["asks"]) == 1 and len(data["bids"]) == 1 and isinstance(data["seqId"], int)
    assert float(data["bids"][0][0]) < float(data["asks"][0][0])


async def _responses(url: str, sends: list[str], n: int) -> list:
    async with websockets.connect(url) as ws:
        for s in sends:
            await ws.send(s)
        out = []
        async with asyncio.timeout(5):
            while len(out) < n:
                raw = await ws.recv()
                out.append(raw if raw == "pong" else json.loads(raw))
                if isinstance(out[-1], dict) and "data" in out[-1]:
                    out.pop()  # data pushes are not what we are checking here
        return out


def test_acks_errors_and_ping(sim) -> None:
    sub = json.dumps(
        {
            "op": "subscribe",
            "args": [
                {"channel": "trades", "instId": "NOPE-USDT"},
                {"channel": "trades-v2", "instId": "BTC-USDT"},
                {"channel": "candle1m", "instId": "BTC-USDT"},
                {"channel": "tickers", "instId": "SOL-USDT"},
            ],
        }
    )
    out = asyncio.run(_responses(sim.okx_ws_url("public"), [sub, "{not json", "ping"], 6))
    errors = [m for m in out if isinstance(m, dict) and m.get("event") == "error"]
    assert [e["code"] for e in errors] == ["60018", "60018", "64001", "60012"]
    assert "NOPE-USDT" in errors[0]["msg"] and "trades-v2" in errors[1]["msg"]
    assert errors[3]["msg"].startswith("Invalid request:")
    ack = [m for m in out if isinstance(m, dict) and m.get("event") == "subscribe"]
    assert ack == [
        {"event": "subscribe", "arg": {"channel": "tickers", "instId": "SOL-USDT"}, "connId": ack[0]["connId"]}
    ]
    assert "pong" in out
    # public channels are not on /business either
    out = asyncio.run(
        _responses(
            sim.okx_ws_url("business"),
            [json.dumps({"op": "subscribe", "args": [{"channel": "trades", "instId": "BTC-USDT"}]})],
            1,
        )
    )
    assert out[0]["event"] == "error" and out[0]["code"] == "60018"


def test_unsubscribe_stops_the_stream(sim) -> None:
    async def run() -> int:
        async with websockets.connect(sim.okx_ws_url("public")) as ws:
            arg = {"channel": "books5", "instId": "BTC-USDT"}
            await ws.send(json.dumps({"op": "subscribe", "args": [arg]}))
            await asyncio.sleep(0.5)
            await ws.send(json.dumps({"op": "unsubscribe", "args": [arg]}))
            async with asyncio.timeout(5):
                while json.loads(await ws.recv()).get("event") != "unsubscribe":
                    pass
            after = 0
            try:
                async with asyncio.timeout(0.6):
                    while True:
                        await ws.recv()
                        after += 1
            except TimeoutError:
                pass
            return after

    assert asyncio.run(run()) == 0


def test_idle_connection_is_closed_and_limits_apply() -> None:
    cfg = SimConfig(
        port=0, seed=3, idle_timeout_s=0.6, ws_connections_per_s=2, subscribe_requests_per_hour=2, deribit_options=2
    )
    with SimulatorThread(cfg) as s:

        async def idle() -> int | None:
            async with websockets.connect(s.okx_ws_url("public"), ping_interval=None) as ws:
                try:
                    async with asyncio.timeout(5):
                        while True:
                            await ws.recv()
                except websockets.ConnectionClosed as e:
                    return e.rcvd.code if e.rcvd else None

        assert asyncio.run(idle()) == 4004
        assert s.call(lambda: s.ctx.counters["idle_closed"]) >= 1

        async def handshakes() -> list[int]:
            await asyncio.sleep(1.1)  # a fresh one-second window
            codes = []
            for _ in range(3):
                try:
                    async with websockets.connect(s.okx_ws_url("public")):
                        codes.append(101)
                except websockets.InvalidStatus as e:
                    codes.append(e.response.status_code)
            return codes

        assert asyncio.run(handshakes()) == [101, 101, 429]

        async def subscribe_limit() -> list[str]:
            await asyncio.sleep(1.1)
            sub = json.dumps({"op": "subscribe", "args": [{"channel": "tickers", "instId": "BTC-USDT"}]})
            out = await _responses(s.okx_ws_url("public"), [sub, sub, sub], 3)
            return [m.get("code") or m["event"] for m in out]

        assert asyncio.run(subscribe_limit()) == ["subscribe", "subscribe", "60014"]
