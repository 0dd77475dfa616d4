"""The stream captures the derivatives state over 127.0.0.1: against the simulator (OKX funding-rate, open-interest,
mark-price, index-tickers, liquidation-orders; Deribit's perpetual ticker and deribit_price_index), values equal
to the simulator's ground truth; and liquidations from a small local OKX server, because the simulator draws
them only after a 30 s look-back of fast moves (none in a run of seconds)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import polars as pl
import pytest
from aiohttp import web

from pipeline.config import StreamConfig, VenueStreamConfig
from pipeline.ingest.stream import run_stream
from pipeline.lake import writer
from pipeline.lake.location import Lake
from pipeline.lake.tables import BRONZE_DERIVATIVES, BRONZE_LIQUIDATIONS, BRONZE_REJECTS
from pipeline.simulator import SimulatorThread
from pipeline.venues.base import Subscription
from tests.ingest.streamkit import FAST, sim_config
from tests.loopback_okx import collect
from tests.venues.test_okx_derivatives import FUNDING_2026, LIQUIDATION_ITEM

OKX_DERIVATIVES = ("funding", "open_interest", "mark_price", "index", "liquidations")


def _ms(ts: object) -> int:
    return round(ts.timestamp() * 1000)  # type: ignore[attr-defined]


def test_stream_from_the_simulator_lands_derivatives_state(lake: Lake, tmp_path: Path) -> None:
    config = StreamConfig(
        name="derivatives",
        settings=FAST,
        venues={
            # the spot pair asks for every channel too: only trades apply to it (channels_for)
            "okx": VenueStreamConfig(
                "okx", "sim", ("BTC-USDT", "BTC-USDT-SWAP", "ETH-USDT-SWAP"), (), ("trades", *OKX_DERIVATIVES)
            ),
            "deribit": VenueStreamConfig("deribit", "sim", ("ETH-PERPETUAL",), (), ("ticker", "index")),
        },
    )
    with SimulatorThread(sim_config()) as sim:
        run = asyncio.run(
            run_stream(
                lake, config, sim_ws_url=f"ws://127.0.0.1:{sim.port}", seconds=3.0, spool_dir=tmp_path / "spool",
                handle_signals=False,
            )
        )  # fmt: skip
        rows = writer.read(lake, BRONZE_DERIVATIVES)
        okx_rows = rows.filter(pl.col("venue") == "okx")
        truth = sim.market.derivatives

        def mark_at(inst: str, ts: int) -> float:
            return sim.call(lambda: truth.mark_at("okx", inst, ts))

        def rate_at(inst: str, ts: int) -> float:
            return sim.call(lambda: truth.book("okx", inst).now(ts).rate)

        marks = okx_rows.filter(pl.col("channel") == "mark-price")
        assert marks.height > 0
        for r in marks.iter_rows(named=True):
            assert r["mark_price"] == mark_at(r["instrument"], _ms(r["exchange_ts"]))
        funding = okx_rows.filter(pl.col("channel") == "funding-rate")
        assert funding.height > 0
        for r in funding.iter_rows(named=True):
            assert r["funding_rate"] == pytest.approx(rate_at(r["instrument"], _ms(r["exchange_ts"])), abs=1e-16)
            assert r["next_funding_rate"] is None and r["next_funding_time"] > r["funding_time"]
            assert json.loads(r["raw"])["method"] == "current_period"
        indexes = rows.filter(pl.col("channel") == "deribit_price_index")
        assert indexes.height > 0 and set(indexes["instrument"].to_list()) == {"eth_usd"}
        for r in indexes.iter_rows(named=True):
            ts = _ms(r["exchange_ts"])
            assert r["index_price"] == round(sim.call(lambda ts=ts: truth.index_at("ETH", ts)), 2)
        sim_liquidations = sim.call(lambda: list(truth.recent_liquidations))

    assert run.stats.rejects == 0 and run.stats.venue_errors == 0
    assert writer.count_rows(lake, BRONZE_REJECTS) == 0
    by_channel = {
        ch: set(okx_rows.filter(pl.col("channel") == ch)["instrument"].to_list())
        for ch in ("funding-rate", "open-interest", "mark-price", "index-tickers")
    }
    swaps = {"BTC-USDT-SWAP", "ETH-USDT-SWAP"}
    assert by_channel == {
        "funding-rate": swaps, "open-interest": swaps, "mark-price": swaps, "index-tickers": {"BTC-USDT", "ETH-USDT"},
    }  # fmt: skip
    oi = okx_rows.filter(pl.col("channel") == "open-interest")
    assert oi.select((pl.col("open_interest") > 0).all() & (pl.col("open_interest_usd") > 0).all()).item()
    # Deribit's perpetual ticker: a derivatives row beside each quote, with funding and open interest.
    deribit_rows = rows.filter((pl.col("venue") == "deribit") & (pl.col("channel") == "ticker"))
    assert deribit_rows.height > 0 and set(deribit_rows["instrument"].to_list()) == {"ETH-PERPETUAL"}
    assert deribit_rows.select(
        pl.col("funding_rate").is_not_null().all(), pl.col("open_interest_usd").is_not_null().all()
    ).row(0) == (True, True)
    # Liquidations: exactly what the simulator published for the subscribed swaps (it draws none in the first
    # 30 s of a run, so both are empty here: the local server below carries them).
    published = sorted((x.inst_id, x.ts, x.side, x.price, x.size) for x in sim_liquidations if x.inst_id in swaps)
    stored = writer.read(lake, BRONZE_LIQUIDATIONS)
    got = sorted(
        (r["instrument"], _ms(r["exchange_ts"]), r["side"], r["price"], r["size"]) for r in stored.iter_rows(named=True)
    )
    assert got == published


def test_stream_lands_liquidations_and_funding_from_a_local_okx_server(tmp_path: Path) -> None:
    """A server on 127.0.0.1 that acks each subscribe arg and pushes recorded-shape frames (OKX docs' shapes)."""
    subscribed: list[dict] = []
    funding = {"arg": {"channel": "funding-rate", "instId": "BTC-USDT-SWAP"}, "data": [FUNDING_2026]}
    liquidations = {"arg": {"channel": "liquidation-orders", "instType": "SWAP"}, "data": [LIQUIDATION_ITEM]}

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.data == "ping":
                await ws.send_str("pong")
                continue
            request_body = json.loads(msg.data)
            for arg in request_body["args"]:
                subscribed.append(arg)
                await ws.send_str(json.dumps({"event": "subscribe", "arg": arg, "connId": "c1"}))
            await ws.send_str(json.dumps(funding))
            await ws.send_str(json.dumps(liquidations))
        return ws

    subs = (Subscription("funding", "BTC-USDT-SWAP"), Subscription("liquidations", "BTC-USDT-SWAP"),
            Subscription("liquidations", "ETH-USDT-SWAP"))  # fmt: skip
    collector = collect(tmp_path, handler, FAST, done=lambda c: c.stats.commits >= 2 and c.stats.frames >= 4, subs=subs)
    assert subscribed == [
        {"channel": "funding-rate", "instId": "BTC-USDT-SWAP"}, {"channel": "liquidation-orders", "instType": "SWAP"},
    ]  # fmt: skip
    assert collector.stats.rejects == 0
    lake = collector.lake
    (funding_row,) = writer.read(lake, BRONZE_DERIVATIVES).to_dicts()
    assert (funding_row["instrument"], funding_row["funding_rate"], funding_row["source"]) == (
        "BTC-USDT-SWAP", 0.00006912, "ws",
    )  # fmt: skip
    stored = writer.read(lake, BRONZE_LIQUIDATIONS).sort("exchange_ts")
    assert stored.select("instrument", "side", "price", "size").rows() == [
        ("BTC-USDT-SWAP", "sell", 63012.4, 13.0), ("BTC-USDT-SWAP", "buy", 63020.0, 0.5),
    ]  # fmt: skip
    assert writer.count_rows(lake, BRONZE_REJECTS) == 0
