"""The derivatives state over the wire, against the engine's ground truth: OKX REST history paging, OKX
WebSocket pushes over a real loopback connection, ccxt's own okx and deribit methods, the Deribit ticker and
index channel, the control endpoint, and the shapes of the real OKX recordings.

One simulator with funding on a 1/3600 clock (an hour of funding per second), so settlements happen while the
tests run."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from typing import Any

import ccxt.async_support as ccxt
import pytest
import websockets

from pipeline.simulator import okx_deriv_frames as D
from pipeline.simulator.config import SimConfig
from pipeline.simulator.server import SimulatorThread

pytestmark = pytest.mark.timeout(90)
SCALE = 1 / 3600
SEC = 1000  # one scaled hour


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorThread]:
    cfg = SimConfig(
        port=0,
        seed=9,
        okx_instruments=50,
        deribit_options=2,
        history_days=2,
        trade_history_minutes=5,
        funding_interval_scale=SCALE,
        funding_history_days=10,  # 240 scaled seconds of history
        ws_connections_per_s=0,
        rest_rate_limits=False,
    )
    with SimulatorThread(cfg) as s:
        yield s


def _get(sim: SimulatorThread, path: str) -> Any:
    with urllib.request.urlopen(f"{sim.base_http_url}{path}", timeout=10) as r:
        return json.loads(r.read())


def _page_history(sim: SimulatorThread, inst_id: str) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    after = ""
    for _ in range(50):
        page = _get(sim, f"/api/v5/public/funding-rate-history?instId={inst_id}&limit=100{after}")["data"]
        assert len(page) <= 100
        if not page:
            return rows
        rows += page
        after = f"&after={page[-1]['fundingTime']}"
    raise AssertionError("paging did not end")


@pytest.mark.parametrize("inst_id", ["DOGE-USDT-SWAP", "ETH-USDT-SWAP"])
def test_rest_history_pages_cover_the_window_exactly_once(sim: SimulatorThread, inst_id: str) -> None:
    d = sim.market.derivatives
    start_before = sim.call(lambda: d.history_start())
    rows = _page_history(sim, inst_id)
    start_after = sim.call(lambda: d.history_start())
    times = [int(r["fundingTime"]) for r in rows]
    assert times == sorted(times, reverse=True) and len(set(times)) == len(times)  # newest first, no repeats
    truth = sim.call(lambda: d.settlements("okx", inst_id, times[-1], times[0]))
    assert [(s.funding_time, s.rate) for s in reversed(truth)] == [
        (int(r["fundingTime"]), float(r["realizedRate"])) for r in rows
    ]
    assert start_before <= times[-1] < start_after + 8 * SEC  # reaches back to the start of the window
    if inst_id == "DOGE-USDT-SWAP":
        assert len(rows) > 200  # hourly: three pages
    else:  # the interval change is in the data
        assert {8 * SEC, 4 * SEC} <= {a - b for a, b in itertools.pairwise(times)}
    control = _get(sim, f"/sim/funding?venue=okx&instId={inst_id}&start_ms={times[-1]}&end_ms={times[0]}")
    assert [(c["fundingTime"], c["rate"], c["intervalMs"]) for c in reversed(control)] == [
        (s.funding_time, s.rate, s.interval_ms) for s in reversed(truth)
    ]


def test_current_funding_rest_shows_the_cap_and_the_interval(sim: SimulatorThread) -> None:
    row = _get(sim, "/api/v5/public/funding-rate?instId=DOGE-USDT-SWAP")["data"][0]
    book = sim.market.derivatives.book("okx", "DOGE-USDT-SWAP")
    assert row == D.funding_rate_data(sim.call(lambda: book.now(int(row["ts"]))), book.spec)
    assert (row["maxFundingRate"], row["minFundingRate"]) == ("0.015", "-0.015")
    assert int(row["nextFundingTime"]) - int(row["fundingTime"]) == SEC
    every = _get(sim, "/api/v5/public/funding-rate?instId=ANY")["data"]
    assert len(every) == 25 and {r["instId"] for r in every} == {
        k[1] for k in sim.market.derivatives.books if k[0] == "okx"
    }


async def _collect(sim: SimulatorThread, args: list[dict[str, str]], done: Callable[[list[dict]], bool]) -> list[dict]:
    frames: list[dict] = []
    async with websockets.connect(sim.okx_ws_url("public")) as ws:
        await ws.send(json.dumps({"op": "subscribe", "args": args}))
        end = time.monotonic() + 20.0
        while time.monotonic() < end and not done(frames):
            try:
                frames.append(json.loads(await asyncio.wait_for(ws.recv(), 0.5)))
            except TimeoutError:
                continue
    return frames


def test_okx_pushes_carry_the_engines_numbers(sim: SimulatorThread) -> None:
    args = [
        {"channel": "funding-rate", "instId": "DOGE-USDT-SWAP"},
        {"channel": "mark-price", "instId": "BTC-USDT-SWAP"},
        {"channel": "open-interest", "instId": "BTC-USDT-SWAP"},
        {"channel": "index-tickers", "instId": "BTC-USDT"},
        {"channel": "liquidation-orders", "instType": "SWAP"},
    ]

    def by(frames: list[dict], channel: str) -> list[dict]:
        return [f for f in frames if f.get("arg", {}).get("channel") == channel and "data" in f]

    def done(frames: list[dict]) -> bool:
        times = {f["data"][0]["fundingTime"] for f in by(frames, "funding-rate")}
        return len(times) >= 3 and len(by(frames, "liquidation-orders")) >= 2

    frames = asyncio.run(_collect(sim, args, done))
    acks = [f for f in frames if f.get("event") == "subscribe"]
    assert len(acks) == 5 and acks[-1]["arg"] == {"channel": "liquidation-orders", "instType": "SWAP"}
    d = sim.market.derivatives
    funding = [f["data"][0] for f in by(frames, "funding-rate")]
    book = d.book("okx", "DOGE-USDT-SWAP")
    for row in funding:
        assert row == D.funding_rate_data(sim.call(partial(book.now, int(row["ts"]))), book.spec)
    rolled = [(a, b) for a, b in itertools.pairwise(funding) if a["fundingTime"] != b["fundingTime"]]
    assert len(rolled) >= 2
    for a, b in rolled:  # the push after a settlement carries the rate that was paid
        paid = sim.call(partial(d.settlements, "okx", "DOGE-USDT-SWAP", int(a["fundingTime"]), int(a["fundingTime"])))[
            0
        ]
        assert float(b["settFundingRate"]) == paid.rate
        assert int(b["fundingTime"]) - int(a["fundingTime"]) == SEC
    for f in by(frames, "mark-price"):
        row = f["data"][0]
        assert float(row["markPx"]) == sim.call(partial(d.mark_at, "okx", "BTC-USDT-SWAP", int(row["ts"])))
    for f in by(frames, "open-interest"):
        row = f["data"][0]
        assert float(row["oi"]) == sim.call(partial(d.open_interest, "okx", "BTC-USDT-SWAP", int(row["ts"])))
        assert float(row["oiCcy"]) == pytest.approx(float(row["oi"]) * 0.01)
    for f in by(frames, "index-tickers"):
        row = f["data"][0]
        want = D.index_ticker_data("BTC-USDT", sim.call(partial(d.index_ticker, "BTC", int(row["ts"]))), 1)
        assert row == want
    got = {
        (item["instId"], int(x["ts"]), x["side"], x["posSide"], float(x["bkPx"]), float(x["sz"]))
        for f in by(frames, "liquidation-orders")
        for item in f["data"]
        for x in item["details"]
    }
    lo, hi = min(g[1] for g in got), max(g[1] for g in got)
    truth = sim.call(lambda: [x for i in d.okx_swaps for x in d.liquidations(i.inst_id, lo - 1, hi)])
    assert got == {(x.inst_id, x.ts, x.side, x.pos_side, x.price, x.size) for x in truth}


def test_okx_wrong_derivatives_subscriptions_are_refused(sim: SimulatorThread) -> None:
    args = [
        {"channel": "funding-rate", "instId": "BTC-USDT"},  # a spot pair has no funding
        {"channel": "liquidation-orders", "instType": "SPOT"},
        {"channel": "index-tickers", "instId": "BTC-USDT-SWAP"},  # an instrument, not an index
    ]
    frames = asyncio.run(_collect(sim, args, lambda fs: len(fs) >= 3))
    assert [f.get("code") for f in frames[:3]] == ["60018"] * 3


def _with(sim: SimulatorThread, name: str, body: Callable[[Any], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        ex = getattr(ccxt, name)()
        ex.urls["api"] = {"rest": sim.base_http_url}
        try:
            await ex.load_markets()
            return await body(ex)
        finally:
            await ex.close()

    return asyncio.run(go())


def test_ccxt_okx_funding_and_open_interest_equal_the_truth(sim: SimulatorThread) -> None:
    d = sim.market.derivatives
    since = sim.call(lambda: d.now_ms) - 60 * SEC

    async def body(ex: Any) -> tuple:
        return (
            await ex.fetch_funding_rate("DOGE/USDT:USDT"),
            await ex.fetch_funding_rate_history("ETH/USDT:USDT", since=since, limit=30),
            await ex.fetch_open_interest("BTC/USDT:USDT"),
        )

    rate, history, oi = _with(sim, "okx", body)
    now = sim.call(lambda: d.funding_now("okx", "DOGE-USDT-SWAP", int(rate["info"]["ts"])))
    assert (rate["fundingRate"], rate["fundingTimestamp"], rate["nextFundingTimestamp"]) == (
        now.rate,
        now.funding_time,
        now.next_funding_time,
    )
    assert rate["interval"] == str(SEC)  # ccxt names only real intervals; the scaled hour stays in ms
    stamps = [h["timestamp"] for h in history]
    assert 5 <= len(history) <= 30 and stamps[0] >= since
    truth = sim.call(lambda: d.settlements("okx", "ETH-USDT-SWAP", stamps[0], stamps[-1]))
    assert [(h["timestamp"], h["fundingRate"]) for h in history] == [(s.funding_time, s.rate) for s in truth]
    want = sim.call(lambda: d.open_interest("okx", "BTC-USDT-SWAP", int(oi["info"]["ts"])))
    assert oi["openInterestAmount"] == want and oi["symbol"] == "BTC/USDT:USDT"


def test_ccxt_deribit_funding_and_open_interest_equal_the_truth(sim: SimulatorThread) -> None:
    d = sim.market.derivatives
    now = sim.call(lambda: d.now_ms)
    since, a, b = now - 80 * SEC, now - 30 * SEC, now - 10 * SEC

    async def body(ex: Any) -> tuple:
        return (
            await ex.fetch_funding_rate_history("ETH/USD:ETH", since=since, limit=20),
            await ex.fetch_funding_rate("ETH/USD:ETH", {"start_timestamp": a, "end_timestamp": b}),
            await ex.fetch_open_interest("ETH/USD:ETH"),
        )

    history, rate, oi = _with(sim, "deribit", body)
    truth = sim.call(lambda: d.interest_8h("deribit", "ETH-PERPETUAL", since, since + 20 * SEC))[:20]
    assert len(history) == 20
    assert [(h["timestamp"], h["fundingRate"]) for h in history] == [(s.funding_time, r8) for s, r8 in truth]
    assert rate["fundingRate"] == pytest.approx(
        sum(s.rate for s in sim.call(lambda: d.settlements("deribit", "ETH-PERPETUAL", a, b))), abs=1e-12
    )
    ts = oi["info"]["creation_timestamp"]
    assert oi["openInterestValue"] == sim.call(lambda: d.open_interest("deribit", "ETH-PERPETUAL", ts))


def test_deribit_ticker_and_price_index_carry_the_engines_numbers(sim: SimulatorThread) -> None:
    d = sim.market.derivatives

    async def listen() -> list[dict]:
        out: list[dict] = []
        async with websockets.connect(sim.deribit_ws_url) as ws:
            channels = ["deribit_price_index.eth_usd", "ticker.ETH-PERPETUAL.100ms", "ticker.ETH-PERPETUAL.agg2"]
            await ws.send(
                json.dumps({"jsonrpc": "2.0", "id": 1, "method": "public/subscribe", "params": {"channels": channels}})
            )
            end = time.monotonic() + 10.0
            while time.monotonic() < end and sum(1 for m in out if "index_name" in m) < 3:
                try:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                except TimeoutError:
                    continue
                if msg.get("method") == "subscription":
                    out.append(msg["params"]["data"])
        return out

    pushes = asyncio.run(listen())
    index = [p for p in pushes if "index_name" in p]
    tickers = [p for p in pushes if "instrument_name" in p]
    assert len(index) >= 3 and tickers
    for p in index:
        assert p["price"] == round(sim.call(partial(d.index_at, "ETH", p["timestamp"])), 2)
    for t in tickers:
        ts = t["timestamp"]
        current, f8h = sim.call(partial(d.ticker_funding, "deribit", "ETH-PERPETUAL", ts))
        assert (t["current_funding"], t["funding_8h"]) == (round(current, 8), round(f8h, 8))
        assert t["mark_price"] == sim.call(partial(d.mark_at, "deribit", "ETH-PERPETUAL", ts))
        assert t["open_interest"] == sim.call(partial(d.open_interest, "deribit", "ETH-PERPETUAL", ts))
        assert abs(t["current_funding"]) <= 0.005 / 8


def test_recorded_okx_funding_frames_keys_are_served(sim: SimulatorThread, realdata) -> None:
    """Every key of the real recordings (an older, thinner shape) is in what the simulator serves."""
    folder = realdata / "okx-funding"
    push = json.loads(
        next(iter((folder / "nautilus-funding-rate.ws.log").read_text().splitlines()[1:])).split(": ", 1)[1]
    )
    body = json.loads((folder / "nautilus-funding-rate-history.rest.log").read_text().split(": ", 1)[1])
    served = _get(sim, "/api/v5/public/funding-rate?instId=BTC-USDT-SWAP")["data"][0]
    history = _get(sim, "/api/v5/public/funding-rate-history?instId=BTC-USDT-SWAP&limit=1")["data"][0]
    assert set(push["data"][0]) <= set(served) and set(body["data"][0]) <= set(history)
    assert all(isinstance(v, str) for v in [*served.values(), *history.values()])
    assert push["arg"]["channel"] == "funding-rate"
