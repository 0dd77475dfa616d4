"""ccxt's own async ``deribit`` class, pointed at the simulator, works as against www.deribit.com and
returns the simulator's ground truth."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import ccxt.async_support as ccxt
import pytest

from pipeline.simulator.config import SimConfig

pytestmark = pytest.mark.timeout(60)

PERP = "ETH/USD:ETH"


@pytest.fixture(scope="module")
def sim() -> Iterator[Any]:
    from pipeline.simulator.server import SimulatorThread

    with SimulatorThread(SimConfig(port=0, okx_instruments=2, deribit_options=60, seed=5)) as s:
        yield s


def with_exchange(sim: Any, body: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run ``body(exchange)`` with a fresh ccxt deribit whose REST base URL is the simulator."""

    async def go() -> Any:
        ex = ccxt.deribit({"enableRateLimit": True})
        ex.urls["api"] = {"rest": f"http://127.0.0.1:{sim.port}"}  # sign() builds URLs from urls.api.rest
        try:
            await ex.load_markets()
            return await body(ex)
        finally:
            await ex.close()

    return asyncio.run(go())


def test_load_markets_finds_eth_options_with_strike_expiry_type(sim: Any) -> None:
    async def body(ex: Any) -> dict[str, Any]:
        return ex.markets

    markets = with_exchange(sim, body)
    truth = {i.inst_id: i for i in sim.ctx.market.instruments("deribit")}
    by_id = {m["id"]: m for m in markets.values()}
    assert set(by_id) == set(truth)
    options = [m for m in markets.values() if m["option"]]
    assert len(options) == 60
    for m in options:
        inst = truth[m["id"]]
        assert m["strike"] == inst.strike and m["expiry"] == inst.expiry_ms
        assert m["optionType"] == inst.option_type and m["base"] == "ETH" and m["settle"] == "ETH"
        assert m["symbol"].endswith(f"-{inst.strike:g}-{'C' if inst.option_type == 'call' else 'P'}")
    perp = markets[PERP]
    assert perp["swap"] and perp["inverse"] and perp["id"] == "ETH-PERPETUAL"


def test_fetch_ticker_and_tickers(sim: Any) -> None:
    option_id = next(i.inst_id for i in sim.ctx.market.instruments("deribit") if i.market == "option")

    async def body(ex: Any) -> tuple[Any, Any, Any]:
        opt_symbol = ex.markets_by_id[option_id][0]["symbol"]
        return (await ex.fetch_ticker(PERP), await ex.fetch_ticker(opt_symbol), await ex.fetch_tickers([PERP]))

    perp, opt, tickers = with_exchange(sim, body)
    assert perp["symbol"] == PERP and perp["bid"] < perp["ask"] and perp["last"] > 0
    assert abs(perp["markPrice"] / perp["indexPrice"] - 1) < 0.01
    assert opt["info"]["instrument_name"] == option_id and "greeks" in opt["info"]
    assert 0 < opt["bid"] < opt["ask"]
    assert list(tickers) == [PERP] and tickers[PERP]["bid"] < tickers[PERP]["ask"]


def test_fetch_ohlcv_equals_market_candles(sim: Any) -> None:
    async def body(ex: Any) -> list[list[Any]]:
        return await ex.fetch_ohlcv(PERP, "1m", limit=30)

    rows = with_exchange(sim, body)
    assert 29 <= len(rows) <= 30
    truth = sim.call(lambda: sim.ctx.market.candles("deribit", "ETH-PERPETUAL", 60_000, rows[0][0], rows[-1][0]))
    # the last bar may still be filling; every closed bar must match exactly
    for got, want in zip(rows[:-1], truth[:-1], strict=True):
        assert got[:5] == [want[0], want[1], want[2], want[3], want[4]]
        assert got[5] == pytest.approx(want[6])  # Deribit "volume" is the coin volume
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)


def test_fetch_trades_latest_equals_ground_truth(sim: Any) -> None:
    async def body(ex: Any) -> list[dict[str, Any]]:
        return await ex.fetch_trades(PERP, limit=50)

    trades = with_exchange(sim, body)
    assert len(trades) == 50
    seqs = [t["info"]["trade_seq"] for t in trades]
    assert seqs == list(range(seqs[0], seqs[0] + 50))
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
    truth = [t for t in truth if seqs[0] <= t.seq <= seqs[-1]]
    assert [t["id"] for t in trades] == [f"ETH-{t.trade_id}" for t in truth]
    assert [(t["price"], t["amount"], t["side"], t["timestamp"]) for t in trades] == [
        (t.price, t.size, t.side, t.ts_ms) for t in truth
    ]


def test_fetch_trades_pages_forward_like_the_venue(sim: Any) -> None:
    """Page with start_timestamp + sorting=asc (``has_more`` says go on) and compare with ground truth."""
    since = int(time.time() * 1000) - 20 * 60_000
    until = since + 3 * 60_000

    async def body(ex: Any) -> tuple[list[dict[str, Any]], int]:
        out: list[dict[str, Any]] = []
        cursor, pages = since, 0
        while pages < 50:
            resp = await ex.publicGetGetLastTradesByInstrumentAndTime(
                {
                    "instrument_name": "ETH-PERPETUAL",
                    "start_timestamp": cursor,
                    "end_timestamp": until,
                    "count": 100,
                    "sorting": "asc",
                }
            )
            pages += 1
            page = resp["result"]["trades"]
            out += [t for t in page if not out or t["trade_seq"] > out[-1]["trade_seq"]]
            if not resp["result"]["has_more"]:
                break
            cursor = page[-1]["timestamp"]  # same-ms trades are de-duplicated by trade_seq above
        unified = await ex.fetch_trades(PERP, since=since, limit=100, params={"sorting": "asc"})
        assert [t["info"]["trade_seq"] for t in unified] == [t["trade_seq"] for t in out[:100]]
        return out, pages

    got, pages = with_exchange(sim, body)
    truth = sim.call(
        lambda: sim.ctx.market.trades(
            "deribit", "ETH-PERPETUAL", start_ms=since, end_ms=until, limit=None, newest_first=False
        )
    )
    assert pages > 1 and len(truth) > 100
    assert [t["trade_seq"] for t in got] == [t.seq for t in truth]
    assert [t["trade_id"] for t in got] == [f"ETH-{t.trade_id}" for t in truth]


def test_fetch_order_book(sim: Any) -> None:
    async def body(ex: Any) -> dict[str, Any]:
        return await ex.fetch_order_book(PERP, 10)

    book = with_exchange(sim, body)
    assert book["symbol"] == PERP and isinstance(book["nonce"], int)
    truth = sim.call(lambda: sim.ctx.books.view("deribit", "ETH-PERPETUAL", 10, seq=book["nonce"]))
    assert [list(lv) for lv in truth.bids] == book["bids"] and [list(lv) for lv in truth.asks] == book["asks"]
    bids, asks = [px for px, _ in book["bids"]], [px for px, _ in book["asks"]]
    assert len(bids) == 10 and len(asks) == 10
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks) and bids[0] < asks[0]
