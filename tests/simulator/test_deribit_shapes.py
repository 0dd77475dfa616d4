"""Every Deribit frame the simulator sends has the keys and JSON value types of the real venue's frames.

Reference frames: ``$CRYPTOLAKE_REALDATA/deribit`` -- cryptofeed 2021 (byte copies: strict, ints and floats
must match) and ccxt 2026 (re-serialised by ccxt: numbers compared as "number").
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pipeline.simulator.config import SimConfig

pytestmark = pytest.mark.timeout(60)


# -- the simulator ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim() -> Iterator[Any]:
    from pipeline.simulator.server import SimulatorThread

    with SimulatorThread(SimConfig(port=0, okx_instruments=2, deribit_options=40, seed=7)) as s:
        yield s


def base_url(sim: Any) -> str:
    return f"http://127.0.0.1:{sim.port}"


# -- real frames ------------------------------------------------------------------------------------------
def cryptofeed_frames(realdata: Path) -> list[dict[str, Any]]:
    """Frames received (``<unix ts>: <json>`` lines) from the cryptofeed 2021 recording."""
    out = []
    for line in (realdata / "deribit" / "cryptofeed-2021-07-options.ws.log").read_text().splitlines():
        m = re.match(r"^\d+\.\d+: (\{.*\})$", line)
        if m:
            out.append(json.loads(m.group(1)))
    return out


def ccxt_frames(realdata: Path) -> list[dict[str, Any]]:
    lines = (realdata / "deribit" / "ccxt-2026-08.jsonl").read_text().splitlines()
    return [json.loads(x)["msg"] for x in lines if x.strip() and json.loads(x)["dir"] == "recv"]


def first_push(frames: list[dict[str, Any]], kind: str, book_type: str | None = None) -> dict[str, Any]:
    for f in frames:
        if f.get("method") != "subscription" or not f["params"]["channel"].startswith(kind + "."):
            continue
        data = f["params"]["data"]
        if book_type is None or data.get("type") == book_type:
            return f
    raise AssertionError(f"no {kind} {book_type or ''} frame in the recording")


# -- shape comparison -------------------------------------------------------------------------------------
def shape(v: Any, strict: bool) -> Any:
    """JSON type tree; ``strict`` tells int from float (byte-exact recordings only)."""
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int" if strict else "number"
    if isinstance(v, float):
        return "float" if strict else "number"
    if isinstance(v, str):
        return "string"
    if v is None:
        return "null"
    if isinstance(v, dict):
        return {k: shape(x, strict) for k, x in v.items()}
    if isinstance(v, list):
        return ["array", sorted({json.dumps(shape(x, strict), sort_keys=True) for x in v})]
    raise TypeError(type(v))


def assert_same_shape(ours: Any, real: Any, strict: bool, path: str = "$") -> None:
    a, b = shape(ours, strict), shape(real, strict)
    if isinstance(b, dict):
        assert isinstance(a, dict), f"{path}: {a} vs real {b}"
        assert set(a) == set(b), f"{path}: keys differ: extra {set(a) - set(b)}, missing {set(b) - set(a)}"
        for k in b:
            assert_same_shape(ours[k], real[k], strict, f"{path}.{k}")
    elif isinstance(b, list):
        assert isinstance(a, list), f"{path}: {a} vs real {b}"
        if ours and real:  # element types (an empty side of a book change carries none)
            assert a[1] == b[1], f"{path}: element types {a[1]} vs real {b[1]}"
    else:
        assert a == b, f"{path}: {a} vs real {b}"


# -- collecting our frames ---------------------------------------------------------------------------------
async def collect(
    sim: Any, channels: list[str], want: dict[str, Any], timeout_s: float = 15.0
) -> dict[str, dict[str, Any]]:
    """Subscribe and keep the first frame matching each ``want`` predicate (name -> fn(frame) -> bool)."""
    got: dict[str, dict[str, Any]] = {}
    async with aiohttp.ClientSession() as s, s.ws_connect(base_url(sim) + "/ws/api/v2") as ws:
        await ws.send_str(
            json.dumps({"jsonrpc": "2.0", "id": 0, "method": "public/subscribe", "params": {"channels": channels}})
        )
        deadline = time.monotonic() + timeout_s
        while len(got) < len(want) and time.monotonic() < deadline:
            try:
                msg = await asyncio.wait_for(ws.receive(), max(0.05, deadline - time.monotonic()))
            except TimeoutError:
                break
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            frame = json.loads(msg.data)
            for name, pred in want.items():
                if name not in got and pred(frame):
                    got[name] = frame
    missing = set(want) - set(got)
    assert not missing, f"no frame for {missing} within {timeout_s} s"
    return got


def channel_is(prefix: str, book_type: str | None = None, list_item_key: str | None = None) -> Any:
    def pred(f: dict[str, Any]) -> bool:
        if f.get("method") != "subscription" or not f["params"]["channel"].startswith(prefix):
            return False
        data = f["params"]["data"]
        if book_type is not None:
            return data.get("type") == book_type
        if list_item_key is not None:
            return isinstance(data, list) and bool(data) and list_item_key in data[0]
        return True

    return pred


def deribit_options(sim: Any) -> list[str]:
    return [i.inst_id for i in sim.ctx.market.instruments("deribit") if i.market == "option"]


@pytest.fixture(scope="module")
def frames(sim: Any) -> dict[str, dict[str, Any]]:
    opts = deribit_options(sim)
    channels = [
        "ticker.ETH-PERPETUAL.100ms",
        "trades.ETH-PERPETUAL.100ms",
        "book.ETH-PERPETUAL.100ms",
        "quote.ETH-PERPETUAL",
        f"ticker.{opts[0]}.100ms",
        f"book.{opts[0]}.100ms",
    ]
    channels += [f"trades.{o}.100ms" for o in opts]  # options trade rarely: listen to all of them
    want = {
        "ack": lambda f: f.get("id") == 0,
        "perp_ticker": channel_is("ticker.ETH-PERPETUAL."),
        "opt_ticker": channel_is(f"ticker.{opts[0]}."),
        "perp_trades": channel_is("trades.ETH-PERPETUAL."),
        "opt_trades": lambda f: channel_is("trades.ETH-", list_item_key="iv")(f),
        "snapshot": channel_is("book.ETH-PERPETUAL.", book_type="snapshot"),
        "change": channel_is("book.ETH-PERPETUAL.", book_type="change"),
        "quote": channel_is("quote.ETH-PERPETUAL"),
    }
    return asyncio.run(collect(sim, channels, want))


# -- the tests --------------------------------------------------------------------------------------------
def test_subscribe_ack_matches_cryptofeed(frames: dict[str, Any], realdata: Path) -> None:
    real = next(f for f in cryptofeed_frames(realdata) if f.get("id") == 0)
    assert_same_shape(frames["ack"], real, strict=True)


def test_option_ticker_matches_cryptofeed(frames: dict[str, Any], realdata: Path) -> None:
    real = first_push(cryptofeed_frames(realdata), "ticker")
    assert_same_shape(frames["opt_ticker"], real, strict=True)
    data = frames["opt_ticker"]["params"]["data"]
    assert set(data["greeks"]) == {"delta", "gamma", "vega", "theta", "rho"}
    assert data["bid_iv"] <= data["mark_iv"] <= data["ask_iv"]


def test_book_snapshot_and_change_match_cryptofeed(frames: dict[str, Any], realdata: Path) -> None:
    real = cryptofeed_frames(realdata)
    assert_same_shape(frames["snapshot"], first_push(real, "book", "snapshot"), strict=True)
    assert_same_shape(frames["change"], first_push(real, "book", "change"), strict=True)
    for side in ("bids", "asks"):
        for action, _px, amount in frames["change"]["params"]["data"][side]:
            assert action in ("new", "change", "delete")
            assert (amount == 0.0) == (action == "delete")


def test_perpetual_ticker_matches_2026(frames: dict[str, Any], realdata: Path) -> None:
    real = first_push(ccxt_frames(realdata), "ticker")
    assert_same_shape(frames["perp_ticker"], real, strict=False)
    data = frames["perp_ticker"]["params"]["data"]
    assert data["best_bid_price"] < data["best_ask_price"]
    assert data["min_price"] < data["mark_price"] < data["max_price"]


def test_trades_match_2026(frames: dict[str, Any], realdata: Path) -> None:
    real = first_push(ccxt_frames(realdata), "trades")
    assert_same_shape(frames["perp_trades"], real, strict=False)
    # options add iv and nothing else
    real_opt = json.loads(json.dumps(real))
    real_opt["params"]["data"][0]["iv"] = 63.49
    assert_same_shape(frames["opt_trades"], real_opt, strict=False)
    trade = frames["perp_trades"]["params"]["data"][0]
    assert isinstance(trade["trade_id"], str) and isinstance(trade["trade_seq"], int)
    assert isinstance(trade["timestamp"], int) and trade["tick_direction"] in (0, 1, 2, 3)


def test_book_change_matches_2026(frames: dict[str, Any], realdata: Path) -> None:
    real = first_push(ccxt_frames(realdata), "book", "change")
    assert_same_shape(frames["change"], real, strict=False)


def test_quote_has_the_documented_keys(frames: dict[str, Any]) -> None:
    data = frames["quote"]["params"]["data"]
    documented = {
        "timestamp": 1550658624149,
        "instrument_name": "BTC-PERPETUAL",
        "best_bid_price": 3914.97,
        "best_bid_amount": 40.0,
        "best_ask_price": 3996.61,
        "best_ask_amount": 50.0,
    }
    assert_same_shape(data, documented, strict=True)


def _rest_get(sim: Any, method: str, **params: Any) -> tuple[int, dict[str, Any]]:
    async def go() -> tuple[int, dict[str, Any]]:
        async with aiohttp.ClientSession() as s, s.get(f"{base_url(sim)}/api/v2/public/{method}", params=params) as r:
            return r.status, await r.json()

    return asyncio.run(go())


def test_get_instruments_matches_real_rows(sim: Any, realdata: Path) -> None:
    bodies = {}
    for line in (realdata / "deribit" / "cryptofeed-2021-07-instruments.rest.log").read_text().splitlines():
        if line.startswith("https://"):
            url, rest = line.split(" -> ", 1)
            bodies[url.split("currency=")[1].split("&")[0]] = json.loads(rest.split(": ", 1)[1])
    sol = bodies["SOL"]  # the newest row shape in the recordings (settlement_currency, instrument_id...)
    real_opt = next(r for r in sol["result"] if r["kind"] == "option")
    real_perp = next(r for r in sol["result"] if r["settlement_period"] == "perpetual")
    status, body = _rest_get(sim, "get_instruments", currency="ETH")
    assert status == 200
    assert_same_shape(
        {k: v for k, v in body.items() if k != "result"}, {k: v for k, v in sol.items() if k != "result"}, strict=True
    )
    ours_opt = next(r for r in body["result"] if r["kind"] == "option")
    ours_perp = next(r for r in body["result"] if r["instrument_name"] == "ETH-PERPETUAL")
    assert_same_shape(ours_opt, real_opt, strict=False)
    assert_same_shape(ours_perp, real_perp, strict=False)
    assert ours_perp["expiration_timestamp"] == real_perp["expiration_timestamp"]


def test_rest_ticker_equals_ws_ticker_shape(sim: Any, frames: dict[str, Any]) -> None:
    opt = frames["opt_ticker"]["params"]["data"]["instrument_name"]
    status, body = _rest_get(sim, "ticker", instrument_name=opt)
    assert status == 200
    assert_same_shape(body["result"], frames["opt_ticker"]["params"]["data"], strict=True)
    status, body = _rest_get(sim, "get_order_book", instrument_name="ETH-PERPETUAL")
    assert status == 200
    assert {"change_id", "bids", "asks"} <= set(body["result"])
    assert all(len(level) == 2 for level in body["result"]["bids"])


def test_rest_error_body_is_deribits(sim: Any) -> None:
    status, body = _rest_get(sim, "ticker", instrument_name="ETH-1JAN99-1-C")
    assert status == 400
    assert body["error"]["code"] == -32602 and body["error"]["message"] == "Invalid params"
    assert body["jsonrpc"] == "2.0" and body["testnet"] is False and "result" not in body
