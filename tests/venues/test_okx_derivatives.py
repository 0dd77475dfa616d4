"""OKX derivatives channels: funding-rate, open-interest, mark-price, index-tickers, liquidation-orders parsed into
bronze/derivatives and bronze/liquidations rows (values, nulls, raw), refused with a reason, and subscribed right."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline.errors import FrameError
from pipeline.ingest.plan import plan_connections
from pipeline.lake.schemas import DERIVATIVE_FIELDS, LIQUIDATION_FIELDS
from pipeline.venues import _derivatives, okx
from pipeline.venues.base import ParsedBatch, Subscription

RECEIVED_US = 1_786_540_472_000_123

# Today's funding-rate push: every field field-notes lists for 2025-26 (OKX docs' shape, values of a 2026 swap).
FUNDING_2026: dict[str, Any] = {
    "formulaType": "withRate", "fundingRate": "0.0000691200000000", "fundingTime": "1786560000000",
    "impactValue": "20000.0000000000000000", "instId": "BTC-USDT-SWAP", "instType": "SWAP",
    "interestRate": "0.0001000000000000", "maxFundingRate": "0.00375", "method": "current_period",
    "minFundingRate": "-0.00375", "nextFundingRate": "", "nextFundingTime": "1786588800000",
    "premium": "-0.0000813612626409", "settFundingRate": "0.0000531054758640", "settState": "settled",
    "ts": "1786540471710",
}  # fmt: skip
# The keys that become columns (instId -> instrument, ts -> exchange_ts, the rest their own column).
FUNDING_COLUMNS = {"instId", "ts", "fundingRate", "nextFundingRate", "fundingTime", "nextFundingTime"}


def frame(channel: str, items: list[Any], **arg: str) -> str:
    return json.dumps({"arg": {"channel": channel, **arg}, "data": items}, separators=(",", ":"))


def derivative(row: tuple) -> dict:
    assert len(row) == len(DERIVATIVE_FIELDS)
    return dict(zip(DERIVATIVE_FIELDS, row, strict=True))


def liquidation(row: tuple) -> dict:
    assert len(row) == len(LIQUIDATION_FIELDS)
    return dict(zip(LIQUIDATION_FIELDS, row, strict=True))


def parse_one(text: str) -> ParsedBatch:
    out = ParsedBatch()
    assert okx.parse(text, RECEIVED_US, out) is None
    return out


def test_row_builders_follow_the_schema_field_order() -> None:
    # Each keyword set to its own name: a row in the wrong order would pair a field with another's name.
    names = {f: f for f in DERIVATIVE_FIELDS[7:]}
    row = _derivatives.derivative_row(*DERIVATIVE_FIELDS[:7], **names)  # type: ignore[arg-type]
    assert derivative(row) == {f: f for f in DERIVATIVE_FIELDS}
    assert liquidation(_derivatives.liquidation_row(*LIQUIDATION_FIELDS)) == {f: f for f in LIQUIDATION_FIELDS}  # type: ignore[arg-type]


# --- funding-rate ----------------------------------------------------------------------------------
def test_funding_rate_2026_fields_are_columns_or_raw() -> None:
    out = parse_one(frame("funding-rate", [FUNDING_2026], instId="BTC-USDT-SWAP"))
    (row,) = out.derivatives
    d = derivative(row)
    assert d == {
        "venue": "okx", "market": "swap", "instrument": "BTC-USDT-SWAP", "channel": "funding-rate",
        "exchange_ts_ms": 1786540471710, "receive_ts_us": RECEIVED_US, "source": "ws",
        "funding_rate": 0.00006912, "next_funding_rate": None,  # "" is OKX's "no value"
        "funding_time_ms": 1786560000000, "next_funding_time_ms": 1786588800000,
        "open_interest": None, "open_interest_ccy": None, "open_interest_usd": None,
        "mark_price": None, "index_price": None, "raw": d["raw"],
    }  # fmt: skip
    # raw: compact JSON, sorted keys, every field without a column exactly as sent
    expected_raw = {k: v for k, v in FUNDING_2026.items() if k not in FUNDING_COLUMNS}
    assert d["raw"] == json.dumps(dict(sorted(expected_raw.items())), separators=(",", ":"))
    assert set(json.loads(d["raw"])) | FUNDING_COLUMNS == set(FUNDING_2026)
    assert not out.trades and not out.quotes and not out.liquidations


def test_funding_rate_field_nobody_has_seen_is_kept() -> None:
    item = {**FUNDING_2026, "fundingIntervalHours": "4", "newThing": {"a": [1, 2]}}
    (row,) = parse_one(frame("funding-rate", [item], instId="BTC-USDT-SWAP")).derivatives
    raw = json.loads(derivative(row)["raw"])
    assert raw["fundingIntervalHours"] == "4" and raw["newThing"] == {"a": [1, 2]}


def test_funding_rate_with_only_the_columns_has_no_raw_and_signed_rates() -> None:
    item = {"instId": "ETH-USDT-SWAP", "fundingRate": "-0.00012", "nextFundingRate": "0.0003",
            "fundingTime": "", "nextFundingTime": "1786588800000", "ts": "1786540471710"}  # fmt: skip
    d = derivative(parse_one(frame("funding-rate", [item], instId="ETH-USDT-SWAP")).derivatives[0])
    assert (d["funding_rate"], d["next_funding_rate"], d["funding_time_ms"], d["raw"]) == (-0.00012, 0.0003, None, None)


# --- open-interest, mark-price, index-tickers -------------------------------------------------------
def test_open_interest_values() -> None:
    item = {"instId": "BTC-USDT-SWAP", "instType": "SWAP", "oi": "2836217.02", "oiCcy": "28362.1702",
            "oiUsd": "1812770613.17", "ts": "1786540471710"}  # fmt: skip
    d = derivative(parse_one(frame("open-interest", [item], instId="BTC-USDT-SWAP")).derivatives[0])
    assert (d["channel"], d["market"], d["open_interest"], d["open_interest_ccy"], d["open_interest_usd"]) == (
        "open-interest", "swap", 2836217.02, 28362.1702, 1812770613.17,
    )  # fmt: skip
    assert d["raw"] == '{"instType":"SWAP"}' and d["funding_rate"] is None and d["mark_price"] is None


def test_mark_price_of_a_future_and_index_ticker() -> None:
    mark = {"instId": "BTC-USD-261225", "instType": "FUTURES", "markPx": "64100.5", "ts": "1786540471710"}
    d = derivative(parse_one(frame("mark-price", [mark], instId="BTC-USD-261225")).derivatives[0])
    assert (d["market"], d["instrument"], d["mark_price"], d["index_price"]) == (
        "future",
        "BTC-USD-261225",
        64100.5,
        None,
    )
    index = {"instId": "BTC-USDT", "idxPx": "63902.1", "high24h": "64466.2", "low24h": "63162.9",
             "open24h": "64297.5", "sodUtc0": "63566.3", "sodUtc8": "63584.7", "ts": "1786540471710"}  # fmt: skip
    d = derivative(parse_one(frame("index-tickers", [index], instId="BTC-USDT")).derivatives[0])
    assert (d["market"], d["instrument"], d["channel"], d["index_price"], d["mark_price"]) == (
        "index", "BTC-USDT", "index-tickers", 63902.1, None,
    )  # fmt: skip
    assert json.loads(d["raw"]) == {k: index[k] for k in ("high24h", "low24h", "open24h", "sodUtc0", "sodUtc8")}


# --- liquidation-orders ----------------------------------------------------------------------------
LIQUIDATION_ITEM: dict[str, Any] = {
    "details": [
        {"bkLoss": "0", "bkPx": "63012.4", "ccy": "", "posSide": "long", "side": "sell", "sz": "13", "ts": "1786540471000"},
        {"bkLoss": "1.5", "bkPx": "63020", "ccy": "", "posSide": "short", "side": "buy", "sz": "0.5", "ts": "1786540471500"},
    ],
    "instFamily": "BTC-USDT", "instId": "BTC-USDT-SWAP", "instType": "SWAP", "uly": "BTC-USDT",
}  # fmt: skip


def test_liquidation_orders_each_detail_a_row() -> None:
    other = {**LIQUIDATION_ITEM, "instId": "ETH-USDT-SWAP", "details": [LIQUIDATION_ITEM["details"][0]]}
    out = parse_one(frame("liquidation-orders", [LIQUIDATION_ITEM, other], instType="SWAP"))
    rows = [liquidation(r) for r in out.liquidations]
    assert [(r["instrument"], r["side"], r["price"], r["size"], r["exchange_ts_ms"]) for r in rows] == [
        ("BTC-USDT-SWAP", "sell", 63012.4, 13.0, 1786540471000),
        ("BTC-USDT-SWAP", "buy", 63020.0, 0.5, 1786540471500),
        ("ETH-USDT-SWAP", "sell", 63012.4, 13.0, 1786540471000),
    ]
    assert {(r["venue"], r["market"], r["source"], r["receive_ts_us"]) for r in rows} == {
        ("okx", "swap", "ws", RECEIVED_US)
    }
    assert json.loads(rows[1]["raw"]) == {
        "bkLoss": "1.5", "ccy": "", "posSide": "short", "instFamily": "BTC-USDT", "instType": "SWAP", "uly": "BTC-USDT",
    }  # fmt: skip
    assert not out.derivatives


# --- refusals: a reason, nothing partial -------------------------------------------------------------
BAD = [
    ("funding-rate", {**FUNDING_2026, "fundingRate": "abc"}, "okx funding-rate: fundingRate is not a number: 'abc'"),
    ("funding-rate", {**FUNDING_2026, "fundingRate": "nan"}, "fundingRate is not a finite number"),
    ("funding-rate", {**FUNDING_2026, "nextFundingTime": "soon"}, "nextFundingTime is not an integer: 'soon'"),
    ("funding-rate", {k: v for k, v in FUNDING_2026.items() if k != "ts"}, "okx funding-rate: ts is missing"),
    ("funding-rate", {**FUNDING_2026, "ts": "-5"}, "ts is not positive"),
    ("funding-rate", {**FUNDING_2026, "fundingRate": ""}, "fundingRate is missing or empty"),
    ("open-interest", {"instId": "BTC-USDT-SWAP", "oiCcy": "3", "ts": "1786540471710"}, "oi is missing or empty"),
    ("funding-rate", {**FUNDING_2026, "instId": "BTC/USDT"}, "unrecognised instId 'BTC/USDT'"),
    ("funding-rate", {**FUNDING_2026, "instId": 7}, "instId is missing or not a string"),
    ("funding-rate", ["0.0001"], "okx funding-rate: item is a JSON list, not an object"),
    ("open-interest", {"instId": "BTC-USDT-SWAP", "oi": "-3", "ts": "1786540471710"}, "oi is negative: '-3'"),
    ("open-interest", {"instId": "BTC-USDT-SWAP", "oi": True, "ts": "1786540471710"}, "oi is not a number: True"),
    ("mark-price", {"instId": "BTC-USDT-SWAP", "markPx": "0", "ts": "1786540471710"}, "markPx is not a positive price"),
    ("mark-price", {"instId": "BTC-USDT-SWAP", "markPx": "", "ts": "1786540471710"}, "markPx is missing or empty"),
    ("index-tickers", {"instId": "BTC-USDT", "idxPx": "inf", "ts": "1786540471710"}, "idxPx is not a finite number"),
    ("liquidation-orders", {**LIQUIDATION_ITEM, "details": "none"}, "details is not a list"),
    ("liquidation-orders", {**LIQUIDATION_ITEM, "details": [{**LIQUIDATION_ITEM["details"][0], "side": "long"}]},
     "okx liquidation-orders: unknown side 'long'"),
    ("liquidation-orders", {**LIQUIDATION_ITEM, "details": [{**LIQUIDATION_ITEM["details"][0], "bkPx": ""}]},
     "bkPx is missing or empty"),
    ("liquidation-orders", {**LIQUIDATION_ITEM, "details": [{**LIQUIDATION_ITEM["details"][0], "sz": "-1"}]},
     "sz is not positive: '-1'"),
]  # fmt: skip


@pytest.mark.parametrize(("channel", "bad", "why"), BAD, ids=[f"{c}:{w[:30]}" for c, _, w in BAD])
def test_a_bad_item_refuses_the_whole_frame_with_the_reason(channel: str, bad: Any, why: str) -> None:
    good = {
        "funding-rate": FUNDING_2026,
        "open-interest": {"instId": "BTC-USDT-SWAP", "oi": "1", "ts": "1786540471710"},
        "mark-price": {"instId": "BTC-USDT-SWAP", "markPx": "1", "ts": "1786540471710"},
        "index-tickers": {"instId": "BTC-USDT", "idxPx": "1", "ts": "1786540471710"},
        "liquidation-orders": LIQUIDATION_ITEM,
    }[channel]
    out = ParsedBatch()
    with pytest.raises(FrameError) as refused:
        okx.parse(frame(channel, [good, bad], instId="X"), RECEIVED_US, out)  # the good item comes first
    assert why in refused.value.reason and refused.value.reason.startswith(f"okx {channel}: ")
    assert out.row_count() == 0  # all or nothing


# --- subscribing -----------------------------------------------------------------------------------
def test_channels_apply_per_market() -> None:
    derivatives = {"funding", "open_interest", "mark_price", "index", "liquidations"}
    assert not derivatives & set(okx.channels_for("spot"))
    assert derivatives <= set(okx.channels_for("swap"))
    assert set(okx.channels_for("future")) & derivatives == derivatives - {"funding"}
    assert set(okx.channels_for("option")) & derivatives == {"open_interest", "mark_price"}
    assert {"trades", "quotes", "ticker", "candles"} <= set(okx.channels_for("spot"))


def test_subscribe_args_index_by_name_liquidations_by_inst_type_once() -> None:
    swaps = ["BTC-USDT-SWAP", "ETH-USDT-SWAP", "BTC-USD-261225"]
    subs = [
        Subscription(c, i)
        for i in swaps
        for c in ("funding", "index", "liquidations")
        if c in okx.channels_for(okx.market_of(i))
    ]
    assert {okx.ws_path_for(s) for s in subs} == {"/ws/v5/public"}
    (sent,) = okx.subscribe_frames(subs, 1)
    assert json.loads(sent) == {"op": "subscribe", "args": [
        {"channel": "funding-rate", "instId": "BTC-USDT-SWAP"},
        {"channel": "index-tickers", "instId": "BTC-USDT"},
        {"channel": "liquidation-orders", "instType": "SWAP"},
        {"channel": "funding-rate", "instId": "ETH-USDT-SWAP"},
        {"channel": "index-tickers", "instId": "ETH-USDT"},
        {"channel": "index-tickers", "instId": "BTC-USD"},
        {"channel": "liquidation-orders", "instType": "FUTURES"},
    ]}  # fmt: skip
    # One instrument leaving keeps the streams it shares with the others.
    (gone,) = okx.unsubscribe_frames([s for s in subs if s.instrument == "ETH-USDT-SWAP"], 2)
    assert json.loads(gone)["args"] == [{"channel": "funding-rate", "instId": "ETH-USDT-SWAP"}]


def test_plan_skips_channels_that_do_not_apply_to_the_market() -> None:
    plans = plan_connections(
        okx, "ws://127.0.0.1:1", ["BTC-USDT", "BTC-USDT-SWAP"], ["trades", "funding", "index"], 200
    )
    subs = {(s.channel, s.instrument) for p in plans for s in p.subs}
    assert subs == {
        ("trades", "BTC-USDT"),
        ("trades", "BTC-USDT-SWAP"),
        ("funding", "BTC-USDT-SWAP"),
        ("index", "BTC-USDT-SWAP"),
    }


def test_an_option_may_be_marked_at_zero_a_swap_not() -> None:
    item = {"instId": "BTC-USD-261225-200000-C", "instType": "OPTION", "markPx": "0", "ts": "1786540471710"}
    d = derivative(parse_one(frame("mark-price", [item], instId=item["instId"])).derivatives[0])
    assert (d["market"], d["mark_price"]) == ("option", 0.0)
    with pytest.raises(FrameError, match="markPx is not a positive price"):
        okx.parse(frame("mark-price", [{**item, "instId": "BTC-USD-SWAP"}]), RECEIVED_US, ParsedBatch())
