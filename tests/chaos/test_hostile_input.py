"""Hostile input: names that try to become paths, absurd numbers, oversized frames, broken capture files and
bad configuration. Each gets a clear error or a reject row; nothing reaches a path unchecked; nothing crashes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from aiohttp import WSMsgType, web

from pipeline.config import parse_config
from pipeline.errors import ConfigError, CryptolakeError, FrameError, UnsafeNameError
from pipeline.gold.names import dataset_name, feature_dir_name
from pipeline.ingest.importer import import_capture
from pipeline.lake import writer
from pipeline.lake.location import resolve_lake
from pipeline.lake.tables import BRONZE_BOOK_DELTAS, BRONZE_REJECTS, BRONZE_TRADES
from pipeline.simulator import SimConfig
from pipeline.stream_settings import StreamSettings
from pipeline.venues import deribit, okx
from pipeline.venues.base import ParsedBatch
from tests.loopback_okx import collect

EVIL_NAMES = ["../../etc/passwd", "BTC/USDT", "..", "a\\b", "BTC-USDT/../x", "\x00", ".hidden", "CON/.."]


def _okx_trade(**fields: object) -> str:
    t = {"instId": "BTC-USDT", "tradeId": "7", "px": "100.5", "sz": "0.1", "side": "buy", "ts": "1786540435948",
         "count": "1", "seqId": 5} | fields  # fmt: skip
    return orjson.dumps({"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": [t]}).decode()


def _deribit_trade(**fields: object) -> str:
    t = {"timestamp": 1786563104514, "price": 63344.5, "direction": "buy", "trade_id": "ETH-1", "trade_seq": 3,
         "instrument_name": "ETH-PERPETUAL", "amount": 20} | fields  # fmt: skip
    return orjson.dumps({"jsonrpc": "2.0", "method": "subscription",
                         "params": {"channel": "trades.ETH-PERPETUAL.100ms", "data": [t]}}).decode()  # fmt: skip


# ---- names that would become paths ------------------------------------------------------------------------
@pytest.mark.parametrize("name", EVIL_NAMES)
def test_path_like_instrument_names_are_rejected_everywhere(name: str, tmp_path: Path) -> None:
    for venue, frame in (("okx", _okx_trade(instId=name)), ("deribit", _deribit_trade(instrument_name=name))):
        batch = ParsedBatch()
        with pytest.raises(FrameError, match="unrecognised"):
            (okx if venue == "okx" else deribit).parse(frame, 1, batch)
        assert batch.row_count() == 0
    with pytest.raises(ValueError):
        okx.market_of(name)
    with pytest.raises(UnsafeNameError):  # gold: a Qlib feature folder
        feature_dir_name(name)
    with pytest.raises(UnsafeNameError):
        dataset_name("okx", name)
    with pytest.raises(UnsafeNameError):  # lake table names
        resolve_lake(str(tmp_path / "lake")).table_uri("bronze", name)


def test_path_like_names_in_the_stream_config_stop_before_connecting(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "pipeline.cli", "--lake", str(tmp_path / "lake"), "stream", "--venue", "okx",
           "--url", "sim", "--instruments", "BTC-USDT,../../../tmp/evil", "--seconds", "1"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "stream.okx.instruments" in proc.stderr and "../../../tmp/evil" in proc.stderr
    assert not (tmp_path / "lake").exists() and not Path("/tmp/evil").exists()


# ---- absurd numbers ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["NaN", "nan", "inf", "-inf", "1e999", "-1", "0", "-0", "", "abc", None, [], {}])
@pytest.mark.parametrize("field", ["px", "sz"])
def test_okx_absurd_prices_and_sizes_are_frame_errors_naming_the_field(field: str, value: object) -> None:
    batch = ParsedBatch()
    with pytest.raises(FrameError) as err:
        okx.parse(_okx_trade(**{field: value}), 1, batch)
    assert batch.row_count() == 0 and ("okx trades" in err.value.reason)


@pytest.mark.parametrize("value", ["NaN", "inf", -1, 0, -1e308, "", None, [1], {"v": 1}])
@pytest.mark.parametrize("field", ["price", "amount"])
def test_deribit_absurd_prices_and_amounts_are_frame_errors(field: str, value: object) -> None:
    batch = ParsedBatch()
    with pytest.raises(FrameError):
        deribit.parse(_deribit_trade(**{field: value}), 1, batch)
    assert batch.row_count() == 0


def test_huge_but_finite_numbers_are_rows_and_out_of_range_times_become_rejects(tmp_path: Path) -> None:
    """1e308 is a valid float64 (silver's contract decides on it); a timestamp beyond int64 (or one that
    overflows when converted to microseconds) cannot be stored: it must land in rejects, not crash the import."""
    frames = [
        _okx_trade(px="1e308", tradeId="1"),
        _okx_trade(ts="99999999999999999999999", tradeId="2"),
        _okx_trade(ts=str(2**62), tradeId="3"),  # fits int64 in ms, overflows as microseconds
        _okx_trade(tradeId="4"),
    ]
    capture = tmp_path / "absurd.jsonl"
    capture.write_text(
        "".join(
            orjson.dumps({"case": "x", "url": "wss://x", "dir": "recv", "msg": orjson.loads(f)}).decode() + "\n"
            for f in frames
        )
    )
    lake = resolve_lake(str(tmp_path / "lake"))
    result = import_capture(lake, capture, "okx")
    trades = writer.read(lake, BRONZE_TRADES)
    rejects = writer.read(lake, BRONZE_REJECTS)
    assert sorted(trades["trade_id"].to_list()) == ["1", "4"] and trades["price"].max() == 1e308
    assert rejects.height == 2 and result.rejects == 2
    assert all(r.startswith("unconvertible bronze/trades row") for r in rejects["reason"])


def _deribit_book(change_id: object, prev: object, ts: object = 1786563104514, **level: object) -> dict:
    bid = ["new", level.get("price", 0.23), level.get("amount", 0.8)]
    data = {"type": "snapshot" if prev is None else "change", "timestamp": ts, "instrument_name": "ETH-PERPETUAL",
            "change_id": change_id, "prev_change_id": prev, "bids": [bid], "asks": [["new", 0.24, 1.0]]}  # fmt: skip
    return {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": "book.ETH-PERPETUAL.100ms", "data": data}}


def test_ids_past_int64_bool_amounts_and_odd_event_args_are_rejects_not_a_failed_import(tmp_path: Path) -> None:
    """Found by the fuzz test with more examples: a change_id past int64 (JSON allows it) failed the import's gap
    rows, a bool amount passed the level check (float(True) is 1.0) and then failed Arrow's batch conversion, and
    an OKX event whose arg names a number as its channel failed the frame count. Each is one reject now."""
    good = [_deribit_book(10, None), _deribit_book(11, 10)]
    bad = [_deribit_book(2**64 - 1, 11), _deribit_book(12, 11, amount=True), _deribit_book(13, 2**63)]
    events = [{"event": "subscribe", "arg": {"channel": -1e308, "instId": "BTC-USDT"}},
              {"event": "error", "arg": {"channel": "books", "instId": 7}, "code": "60012", "msg": "x"}]  # fmt: skip
    for name, venue, msgs in (("deribit", "deribit", good + bad), ("okx", "okx", events)):
        capture = tmp_path / f"{name}.jsonl"
        capture.write_text(
            "".join(orjson.dumps({"url": "wss://x", "dir": "recv", "msg": m}).decode() + "\n" for m in msgs)
        )
        result = import_capture(resolve_lake(str(tmp_path / name)), capture, venue)
        rejects = writer.read(resolve_lake(str(tmp_path / name)), BRONZE_REJECTS)
        expected = len(bad) if venue == "deribit" else len(events)
        assert result.rejects == expected == rejects.height, rejects["reason"].to_list()
    reasons = " | ".join(writer.read(resolve_lake(str(tmp_path / "deribit")), BRONZE_REJECTS)["reason"].to_list())
    assert "int64" in reasons and "True" in reasons
    deltas = writer.read(resolve_lake(str(tmp_path / "deribit")), BRONZE_BOOK_DELTAS)
    assert sorted(set(deltas["seq"].to_list())) == [10, 11]  # the good messages, every level of them


def _okx_book(level: list) -> str:
    data = {"asks": [["101", "1", "0", "1"]], "bids": [level], "ts": "1786540435948", "checksum": 0, "seqId": 3,
            "prevSeqId": 2}  # fmt: skip
    return orjson.dumps(
        {"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": "update", "data": [data]}
    ).decode()


@pytest.mark.parametrize("position", [0, 1])
def test_a_bool_price_or_size_is_refused_by_both_venues_parsers(position: int) -> None:
    """float(True) is 1.0: without a check of its own a bool level passes as 1 and fails Arrow's batch later."""
    okx_level: list = ["100", "1", "0", "1"]
    okx_level[position] = True
    deribit_level = {"price": True} if position == 0 else {"amount": True}
    for venue, text in (
        (okx, _okx_book(okx_level)),
        (deribit, orjson.dumps(_deribit_book(12, 11, **deribit_level)).decode()),
    ):
        batch = ParsedBatch()
        with pytest.raises(FrameError, match="bid level"):
            venue.parse(text, 1, batch)
        assert batch.row_count() == 0


# ---- oversized frames -------------------------------------------------------------------------------------
def test_an_oversized_frame_costs_a_reconnect_not_the_stream(tmp_path: Path) -> None:
    """A frame over the collector's websockets max_size (16 MiB) closes that connection (1009); the collector
    reconnects and keeps capturing."""
    good = _okx_trade().encode()
    connects: list[int] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        connects.append(1)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT and msg.data.startswith("{"):  # the subscribe request
                if len(connects) == 1:
                    await ws.send_str(
                        '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":["' + "x" * (2**24 + 10) + '"]}'
                    )
                else:
                    await ws.send_str(good.decode())
        return ws

    settings = StreamSettings(
        flush_interval_secs=0.3, backoff_initial_secs=0.05, backoff_max_secs=0.2, connections_per_sec=50.0
    )
    collector = collect(tmp_path, handler, settings, lambda c: c.stats.trades > 0 or bool(c.batch.trades))
    assert len(connects) >= 2 and collector.stats.reconnects >= 1
    assert any("1009" in e or "too big" in e.lower() for e in collector.connections[0].errors), collector.connections[
        0
    ].errors
    assert writer.read(resolve_lake(str(tmp_path / "lake")), BRONZE_TRADES)["trade_id"].to_list() == ["7"]


# ---- broken capture files ---------------------------------------------------------------------------------
def test_malformed_capture_files_give_a_clear_error_or_reject_rows(tmp_path: Path) -> None:
    lake = resolve_lake(str(tmp_path / "lake"))
    garbage = tmp_path / "garbage.log"
    garbage.write_bytes(b"garbage\n\x00\xff\xfe\n")
    with pytest.raises(CryptolakeError, match="unknown capture format"):
        import_capture(lake, garbage, "okx")
    torn = tmp_path / "torn.jsonl.gz"
    torn.write_bytes(b"\x1f\x8b\x08\x00" + b"not gzip at all")
    with pytest.raises(CryptolakeError):
        import_capture(lake, torn, "okx")
    # A capture of ours whose body lines are broken: each broken line becomes a reject with its line number.
    ours = tmp_path / "ours.jsonl"
    ours.write_text(
        '{"format": "cryptolake-capture/1", "url": "wss://x", "opened_ts_us": 1}\n'
        '{"ts_us": 5, "url": "wss://x", "dir": "recv", "text": ' + orjson.dumps(_okx_trade()).decode() + "}\n"
        "{not json at all\n"
        '{"ts_us": "soon", "dir": "recv"}\n'
    )
    result = import_capture(lake, ours, "okx")
    rejects = writer.read(lake, BRONZE_REJECTS)
    assert result.trades == 1 and rejects.height == 2
    assert all("capture line" in r for r in rejects["reason"])
    with pytest.raises(CryptolakeError, match="does not exist"):
        import_capture(lake, tmp_path / "missing.jsonl", "okx")
    with pytest.raises(ConfigError, match="unknown venue"):
        import_capture(lake, ours, "../okx")


# ---- bad configuration --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("key", "value"), [
    ("flush_interval_secs", -1.0), ("flush_interval_secs", float("nan")), ("stale_after_secs", float("inf")),
    ("idle_ping_secs", float("inf")), ("flush_rows", 0), ("flush_rows", "many"), ("backoff_max_secs", True),
    ("flush_intreval_secs", 1.0),
])  # fmt: skip
def test_bad_config_values_name_the_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"stream": {key: value}})
    assert key in str(err.value)


@pytest.mark.parametrize("changes", [
    {"port": 70000}, {"host": "0.0.0.0"}, {"okx_instruments": 0}, {"trade_rate_per_instrument_per_s": float("inf")},
    {"faults": {"malformed_rate": 2}}, {"faults": {"drop_every_s": -1}}, {"faults": {"nope": 1}},
    {"faults": {"malformed_rate": "often"}}, {"seed": "x"},
])  # fmt: skip
def test_bad_simulator_config_is_a_config_error(changes: dict) -> None:
    with pytest.raises((ConfigError, ValueError)) as err:
        SimConfig(**changes)
    assert "simulator" in str(err.value) or isinstance(err.value, ValueError)


@pytest.mark.parametrize("args", [
    ["stream", "--venue", "okx", "--flush-secs", "-1"],
    ["stream", "--venue", "okx", "--seconds", "-5"],
    ["stream", "--venue", "okx", "--seconds", "inf"],
    ["stream", "--venue", "okx", "--flush-secs", "nan"],
    ["sim", "--port", "99999"],
    ["backfill", "--venue", "okx", "--instruments", "../x", "--start=-1h"],
])  # fmt: skip
def test_bad_cli_options_exit_2_with_a_message_and_no_traceback(args: list[str], tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "--lake", str(tmp_path / "lake"), *args],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "error" in proc.stderr
    assert not (tmp_path / "lake").exists()
