"""REST backfill rows come from the venue modules' row builders: what the WebSocket parser accepts REST
accepts too (a 7-field OKX candle), and a row it refuses, or paging that does not move back, stops the
backfill with a CryptolakeError naming the venue, the endpoint and the problem.

Each test serves venue-shaped answers from a real HTTP server on 127.0.0.1 and reads them through the
backfill's own RestClient (ccxt), so the path is the one a backfill takes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
from aiohttp import web

from pipeline.backfill import RestClient, RetryPolicy
from pipeline.backfill import deribit as deribit_rest
from pipeline.backfill import okx as okx_rest
from pipeline.errors import CryptolakeError, VenueResponseError
from pipeline.lake.schemas import CANDLE_FIELDS, TRADE_FIELDS
from pipeline.venues import okx
from pipeline.venues.base import ParsedBatch

pytestmark = pytest.mark.timeout(60)
MIN = 60_000
NO_RETRY = RetryPolicy(max_attempts=1)
Answer = Callable[[web.Request], Any]


@contextlib.asynccontextmanager
async def serving(routes: dict[str, Answer]) -> AsyncIterator[str]:
    """An HTTP server on 127.0.0.1 answering ``GET path`` with ``routes[path](request)`` as JSON."""
    app = web.Application()
    for path, answer in routes.items():

        async def handler(request: web.Request, answer: Answer = answer) -> web.Response:
            return web.json_response(answer(request))

        app.router.add_get(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def run(routes: dict[str, Answer], venue: Any, fetch: Callable[[RestClient], Coroutine[Any, Any, Any]]) -> Any:
    async def go() -> Any:
        async with serving(routes) as url, RestClient(venue, url, retry=NO_RETRY) as client:
            return await fetch(client)

    return asyncio.run(go())


def okx_data(rows: list[Any]) -> dict[str, Any]:
    return {"code": "0", "msg": "", "data": rows}


def okx_trade(trade_id: int, ts: int, px: str = "30218.8") -> dict[str, str]:
    """A history-trades row as OKX sends it (no count, no seqId)."""
    return {
        "instId": "BTC-USDT",
        "side": "buy",
        "sz": "0.5",
        "px": px,
        "source": "0",
        "tradeId": str(trade_id),
        "ts": str(ts),
    }


def test_okx_seven_field_history_candles_are_read_like_the_websocket_reads_them() -> None:
    """Older OKX candles have 7 fields (no volCcyQuote, no confirm): the bars that closed before now are
    kept with those two unknown (None); the bar still forming is left for the next run."""
    now_bar = int(time.time() * 1000) // MIN * MIN
    opens = [now_bar - 3 * MIN, now_bar - 2 * MIN, now_bar - MIN, now_bar]

    def history_candles(request: web.Request) -> dict[str, Any]:
        after = int(request.query["after"])
        bars = [[str(ts), "30218.8", "30230", "30200.1", "30222", "12", "0.4"] for ts in opens if ts < after]
        return okx_data(bars[::-1])  # newest first

    rows = run(
        {"/api/v5/market/history-candles": history_candles},
        okx_rest,
        lambda client: okx_rest.candles_between(client, "BTC-USDT", "1m", opens[0], now_bar + MIN),
    )
    got = [dict(zip(CANDLE_FIELDS, r, strict=True)) for r in rows]
    assert [c["open_ts_ms"] for c in got] == opens[:3]
    assert got[0] == {
        "venue": "okx", "market": "spot", "instrument": "BTC-USDT", "timeframe": "1m", "open_ts_ms": opens[0],
        "open": 30218.8, "high": 30230.0, "low": 30200.1, "close": 30222.0, "vol": 12.0, "vol_ccy": 0.4,
        "vol_ccy_quote": None, "confirm": None, "receive_ts_us": got[0]["receive_ts_us"], "source": "rest",
    }  # fmt: skip


def test_okx_trade_the_websocket_parser_refuses_stops_the_backfill_naming_the_field() -> None:
    page = [okx_trade(1002, 1_652_459_199_958), okx_trade(1001, 1_652_459_199_957, px="-3")]
    with pytest.raises(VenueResponseError) as err:
        run(
            {"/api/v5/market/history-trades": lambda request: okx_data(page)},
            okx_rest,
            lambda client: okx_rest.trades_between(client, "BTC-USDT", 1_652_459_100_000, 1_652_459_200_000),
        )
    message = str(err.value)
    assert isinstance(err.value, CryptolakeError)
    assert message.startswith("okx market/history-trades for BTC-USDT: "), message
    assert "px is not a positive finite number: '-3'" in message, message


def test_okx_history_that_does_not_page_back_is_a_clear_error() -> None:
    """A venue that answers every page with the same full page of trades would loop forever."""
    page = [okx_trade(2000 - i, 1_652_459_199_000 + 100 - i) for i in range(okx_rest.PAGE_ROWS)]
    with pytest.raises(
        VenueResponseError,
        match=r"^okx market/history-trades for BTC-USDT: paging did not move back past trade id 1901",
    ):
        run(
            {"/api/v5/market/history-trades": lambda request: okx_data(page)},
            okx_rest,
            lambda client: okx_rest.trades_between(client, "BTC-USDT", 1_652_459_100_000, 1_652_459_200_000),
        )


def test_okx_rest_trade_rows_are_the_rows_the_websocket_parser_builds() -> None:
    page = [okx_trade(1002, 1_652_459_199_958), okx_trade(1001, 1_652_459_199_957, px="30218.9")]
    rows = run(
        {"/api/v5/market/history-trades": lambda request: okx_data(page)},
        okx_rest,
        lambda client: okx_rest.trades_between(client, "BTC-USDT", 1_652_459_100_000, 1_652_459_200_000),
    )
    out = ParsedBatch()
    okx.parse(json.dumps({"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": page[::-1]}), 7, out, "rest")
    receive = TRADE_FIELDS.index("receive_ts_us")
    assert [r[:receive] + r[receive + 1 :] for r in rows] == [r[:receive] + r[receive + 1 :] for r in out.trades]
    assert {r[TRADE_FIELDS.index("source")] for r in rows} == {"rest"}


def test_deribit_bad_chart_bar_stops_the_backfill_naming_the_field() -> None:
    t0 = 1_652_459_160_000

    def chart(request: web.Request) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "result": {"status": "ok", "ticks": [t0, t0 + MIN], "open": [30000.0, 30001.0],
                                             "high": [30010.0, 30011.0], "low": [29990.0, None], "close": [30005.0, 30006.0],
                                             "volume": [1.5, 2.5], "cost": [45000.0, 75000.0]}}  # fmt: skip

    with pytest.raises(VenueResponseError) as err:
        run(
            {"/api/v2/public/get_tradingview_chart_data": chart},
            deribit_rest,
            lambda client: deribit_rest.candles_between(client, "ETH-PERPETUAL", "1m", t0, t0 + 2 * MIN),
        )
    message = str(err.value)
    assert message.startswith("deribit public/get_tradingview_chart_data for ETH-PERPETUAL: "), message
    assert "low" in message, message


def test_deribit_bad_trade_stops_the_backfill_naming_the_field() -> None:
    trade = {"timestamp": 1_652_459_199_958, "price": 30000.5, "direction": "sideways", "trade_id": "ETH-1",
             "instrument_name": "ETH-PERPETUAL", "trade_seq": 11, "amount": 10.0, "index_price": 30001.0, "mark_price": 30000.9}  # fmt: skip

    def trades(request: web.Request) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "result": {"trades": [trade], "has_more": False}}

    with pytest.raises(VenueResponseError) as err:
        run(
            {"/api/v2/public/get_last_trades_by_instrument_and_time": trades},
            deribit_rest,
            lambda client: deribit_rest.trades_between(client, "ETH-PERPETUAL", 1_652_459_100_000, 1_652_459_200_000),
        )
    message = str(err.value)
    assert message.startswith("deribit public/get_last_trades_by_instrument_and_time for ETH-PERPETUAL: "), message
    assert "unknown direction 'sideways'" in message, message
