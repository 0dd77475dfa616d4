"""Deribit parser on the real recordings (values, not counts alone) and on broken frames."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.errors import ConfigError, FrameError
from pipeline.ingest.replay import replay_capture
from pipeline.lake.schemas import BOOK_FIELDS, QUOTE_FIELDS, TRADE_FIELDS
from pipeline.realdata import realdata_dir
from pipeline.venues import deribit, get_venue
from pipeline.venues.base import CANDLE_FIELDS, Control, ParsedBatch, Subscription

REALDATA = realdata_dir()
needs_realdata = pytest.mark.skipif(
    not (REALDATA / "deribit").is_dir(), reason=f"real recordings not found at {REALDATA} (set CRYPTOLAKE_REALDATA)"
)
CCXT_2026 = REALDATA / "deribit" / "ccxt-2026-08.jsonl"
CF_2021 = REALDATA / "deribit" / "cryptofeed-2021-07-options.ws.log"


def trade(row: tuple) -> dict:
    assert len(row) == len(TRADE_FIELDS)
    return dict(zip(TRADE_FIELDS, row, strict=True))


def quote(row: tuple) -> dict:
    assert len(row) == len(QUOTE_FIELDS)
    return dict(zip(QUOTE_FIELDS, row, strict=True))


def ccxt_recv(case_prefix: str) -> list[str]:
    out = []
    for line in CCXT_2026.read_text().splitlines():
        obj = json.loads(line)
        if obj["dir"] == "recv" and obj["case"].startswith(case_prefix):
            out.append(json.dumps(obj["msg"]))
    return out


def cf_frames(channel_prefix: str) -> list[str]:
    return [
        ln.split(": ", 1)[1]
        for ln in CF_2021.read_text().splitlines()
        if f'"channel":"{channel_prefix}' in ln and not ln.startswith("wss://")
    ]


def parse_all(frames: list[str], ts_us: int = 1_000) -> tuple[ParsedBatch, list]:
    out = ParsedBatch()
    return out, [deribit.parse(f, ts_us, out) for f in frames]


# --- real frames, values -------------------------------------------------------------------------
@needs_realdata
def test_trades_values() -> None:
    out, controls = parse_all(ccxt_recv("watchTrades"), ts_us=1786563104600000)
    assert controls[0] == Control("ack", request_id=1, payload=["trades.BTC-PERPETUAL.100ms"])
    first, second = (trade(r) for r in out.trades)
    assert first == {
        "venue": "deribit", "market": "swap", "instrument": "BTC-PERPETUAL", "trade_id": "440192723",
        "price": 63344.5, "size": 20.0, "side": "buy", "exchange_ts_ms": 1786563104514,
        "receive_ts_us": 1786563104600000, "source": "ws", "seq": 296152987, "trade_count": None,
        "index_price": 63325.19, "mark_price": 63341.87, "iv": None, "liquidation": None,
    }  # fmt: skip
    assert (second["trade_id"], second["side"], second["size"], second["seq"]) == ("440192724", "sell", 40.0, 296152988)


def test_option_trade_with_iv_and_liquidation() -> None:
    frame = json.dumps({"jsonrpc": "2.0", "method": "subscription", "params": {"channel": "trades.ETH-27DEC26-3000-C.100ms", "data": [
        {"trade_seq": 77, "trade_id": "ETH-1", "timestamp": 1786563104514, "tick_direction": 0, "price": 0.0515,
         "mark_price": 0.05, "iv": 61.3, "index_price": 3012.5, "instrument_name": "ETH-27DEC26-3000-C",
         "direction": "sell", "amount": 12.0, "liquidation": "T"}]}})  # fmt: skip
    out, _ = parse_all([frame])
    t = trade(out.trades[0])
    assert (t["market"], t["price"], t["iv"], t["liquidation"], t["side"], t["seq"]) == (
        "option",
        0.0515,
        61.3,
        "T",
        "sell",
        77,
    )


@needs_realdata
def test_option_ticker_values_with_greeks() -> None:
    out, _ = parse_all(cf_frames("ticker.ETH-30JUL21-2800-C")[:1], ts_us=7)
    q = quote(out.quotes[0])
    assert q == {
        "venue": "deribit", "market": "option", "instrument": "ETH-30JUL21-2800-C", "channel": "ticker",
        "exchange_ts_ms": 1626993723632, "receive_ts_us": 7, "source": "ws", "seq": None,
        "bid_px": 0.0015, "bid_sz": 4714.0, "ask_px": 0.0025, "ask_sz": 873.0, "bids": None, "asks": None,
        "last_px": 0.002, "mark_price": 0.001972, "index_price": 2006.72, "underlying_price": 2003.61,
        "open_interest": 12685.0, "mark_iv": 120.74, "bid_iv": 115.62, "ask_iv": 125.63,
        "delta": 0.03127, "gamma": 0.0002, "vega": 0.20072, "theta": -1.64029, "rho": 0.01188,
    }  # fmt: skip


@needs_realdata
def test_ticker_empty_side_is_none() -> None:
    """Deribit reports "no bid" as best_bid_price 0.0 / amount 0.0: no quote, not an error."""
    out, _ = parse_all(cf_frames("ticker.ETH-27AUG21-4000-P")[:1])
    q = quote(out.quotes[0])
    assert (q["bid_px"], q["bid_sz"], q["ask_px"], q["ask_sz"], q["bid_iv"]) == (None, None, None, None, 0.0)
    assert (q["delta"], q["mark_price"], q["last_px"]) == (-0.95701, 1.005718, 1.0165)


@needs_realdata
def test_perpetual_ticker_values() -> None:
    out, _ = parse_all(ccxt_recv("watchTicker"))
    q = quote(out.quotes[0])
    assert (q["market"], q["bid_px"], q["bid_sz"], q["ask_px"], q["ask_sz"]) == (
        "swap",
        63344.0,
        58060.0,
        63344.5,
        9980.0,
    )
    assert (q["last_px"], q["mark_price"], q["index_price"], q["open_interest"]) == (
        63344.0,
        63346.33,
        63329.18,
        716004750.0,
    )
    assert q["delta"] is None and q["underlying_price"] is None


@needs_realdata
def test_book_snapshot_and_change_rows() -> None:
    out, controls = parse_all(ccxt_recv("watchOrderBook"))
    assert [c.kind if c else None for c in controls] == ["ack", None, None]
    snapshot, change = (dict(zip(BOOK_FIELDS, row, strict=True)) for row in out.books)
    assert (snapshot["channel"], snapshot["seq"], snapshot["prev_seq"], snapshot["is_snapshot"]) == (
        "book.BTC-PERPETUAL.100ms", 169600103289, None, True,
    )  # fmt: skip
    assert snapshot["bids"][0] == (63324.5, 372280, None, None, "new") and len(snapshot["asks"]) == 5
    assert (change["seq"], change["prev_seq"], change["is_snapshot"], change["checksum"], change["session"]) == (
        169600103676, 169600103289, False, None, None,
    )  # fmt: skip
    assert change["bids"] == [(62533, 0, None, None, "delete")]
    assert [level[4] for level in change["asks"]] == ["change", "change", "delete", "change"]
    q = quote(out.quotes[0])
    assert (q["channel"], q["seq"], q["exchange_ts_ms"]) == ("book", 169600103289, 1786563084954)
    assert (q["bid_px"], q["bid_sz"], q["ask_px"], q["ask_sz"]) == (63324.5, 372280.0, 63325.0, 7730.0)
    assert q["bids"] == ((63324.0, 1360.0), (63323.5, 17750.0), (63323.0, 60380.0), (63322.5, 13000.0))
    assert q["asks"] == ((63330.0, 220.0), (63331.0, 7240.0), (63332.0, 10000.0), (63333.0, 1340.0))


@needs_realdata
def test_empty_book_snapshot_gives_row_without_prices() -> None:
    out, _ = parse_all(cf_frames("book.ETH-27AUG21-4000-P")[:1])
    q = quote(out.quotes[0])
    assert (q["bid_px"], q["ask_px"], q["bids"], q["asks"], q["seq"]) == (None, None, None, None, 13167318455)


def test_quote_channel() -> None:
    frame = ('{"jsonrpc":"2.0","method":"subscription","params":{"channel":"quote.BTC-PERPETUAL","data":{'
             '"timestamp":1550658624149,"instrument_name":"BTC-PERPETUAL","best_bid_price":3914.97,'
             '"best_bid_amount":40,"best_ask_price":3996.61,"best_ask_amount":50}}}')  # fmt: skip
    out, _ = parse_all([frame])
    q = quote(out.quotes[0])
    assert (q["channel"], q["bid_px"], q["bid_sz"], q["ask_px"], q["ask_sz"], q["exchange_ts_ms"]) == (
        "quote", 3914.97, 40.0, 3996.61, 50.0, 1550658624149,
    )  # fmt: skip


def test_chart_candles() -> None:
    frame = ('{"jsonrpc":"2.0","method":"subscription","params":{"channel":"chart.trades.BTC-PERPETUAL.1","data":{'
             '"volume":0.05219351,"tick":1573645080000,"open":8869.79,"low":8788.25,"high":8870.31,"cost":460,"close":8791.25}}}')  # fmt: skip
    out, _ = parse_all([frame])
    c = dict(zip(CANDLE_FIELDS, out.candles[0], strict=True))
    # volume is the base coin, cost the USD (quote) volume: the columns REST backfill fills from the same bar
    assert (c["instrument"], c["timeframe"], c["open_ts_ms"], c["open"], c["close"], c["vol"], c["vol_ccy"], c["vol_ccy_quote"], c["confirm"]) == (
        "BTC-PERPETUAL", "1", 1573645080000, 8869.79, 8791.25, 0.05219351, None, 460.0, None,
    )  # fmt: skip


@needs_realdata
@pytest.mark.parametrize("path", [CF_2021, CCXT_2026], ids=lambda p: p.name)
def test_every_trade_and_quote_of_a_recording_lands(path: Path) -> None:
    """Counted independently (plain json, line splitting) and compared with replay_capture."""
    expected_trades, expected_quotes, book_messages = [], 0, 0
    for line in path.read_text().splitlines():
        if path.suffix == ".jsonl":
            obj = json.loads(line)
            if obj["dir"] != "recv":
                continue
            msg = obj["msg"]
        else:
            head, sep, body = line.partition(": ")
            if not sep or not head.replace(".", "").isdigit():
                continue
            msg = json.loads(body)
        if msg.get("method") != "subscription":
            continue
        kind = msg["params"]["channel"].split(".")[0]
        data = msg["params"]["data"]
        if kind == "trades":
            expected_trades += [(d["instrument_name"], str(d["trade_id"]), float(d["price"])) for d in data]
        if kind in ("ticker", "quote") or (kind == "book" and data["type"] == "snapshot"):
            expected_quotes += 1
        if kind == "book":
            book_messages += 1
    result = replay_capture(path, "deribit", receive_clock=lambda: 42)
    assert result.rejects == []
    assert sorted((r[2], r[3], r[4]) for r in result.batch.trades) == sorted(expected_trades)
    assert len(result.batch.quotes) == expected_quotes > 0
    assert len(result.batch.books) == book_messages > 0  # every snapshot and change, none "ignored"
    assert "ignored" not in result.controls


# --- controls ------------------------------------------------------------------------------------
def test_rpc_controls() -> None:
    out = ParsedBatch()
    err = deribit.parse(
        '{"jsonrpc":"2.0","id":7,"error":{"message":"not_allowed_for_public_access","code":13778},"testnet":false}',
        1,
        out,
    )
    assert (err.kind, err.code, err.message, err.request_id) == ("error", "13778", "not_allowed_for_public_access", 7)
    hb = deribit.parse('{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}', 1, out)
    assert (hb.kind, hb.message) == ("heartbeat", "test_request")
    reply = json.loads(deribit.reply_to(hb, 9))
    assert (reply["method"], reply["id"]) == ("public/test", 9)
    assert deribit.reply_to(Control("heartbeat", message="heartbeat"), 9) is None
    assert deribit.parse('{"jsonrpc":"2.0","id":3,"result":"ok"}', 1, out).kind == "response"
    assert deribit.parse('{"jsonrpc":"2.0","id":4,"result":{"version":"1.2.26"}}', 1, out).kind == "response"
    assert out.row_count() == 0


# --- broken frames -------------------------------------------------------------------------------
GOOD = {"trade_seq": 1, "trade_id": "9", "timestamp": 1786563104514, "price": 63344.5, "instrument_name": "BTC-PERPETUAL",
        "direction": "buy", "amount": 20, "index_price": 1.0, "mark_price": 1.0}  # fmt: skip


def trades_frame(*items: dict) -> str:
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "method": "subscription",
            "params": {"channel": "trades.BTC-PERPETUAL.100ms", "data": list(items)},
        }
    )


@pytest.mark.parametrize(
    "frame, reason_has",
    [
        (
            '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.BTC-PERPETUAL.100ms","data":[{"trade_seq":1',
            "invalid JSON",
        ),
        (trades_frame({**GOOD, "price": {"v": 1}}), "price is not a number"),
        (
            trades_frame({**GOOD, "price": float("nan")}).replace("NaN", '"NaN"'),
            "price is not a positive finite number",
        ),
        (trades_frame({**GOOD, "price": -5}), "price is not a positive finite number"),
        (trades_frame({**GOOD, "amount": 0}), "amount is not a positive finite number"),
        (trades_frame({**GOOD, "direction": "long"}), "unknown direction 'long'"),
        (trades_frame({k: v for k, v in GOOD.items() if k != "trade_seq"}), "missing field 'trade_seq'"),
        (trades_frame({**GOOD, "instrument_name": "BTC/../x"}), "unrecognised instrument_name"),
        (trades_frame({**GOOD, "trade_id": {"a": 1}}), "trade_id is not a string"),
        (trades_frame(GOOD, {**GOOD, "price": "NaN"}), "price is not a positive finite number"),
        (trades_frame({**GOOD, "mark_price": "nan"}), "mark_price is not a finite number"),
        (trades_frame({**GOOD, "index_price": "-inf"}), "index_price is not a finite number"),
        (
            '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"perpetual.BTC-PERPETUAL.100ms","data":{}}}',
            "unknown channel",
        ),
        ('{"jsonrpc":"2.0","method":"subscription","params":{"channel":"nodot","data":{}}}', "bad channel"),
        (
            '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.X.100ms","data":{"type":"weird"}}}',
            "unknown book type",
        ),
        (
            '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.BTC-PERPETUAL.100ms","data":{"instrument_name":'
            '"BTC-PERPETUAL","timestamp":1,"best_bid_price":-1,"best_bid_amount":1,"best_ask_price":2}}}',
            "best price",
        ),
        ('{"jsonrpc":"2.0","method":"subscription"}', "without params.channel"),
        ('{"jsonrpc":"2.0"}', "neither a subscription"),
        ('"text"', "not an object"),
    ],
)
def test_broken_frames_raise_and_add_nothing(frame: str, reason_has: str) -> None:
    out = ParsedBatch()
    deribit.parse(trades_frame(GOOD), 1, out)
    before = list(out.trades), list(out.quotes)
    with pytest.raises(FrameError) as err:
        deribit.parse(frame, 2, out)
    assert reason_has in err.value.reason, err.value.reason
    assert err.value.reason.startswith("deribit")
    assert (out.trades, out.quotes) == before


# --- declarations, symbols, requests -------------------------------------------------------------
@pytest.mark.parametrize(
    "inst, market",
    [("ETH-PERPETUAL", "swap"), ("BTC_USDC-PERPETUAL", "swap"), ("ETH-27DEC26-3000-C", "option"), ("BTC-30SEP22", "future"),
     ("BTC-8OCT21-50000-P", "option"), ("XRP_USDC-27DEC24-0d625-C", "option"), ("BTC_USDC", "spot")],
)  # fmt: skip
def test_market_of(inst: str, market: str) -> None:
    assert deribit.market_of(inst) == market


@pytest.mark.parametrize("inst", ["ETH", "eth-perpetual", "BTC-FS-30SEP22_PERP", "BTC/USD", "ETH-27DEC26-3000-X"])
def test_market_of_rejects(inst: str) -> None:
    with pytest.raises(ValueError):
        deribit.market_of(inst)


def test_declarations_and_requests() -> None:
    assert get_venue("deribit") is deribit
    assert deribit.WS_URL == "wss://www.deribit.com/ws/api/v2"
    subs = [
        Subscription("trades", "ETH-PERPETUAL"),
        Subscription("quotes", "ETH-PERPETUAL"),
        Subscription("ticker", "ETH-27DEC26-3000-C"),
    ]
    (frame,) = deribit.subscribe_frames(subs, 5)
    assert json.loads(frame) == {
        "jsonrpc": "2.0", "id": 5, "method": "public/subscribe",
        "params": {"channels": ["trades.ETH-PERPETUAL.100ms", "quote.ETH-PERPETUAL", "ticker.ETH-27DEC26-3000-C.100ms"]},
    }  # fmt: skip
    many = deribit.subscribe_frames([Subscription("trades", f"C{i}-PERPETUAL") for i in range(250)], 10)
    assert [json.loads(f)["id"] for f in many] == [10, 11, 12]
    assert json.loads(deribit.unsubscribe_frames(subs[:1], 3)[0])["method"] == "public/unsubscribe"
    hb = json.loads(deribit.set_heartbeat_frame(30, 2))
    assert (hb["method"], hb["params"], hb["id"]) == ("public/set_heartbeat", {"interval": 30}, 2)
    assert json.loads(deribit.on_open_frames(30, 1)[0])["method"] == "public/set_heartbeat"
    assert json.loads(deribit.test_frame(4)) == {"jsonrpc": "2.0", "id": 4, "method": "public/test", "params": {}}
    assert deribit.ws_path_for(subs[0]) == "/ws/api/v2"
    with pytest.raises(ConfigError):
        deribit.subscribe_frames([Subscription("orders", "ETH-PERPETUAL")], 1)
