"""OKX parser on the real recordings (values, not counts alone) and on broken frames."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.errors import ConfigError, FrameError
from pipeline.ingest.replay import replay_capture
from pipeline.lake.schemas import BOOK_FIELDS, QUOTE_FIELDS, TRADE_FIELDS
from pipeline.realdata import realdata_dir
from pipeline.venues import VENUES, get_venue, okx
from pipeline.venues.base import CANDLE_FIELDS, ParsedBatch, Subscription

REALDATA = realdata_dir()
needs_realdata = pytest.mark.skipif(
    not (REALDATA / "okx").is_dir(), reason=f"real recordings not found at {REALDATA} (set CRYPTOLAKE_REALDATA)"
)
CCXT_2026 = REALDATA / "okx" / "ccxt-2026-08.jsonl"
CF_2022 = REALDATA / "okx" / "cryptofeed-2022-05-public.ws.log"
OKCOIN_2023 = REALDATA / "okx" / "okcoin-v5-2023-05-candles.ws.log"


def trade(row: tuple) -> dict:
    assert len(row) == len(TRADE_FIELDS)
    return dict(zip(TRADE_FIELDS, row, strict=True))


def quote(row: tuple) -> dict:
    assert len(row) == len(QUOTE_FIELDS)
    return dict(zip(QUOTE_FIELDS, row, strict=True))


def ccxt_recv(case_prefix: str) -> list[str]:
    """Received frames of one ccxt case, as JSON text (read with plain json, not our reader)."""
    out = []
    for line in CCXT_2026.read_text().splitlines():
        obj = json.loads(line)
        if obj["dir"] == "recv" and obj["case"].startswith(case_prefix):
            out.append(json.dumps(obj["msg"], separators=(",", ":")))
    return out


def parse_all(frames: list[str], ts_us: int = 1_000) -> tuple[ParsedBatch, list]:
    out = ParsedBatch()
    controls = [okx.parse(f, ts_us, out) for f in frames]
    return out, controls


# --- real frames, values -------------------------------------------------------------------------
@needs_realdata
def test_2026_swap_trades_values() -> None:
    out, controls = parse_all(ccxt_recv("watchTrades/linear swap"), ts_us=1786540436000123)
    assert controls[0].kind == "ack" and controls[0].channel == "trades" and controls[0].instrument == "BTC-USDT-SWAP"
    first, second = (trade(r) for r in out.trades)
    assert first == {
        "venue": "okx", "market": "swap", "instrument": "BTC-USDT-SWAP", "trade_id": "2832749635",
        "price": 63913.5, "size": 1.0, "side": "buy", "exchange_ts_ms": 1786540435948,
        "receive_ts_us": 1786540436000123, "source": "ws", "seq": 333793117432, "trade_count": 1,
        "index_price": None, "mark_price": None, "iv": None, "liquidation": None,
    }  # fmt: skip
    assert (second["trade_id"], second["price"], second["size"], second["side"]) == (
        "2832749645",
        63913.4,
        34.95,
        "sell",
    )
    assert (second["trade_count"], second["seq"], second["exchange_ts_ms"]) == (10, 333793118093, 1786540436090)
    assert isinstance(first["seq"], int) and isinstance(first["exchange_ts_ms"], int)


@needs_realdata
def test_2026_spot_trade_values() -> None:
    out, _ = parse_all(ccxt_recv("watchTrades/spot"))
    t = trade(out.trades[0])
    assert (t["market"], t["instrument"], t["trade_id"], t["price"], t["size"]) == (
        "spot", "BTC-USDT", "1040968613", 64040.2, 0.00240857,
    )  # fmt: skip
    assert (t["trade_count"], t["seq"]) == (2, 79706765242)


@needs_realdata
def test_2022_trades_without_count_and_seq_parse_with_none() -> None:
    """Format drift: 2022 trades have no count/source/seqId."""
    lines = [
        ln.split(": ", 1)[1] for ln in CF_2022.read_text().splitlines() if '"channel":"trades"' in ln and '"data"' in ln
    ]
    out, _ = parse_all(lines[:3], ts_us=5)
    fut, swap, spot = (trade(r) for r in out.trades)
    assert fut == {
        "venue": "okx", "market": "future", "instrument": "BTC-USD-220527", "trade_id": "7849", "price": 30218.8,
        "size": 1.0, "side": "buy", "exchange_ts_ms": 1652459199958, "receive_ts_us": 5, "source": "ws",
        "seq": None, "trade_count": None, "index_price": None, "mark_price": None, "iv": None, "liquidation": None,
    }  # fmt: skip
    assert (swap["market"], swap["instrument"], swap["price"], swap["size"], swap["side"]) == (
        "swap", "UNI-USD-SWAP", 5.123, 100.0, "sell",
    )  # fmt: skip
    assert (spot["market"], spot["trade_id"], spot["size"]) == ("spot", "338476307", 0.0002)


@needs_realdata
def test_books5_snapshot_values() -> None:
    out, _ = parse_all(ccxt_recv("watchOrderBook/linear swap"))
    q = quote(out.quotes[0])
    assert (q["channel"], q["instrument"], q["market"], q["exchange_ts_ms"], q["seq"]) == (
        "books5", "BTC-USDT-SWAP", "swap", 1786541241006, 333794734980,
    )  # fmt: skip
    assert (q["bid_px"], q["bid_sz"], q["ask_px"], q["ask_sz"]) == (63921.4, 421.93, 63921.5, 790.41)
    assert q["bids"] == ((63921.3, 0.25), (63920.7, 0.34), (63920.4, 0.32), (63920.1, 0.08))
    assert q["asks"] == ((63921.8, 0.32), (63922.2, 0.03), (63922.3, 90.81), (63922.4, 0.32))
    assert q["last_px"] is None and q["delta"] is None


@needs_realdata
def test_books_messages_are_book_rows_and_snapshots_also_quotes() -> None:
    frames = [
        ln.split(": ", 1)[1] for ln in CF_2022.read_text().splitlines() if '"channel":"books"' in ln and '"data"' in ln
    ]
    out, controls = parse_all(frames)
    snapshots = [f for f in frames if '"action":"snapshot"' in f]
    assert len(out.quotes) == len(snapshots) == 3
    assert controls == [None] * len(frames) and len(out.books) == len(frames) == 290
    for row, frame in zip(out.books, frames, strict=True):
        msg = json.loads(frame)
        item = msg["data"][0]
        book = dict(zip(BOOK_FIELDS, row, strict=True))
        assert (book["instrument"], book["channel"], book["is_snapshot"]) == (
            msg["arg"]["instId"], "books", msg["action"] == "snapshot",
        )  # fmt: skip
        # levels exactly as sent (the checksum is computed on these strings); 2022 had no seqId
        assert (book["bids"], book["asks"], book["checksum"]) == (item["bids"], item["asks"], item["checksum"])
        assert (book["seq"], book["prev_seq"], book["session"]) == (None, None, None)
    fut = quote(next(r for r in out.quotes if r[2] == "BTC-USD-220527"))
    first = json.loads(snapshots[0])["data"][0]
    assert (fut["ask_px"], fut["ask_sz"]) == (30238.8, 2.0)
    assert (fut["bid_px"], fut["bid_sz"]) == tuple(float(x) for x in first["bids"][0][:2])
    assert fut["asks"] == tuple((float(px), float(sz)) for px, sz, *_ in first["asks"][1:5])
    assert fut["seq"] is None and fut["exchange_ts_ms"] == int(first["ts"])


@needs_realdata
def test_tickers_values() -> None:
    out, _ = parse_all(ccxt_recv("watchTicker/linear swap"))
    q = quote(out.quotes[0])
    assert (q["channel"], q["instrument"], q["exchange_ts_ms"], q["seq"]) == (
        "tickers",
        "BTC-USDT-SWAP",
        1786540471710,
        None,
    )
    assert (q["last_px"], q["bid_px"], q["bid_sz"], q["ask_px"], q["ask_sz"]) == (
        63921.0,
        63921.0,
        779.3,
        63921.1,
        1871.75,
    )
    assert q["bids"] is None and q["mark_price"] is None


@needs_realdata
def test_candles_go_to_their_own_list() -> None:
    out, controls = parse_all(ccxt_recv("watchOHLCV/linear swap"))
    assert controls == [None, controls[1], None] and controls[1].kind == "ack"
    c = dict(zip(CANDLE_FIELDS, out.candles[0], strict=True))
    assert c == {
        "venue": "okx", "market": "swap", "instrument": "BTC-USDT-SWAP", "timeframe": "1m",
        "open_ts_ms": 1786540440000, "open": 63913.0, "high": 63951.8, "low": 63913.0, "close": 63951.8,
        "vol": 1803.61, "vol_ccy": 18.0361, "vol_ccy_quote": 1153203.99426, "confirm": False,
        "receive_ts_us": 1_000, "source": "ws",
    }  # fmt: skip
    assert not out.trades and not out.quotes


@needs_realdata
@pytest.mark.parametrize("path", [CF_2022, OKCOIN_2023, CCXT_2026], ids=lambda p: p.name)
def test_every_trade_and_quote_of_a_recording_lands(path: Path) -> None:
    """Counted independently (plain json, line splitting) and compared with replay_capture."""
    expected_trades, expected_quotes, expected_candles = set(), 0, 0
    for line in path.read_text().splitlines():
        if path.suffix == ".jsonl":
            obj = json.loads(line)
            if obj["dir"] != "recv":
                continue
            msg = obj["msg"]
        else:
            head, sep, body = line.partition(": ")
            if not sep or not head.replace(".", "").isdigit():
                continue  # connection, sent, REST, configuration lines
            msg = json.loads(body)
        channel = msg.get("arg", {}).get("channel")
        if "data" not in msg:
            continue
        if channel == "trades":
            expected_trades |= {(d["instId"], d["tradeId"], d["px"], d["sz"]) for d in msg["data"]}
        elif channel in ("tickers", "books5") or (channel == "books" and msg["action"] == "snapshot"):
            expected_quotes += len(msg["data"])
        elif channel.startswith("candle"):
            expected_candles += len(msg["data"])
    result = replay_capture(path, "okx", receive_clock=lambda: 42)
    assert result.rejects == []
    got = {(r[2], r[3], r[4], r[5]) for r in result.batch.trades}
    assert len(result.batch.trades) == len(expected_trades) > 0
    assert got == {(i, t, float(p), float(s)) for i, t, p, s in expected_trades}
    assert len(result.batch.quotes) == expected_quotes > 0
    assert len(result.batch.candles) == expected_candles
    assert all(r[9] == "capture" for r in result.batch.trades)


# --- controls ------------------------------------------------------------------------------------
def test_event_frames() -> None:
    out = ParsedBatch()
    ack = okx.parse(
        '{"event":"subscribe","arg":{"channel":"trades","instId":"BTC-USDT-SWAP"},"connId":"ef9127a9"}', 1, out
    )
    assert (ack.kind, ack.channel, ack.instrument) == ("ack", "trades", "BTC-USDT-SWAP")
    unsub = okx.parse('{"event":"unsubscribe","arg":{"channel":"books5","instId":"BTC-USDT"},"connId":"a"}', 1, out)
    assert unsub.kind == "unsubscribed"
    err = okx.parse(
        '{"event":"error","code":"60012","msg":"Invalid request: {\\"op\\": \\"subscribe\\"}","connId":"a"}', 1, out
    )
    assert (err.kind, err.code) == ("error", "60012") and err.message.startswith("Invalid request")
    err = okx.parse(
        '{"event":"error","code":"64001","msg":"This channel has been migrated to the business URL"}', 1, out
    )
    assert err.code == "64001"
    assert okx.parse("pong", 1, out).kind == "pong"
    notice = okx.parse(
        '{"event":"notice","code":"64008","msg":"The connection will soon be closed","connId":"a"}', 1, out
    )
    assert (notice.kind, notice.code) == ("notice", "64008")
    assert (
        okx.parse('{"event":"channel-conn-count","channel":"trades","connCount":"2","connId":"a"}', 1, out).kind
        == "response"
    )
    assert out.row_count() == 0


# --- broken frames -------------------------------------------------------------------------------
GOOD_TRADE = {
    "instId": "BTC-USDT-SWAP",
    "tradeId": "1",
    "px": "63913.5",
    "sz": "1",
    "side": "buy",
    "ts": "1786540435948",
}


def trades_frame(*items: dict) -> str:
    return json.dumps({"arg": {"channel": "trades", "instId": "BTC-USDT-SWAP"}, "data": list(items)})


@pytest.mark.parametrize(
    "frame, reason_has",
    [
        ('{"arg":{"channel":"trades","instId":"BTC-USDT-SWAP"},"data":[{"instId":"BTC-US', "invalid JSON"),
        (trades_frame({**GOOD_TRADE, "px": {"v": 1}}), "px is not a number"),
        (trades_frame({**GOOD_TRADE, "px": "NaN"}), "px is not a positive finite number"),
        (trades_frame({**GOOD_TRADE, "px": "inf"}), "px is not a positive finite number"),
        (trades_frame({**GOOD_TRADE, "px": "-1"}), "px is not a positive finite number"),
        (trades_frame({**GOOD_TRADE, "sz": "0"}), "sz is not a positive finite number"),
        (trades_frame({**GOOD_TRADE, "side": "short"}), "unknown side 'short'"),
        (trades_frame({k: v for k, v in GOOD_TRADE.items() if k != "instId"}), "missing field 'instId'"),
        (trades_frame({**GOOD_TRADE, "instId": "../etc/passwd"}), "unrecognised instId"),
        (trades_frame({**GOOD_TRADE, "tradeId": 7}), "tradeId is not a string"),
        (trades_frame({**GOOD_TRADE, "ts": "soon"}), "ts is not an integer"),
        (trades_frame({**GOOD_TRADE, "seqId": "x"}), "seqId is not an integer"),
        (trades_frame(GOOD_TRADE, {**GOOD_TRADE, "px": "NaN"}), "px is not a positive finite number"),
        ('{"arg":{"channel":"trades-v9","instId":"BTC-USDT"},"data":[]}', "unknown channel 'trades-v9'"),
        ('{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":{"px":"1"}}', "data is dict"),
        (
            '{"arg":{"channel":"books5","instId":"BTC-USDT"},"data":[{"asks":[["NaN","1","0","1"]],"bids":[],"ts":"1"}]}',
            "book level",
        ),
        (
            '{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","bidPx":"1","askPx":"2","ts":"1"'
            ',"last":"-3"}]}',
            "last is not a positive finite price",
        ),
        ('{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"resend","data":[]}', "unknown action"),
        ('{"arg":{"channel":"candle1m","instId":"BTC-USDT"},"data":[["1","2"]]}', "candle has 2 fields"),
        ("[1,2,3]", "not an object"),
        ('{"hello":"world"}', "neither data nor event"),
    ],
)
def test_broken_frames_raise_and_add_nothing(frame: str, reason_has: str) -> None:
    out = ParsedBatch()
    okx.parse(trades_frame(GOOD_TRADE), 1, out)  # rows from earlier frames must survive a reject
    before = (list(out.trades), list(out.quotes), list(out.candles))
    with pytest.raises(FrameError) as err:
        okx.parse(frame, 2, out)
    assert reason_has in err.value.reason, err.value.reason
    assert err.value.reason.startswith("okx")
    assert (out.trades, out.quotes, out.candles) == before


def test_extra_fields_are_tolerated() -> None:
    out = ParsedBatch()
    frame = json.dumps(
        {
            "arg": {"channel": "trades", "instId": "BTC-USDT", "x": 1},
            "data": [{**GOOD_TRADE, "instId": "BTC-USDT", "newField": [1]}],
            "extra": True,
        }
    )
    assert okx.parse(frame, 1, out) is None and trade(out.trades[0])["price"] == 63913.5


def test_empty_ticker_side_is_none() -> None:
    out = ParsedBatch()
    frame = '{"arg":{"channel":"tickers","instId":"BTC-USD-220527"},"data":[{"instId":"BTC-USD-220527","last":"","bidPx":"","bidSz":"","askPx":"30220.1","askSz":"3","ts":"1652459223003"}]}'
    okx.parse(frame, 1, out)
    q = quote(out.quotes[0])
    assert (q["bid_px"], q["bid_sz"], q["ask_px"], q["last_px"]) == (None, None, 30220.1, None)


# --- declarations, symbols, requests -------------------------------------------------------------
def test_registry() -> None:
    assert VENUES == ("okx", "deribit")
    assert get_venue("okx") is okx
    with pytest.raises(ConfigError, match="okx, deribit"):
        get_venue("binance")


@pytest.mark.parametrize(
    "inst, market",
    [("BTC-USDT", "spot"), ("BTC-USDT-SWAP", "swap"), ("BTC-USD-220527", "future"), ("ETH-USD-220514-1300-C", "option"),
     ("UNI-USD-SWAP", "swap"), ("1INCH-USDT", "spot")],
)  # fmt: skip
def test_market_of(inst: str, market: str) -> None:
    assert okx.market_of(inst) == market


@pytest.mark.parametrize("inst", ["BTC", "btc-usdt", "BTC-USDT-PERP", "BTC/USDT", "../x", "BTC-USD-22052"])
def test_market_of_rejects(inst: str) -> None:
    with pytest.raises(ValueError):
        okx.market_of(inst)


def test_declarations_and_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    assert okx.WS_URL == "wss://ws.okx.com:8443/ws/v5/public"
    assert okx.WS_URL_BUSINESS == "wss://ws.okx.com:8443/ws/v5/business"
    assert okx.CHANNELS == {
        "trades": "trades", "quotes": "books5", "ticker": "tickers", "candles": "candle1m",
        "funding": "funding-rate", "open_interest": "open-interest", "mark_price": "mark-price",
        "index": "index-tickers", "liquidations": "liquidation-orders",
        "book": "books", "book_tbt": "books-l2-tbt", "book50_tbt": "books50-l2-tbt",
    }  # fmt: skip
    assert okx.venue_channel(Subscription("book", "BTC-USDT")) == "books"
    for name in ("OKX_API_KEY", "OKX_API_SECRET", "OKX_API_PASSPHRASE"):
        monkeypatch.delenv(name, raising=False)
    for login in ("book_tbt", "book50_tbt"):  # need a logged-in connection: refused without credentials
        with pytest.raises(ConfigError) as refused:
            okx.subscribe_frames([Subscription(login, "BTC-USDT-SWAP")], 1)
        assert refused.value.key == "stream.okx.channels" and "logged-in" in str(refused.value)
        assert 'use "book"' in str(refused.value) and "OKX_API_SECRET" in str(refused.value)
    assert okx.ws_path_for(Subscription("candles", "BTC-USDT")) == "/ws/v5/business"
    assert okx.ws_path_for(Subscription("trades", "BTC-USDT")) == "/ws/v5/public"
    assert okx.IDLE_PING_AFTER_SECS < okx.SERVER_IDLE_TIMEOUT_SECS and okx.idle_frame() == "ping"
    subs = [Subscription("trades", f"C{i}-USDT") for i in range(150)]
    frames = [json.loads(f) for f in okx.subscribe_frames(subs, 1)]
    assert [len(f["args"]) for f in frames] == [100, 50] and frames[0]["op"] == "subscribe"
    assert frames[0]["args"][0] == {"channel": "trades", "instId": "C0-USDT"}
    assert json.loads(okx.unsubscribe_frames(subs[:1], 2)[0]) == {
        "op": "unsubscribe",
        "args": [{"channel": "trades", "instId": "C0-USDT"}],
    }
    with pytest.raises(ConfigError):
        okx.subscribe_frames([Subscription("trades", "BTC-USDT"), Subscription("candles", "BTC-USDT")], 1)
    with pytest.raises(ConfigError):
        okx.subscribe_frames([Subscription("orders", "BTC-USDT")], 1)
