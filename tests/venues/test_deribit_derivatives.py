"""Deribit derivatives state: the ticker's funding / open interest / mark and index prices as a bronze/derivatives
row beside its quote row (2026 perpetual capture, 2021 options recording), deribit_price_index rows, refusals
with a reason, and the index channel subscribed once per index name."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline.errors import FrameError
from pipeline.ingest.plan import plan_connections
from pipeline.lake.schemas import DERIVATIVE_FIELDS, QUOTE_FIELDS
from pipeline.venues import deribit
from pipeline.venues.base import ParsedBatch, Subscription
from pipeline.venues.deribit_derivatives import index_name
from tests.venues.test_deribit_parse import CCXT_2026, cf_frames, needs_realdata

RECEIVED_US = 1_786_563_121_000_000


def derivative(row: tuple) -> dict:
    assert len(row) == len(DERIVATIVE_FIELDS)
    return dict(zip(DERIVATIVE_FIELDS, row, strict=True))


def push(channel: str, data: Any) -> str:
    return json.dumps({"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}})


def ticker_2026() -> dict[str, Any]:
    """The first BTC-PERPETUAL ticker push of ccxt's 2026 capture (read with plain json, not our reader)."""
    for line in CCXT_2026.read_text().splitlines():
        msg = json.loads(line)["msg"]
        if msg.get("method") == "subscription" and msg["params"]["channel"].startswith("ticker."):
            return msg["params"]["data"]
    raise AssertionError("no ticker in the capture")


@needs_realdata
def test_perpetual_ticker_gives_a_quote_and_a_derivatives_row() -> None:
    data = ticker_2026()
    out = ParsedBatch()
    assert deribit.parse(push("ticker.BTC-PERPETUAL.100ms", data), RECEIVED_US, out) is None
    assert len(out.quotes) == 1
    (row,) = out.derivatives
    d = derivative(row)
    assert d == {
        "venue": "deribit", "market": "swap", "instrument": "BTC-PERPETUAL", "channel": "ticker",
        "exchange_ts_ms": 1786563120494, "receive_ts_us": RECEIVED_US, "source": "ws",
        "funding_rate": 2.081e-05, "next_funding_rate": None, "funding_time_ms": None, "next_funding_time_ms": None,
        "open_interest": None, "open_interest_ccy": None, "open_interest_usd": 716004750.0,  # inverse: USD
        "mark_price": 63346.33, "index_price": 63329.18, "raw": d["raw"],
    }  # fmt: skip
    raw = json.loads(d["raw"])
    assert raw["funding_8h"] == 0.00010036 and raw["interest_value"] == 0.05636261630352104
    # Nothing the ticker sent is lost: each field is in raw, a derivatives column or a quote column.
    quote = dict(zip(QUOTE_FIELDS, out.quotes[0], strict=True))
    stored_in_quote = {"best_bid_price": "bid_px", "best_bid_amount": "bid_sz", "best_ask_price": "ask_px",
                       "best_ask_amount": "ask_sz", "last_price": "last_px"}  # fmt: skip
    for key, value in data.items():
        if key in raw:
            assert raw[key] == value
        elif key in stored_in_quote:
            assert quote[stored_in_quote[key]] == value
        else:
            assert key in {
                "instrument_name",
                "timestamp",
                "current_funding",
                "open_interest",
                "mark_price",
                "index_price",
            }


@needs_realdata
def test_option_tickers_give_open_interest_in_coins() -> None:
    out = ParsedBatch()
    frames = cf_frames("ticker.")
    for frame in frames:
        deribit.parse(frame, RECEIVED_US, out)
    assert len(out.derivatives) == len(out.quotes) == len(frames) > 0
    first = derivative(out.derivatives[0])
    sent = json.loads(frames[0])["params"]["data"]
    assert (first["market"], first["instrument"], first["funding_rate"]) == ("option", sent["instrument_name"], None)
    assert first["open_interest"] == first["open_interest_ccy"] == sent["open_interest"]
    assert first["open_interest_usd"] is None
    assert (first["mark_price"], first["index_price"]) == (sent["mark_price"], sent["index_price"])
    assert json.loads(first["raw"])["underlying_index"] == sent["underlying_index"]


def test_linear_perpetual_open_interest_is_in_coins() -> None:
    data = {"instrument_name": "ETH_USDC-PERPETUAL", "timestamp": 1786563120494, "best_bid_price": 3000.5,
            "best_ask_price": 3001.0, "open_interest": 1234.5, "current_funding": -0.0001, "mark_price": 3000.7,
            "index_price": 3000.1}  # fmt: skip
    out = ParsedBatch()
    deribit.parse(push("ticker.ETH_USDC-PERPETUAL.100ms", data), RECEIVED_US, out)
    d = derivative(out.derivatives[0])
    assert (d["open_interest_ccy"], d["open_interest_usd"], d["funding_rate"], d["raw"]) == (
        1234.5,
        None,
        -0.0001,
        None,
    )


def test_spot_ticker_has_no_derivatives_row() -> None:
    data = {"instrument_name": "ETH_USDC", "timestamp": 1786563120494, "best_bid_price": 3000.5,
            "best_ask_price": 3001.0, "index_price": 3000.1}  # fmt: skip
    out = ParsedBatch()
    deribit.parse(push("ticker.ETH_USDC.100ms", data), RECEIVED_US, out)
    assert len(out.quotes) == 1 and out.derivatives == []


def test_price_index_row() -> None:
    out = ParsedBatch()
    data = {"timestamp": 1786563120494, "price": 3937.89, "index_name": "eth_usd"}
    assert deribit.parse(push("deribit_price_index.eth_usd", data), RECEIVED_US, out) is None
    d = derivative(out.derivatives[0])
    assert (d["market"], d["instrument"], d["channel"], d["index_price"], d["exchange_ts_ms"], d["raw"]) == (
        "index", "eth_usd", "deribit_price_index", 3937.89, 1786563120494, None,
    )  # fmt: skip


BAD = [
    ("deribit_price_index.eth_usd", {"timestamp": 1786563120494, "price": -1, "index_name": "eth_usd"},
     "deribit deribit_price_index: price is not a positive price: -1"),
    ("deribit_price_index.eth_usd", {"timestamp": 1786563120494, "price": 1.0}, "index_name is missing"),
    ("deribit_price_index.eth_usd", [1, 2], "data is a JSON list, not an object"),
    ("ticker.ETH-PERPETUAL.100ms", {"instrument_name": "ETH-PERPETUAL", "timestamp": 1786563120494,
     "best_bid_price": 1.0, "best_ask_price": 2.0, "open_interest": -5}, "deribit ticker: open_interest is negative"),
    ("ticker.ETH-PERPETUAL.100ms", {"instrument_name": "ETH-PERPETUAL", "timestamp": 1786563120494,
     "best_bid_price": 1.0, "best_ask_price": 2.0, "current_funding": "x"}, "current_funding is not a number"),
]  # fmt: skip


@pytest.mark.parametrize(("channel", "data", "why"), BAD, ids=[w[:40] for _, _, w in BAD])
def test_bad_derivatives_state_is_refused_whole(channel: str, data: Any, why: str) -> None:
    out = ParsedBatch()
    with pytest.raises(FrameError) as refused:
        deribit.parse(push(channel, data), RECEIVED_US, out)
    assert why in refused.value.reason
    assert out.row_count() == 0  # a refused ticker gives no quote row either


def test_index_names_and_channels_per_market() -> None:
    assert [index_name(i) for i in ("ETH-PERPETUAL", "BTC_USDC-PERPETUAL", "ETH-27DEC26-3000-C", "BTC-27DEC26")] == [
        "eth_usd", "btc_usdc", "eth_usd", "btc_usd",
    ]  # fmt: skip
    assert "index" not in deribit.channels_for("spot") and "index" not in deribit.channels_for("option")
    assert all("index" in deribit.channels_for(m) for m in ("swap", "future"))
    plans = plan_connections(deribit, "ws://127.0.0.1:1", ["ETH-PERPETUAL", "ETH-27DEC26", "ETH-27DEC26-3000-C", "ETH_USDC"],
                             ["ticker", "index"], 200)  # fmt: skip
    (plan,) = plans
    (sent,) = deribit.subscribe_frames(list(plan.subs), 5)
    assert json.loads(sent)["params"]["channels"] == [
        "ticker.ETH-PERPETUAL.100ms", "deribit_price_index.eth_usd", "ticker.ETH-27DEC26.100ms",
        "ticker.ETH-27DEC26-3000-C.100ms", "ticker.ETH_USDC.100ms",
    ]  # fmt: skip
    # The future leaving keeps the index the perpetual still needs (one subscription for both).
    (gone,) = deribit.unsubscribe_frames([s for s in plan.subs if s.instrument == "ETH-27DEC26"], 9)
    assert json.loads(gone)["params"]["channels"] == ["ticker.ETH-27DEC26.100ms"]
    assert deribit.unsubscribe_frames([Subscription("index", "ETH-PERPETUAL")], 10) == []
