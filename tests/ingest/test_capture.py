"""Capture reader (three formats), our writer, and replay into rows + rejects."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from pipeline.errors import CryptolakeError
from pipeline.ingest.capture import (
    CAPTURE_FORMAT,
    CaptureWriter,
    capture_format,
    connection_capture_path,
    iter_capture,
)
from pipeline.ingest.replay import iter_replay, replay_capture
from pipeline.lake.schemas import REJECT_FIELDS
from pipeline.realdata import realdata_dir

REALDATA = realdata_dir()
needs_realdata = pytest.mark.skipif(
    not REALDATA.is_dir(), reason=f"real recordings not found at {REALDATA} (set CRYPTOLAKE_REALDATA)"
)

OKX_TRADE = '{"arg":{"channel":"trades","instId":"BTC-USDT-SWAP"},"data":[{"instId":"BTC-USDT-SWAP","tradeId":"2832749635","px":"63913.5","sz":"1","side":"buy","ts":"1786540435948","count":"1","source":"0","seqId":333793117432}]}'


# --- real recordings -----------------------------------------------------------------------------
@needs_realdata
@pytest.mark.parametrize(
    "rel, fmt",
    [
        ("okx/cryptofeed-2022-05-public.ws.log", "cryptofeed"),
        ("okx/cryptofeed-2022-05-instruments.rest.log", "cryptofeed"),
        ("okx/okcoin-v5-2023-05-candles.ws.log", "cryptofeed"),
        ("okx/ccxt-2026-08.jsonl", "ccxt"),
        ("deribit/cryptofeed-2021-07-options.ws.log", "cryptofeed"),
        ("deribit/cryptofeed-2021-07-instruments.rest.log", "cryptofeed"),
        ("deribit/ccxt-2026-08.jsonl", "ccxt"),
    ],
)
def test_formats_are_detected(rel: str, fmt: str) -> None:
    assert capture_format(REALDATA / rel) == fmt
    assert not any(f.bad for f in iter_capture(REALDATA / rel))


@needs_realdata
def test_cryptofeed_log_frames_are_verbatim_with_exact_timestamps() -> None:
    path = REALDATA / "okx" / "cryptofeed-2022-05-public.ws.log"
    frames = list(iter_capture(path))
    lines = [ln for ln in path.read_text().split("\n") if ln.strip()]
    assert len(frames) == len(lines)
    opened = frames[0]
    assert (opened.direction, opened.url, opened.ts_us) == (
        "open",
        "wss://ws.okx.com:8443/ws/v5/public",
        1652459224530060,
    )
    sent = frames[1]
    assert sent.direction == "sent" and json.loads(sent.text)["op"] == "subscribe"
    recv = [f for f in frames if f.direction == "recv"]
    expected = [ln.split(": ", 1) for ln in lines if ln[0].isdigit()]
    assert len(recv) == len(expected) == 410
    for frame, (_ts, text) in zip(recv, expected, strict=True):
        assert frame.text == text  # byte for byte, for rejects
        assert frame.url == "wss://ws.okx.com:8443/ws/v5/public"
    assert recv[0].ts_us == 1652459225503749  # "1652459225.5037491" truncated to us, no float rounding


@needs_realdata
def test_rest_and_configuration_lines() -> None:
    frames = list(iter_capture(REALDATA / "okx" / "cryptofeed-2022-05-instruments.rest.log"))
    rest = [f for f in frames if f.direction == "rest"]
    assert len(rest) == 25
    assert rest[0].url == "https://www.okx.com/api/v5/public/instruments?instType=SPOT"
    assert json.loads(rest[0].text)["data"][0]["instId"] == "BTC-USDT"
    assert frames[-1].direction == "meta" and "l2_book" in json.loads(frames[-1].text)


@needs_realdata
def test_ccxt_jsonl_text_is_the_recorded_msg_text() -> None:
    path = REALDATA / "okx" / "ccxt-2026-08.jsonl"
    frames = list(iter_capture(path))
    raw_lines = path.read_text().splitlines()
    assert len(frames) == len(raw_lines)
    for frame, line in zip(frames, raw_lines, strict=True):
        obj = json.loads(line)
        assert frame.direction == obj["dir"] and frame.url == obj["url"] and frame.ts_us is None
        assert frame.text in line  # the exact substring, not a re-serialisation
        assert json.loads(frame.text) == obj["msg"]


@needs_realdata
def test_replay_uses_recorded_time_and_capture_source() -> None:
    result = replay_capture(REALDATA / "okx" / "cryptofeed-2022-05-public.ws.log", "okx")
    first = result.batch.trades[0]
    assert (first[3], first[8], first[9]) == ("7849", 1652459225507075, "capture")
    assert result.frames == 410 and result.lines["sent"] == 3 and result.controls["ack"] == 18


@needs_realdata
def test_replay_without_timestamps_uses_the_clock() -> None:
    ticks = iter(range(100, 200))
    result = replay_capture(REALDATA / "deribit" / "ccxt-2026-08.jsonl", "deribit", receive_clock=lambda: next(ticks))
    assert [t[8] for t in result.batch.trades] == [result.batch.trades[0][8], result.batch.trades[0][8] + 1]
    assert all(100 <= q[5] < 200 for q in result.batch.quotes)


# --- broken captures -----------------------------------------------------------------------------
def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(CryptolakeError, match=r"not found: .*nope\.log"):
        list(iter_capture(tmp_path / "nope.log"))
    odd = tmp_path / "odd.txt"
    odd.write_text("hello world\n")
    with pytest.raises(CryptolakeError, match=r"unknown capture format in .*odd\.txt"):
        list(iter_capture(odd))
    with pytest.raises(CryptolakeError):
        replay_capture(odd, "okx")
    with pytest.raises(CryptolakeError, match="not a file"):
        list(iter_capture(tmp_path))


def test_bad_lines_become_rejects_verbatim(tmp_path: Path) -> None:
    path = tmp_path / "broken.log"
    truncated = OKX_TRADE[:60]
    nan_price = OKX_TRADE.replace('"px":"63913.5"', '"px":"NaN"')
    obj_price = OKX_TRADE.replace('"px":"63913.5"', '"px":{"v":1}')
    unknown = OKX_TRADE.replace('"channel":"trades"', '"channel":"tradez"')
    path.write_bytes(
        (
            "wss://ws.okx.com:8443/ws/v5/public <-> 1786540435.5\n"
            f"1786540435.6: {OKX_TRADE}\n"
            "this line is garbage\n"
            f"1786540435.7: {truncated}\n"
            f"1786540435.8: {nan_price}\n"
            f"1786540435.9: {obj_price}\n"
            f"1786540436.0: {unknown}\n"
        ).encode()
        + b'1786540436.1: {"bad utf8": "\xff"}\n'
    )
    result = replay_capture(path, "okx", receive_clock=lambda: 7)
    assert len(result.batch.trades) == 1 and result.batch.trades[0][8] == 1786540435600000
    assert all(len(r) == len(REJECT_FIELDS) for r in result.rejects)
    reasons = {r[4]: r[3] for r in result.rejects}
    assert "not a cryptofeed recorder line" in reasons["this line is garbage"]
    assert "line 3" in reasons["this line is garbage"]
    assert "invalid JSON" in reasons[truncated]
    assert "px is not a positive finite number" in reasons[nan_price]
    assert "px is not a number" in reasons[obj_price]
    assert "unknown channel 'tradez'" in reasons[unknown]
    assert any("not UTF-8" in r[3] for r in result.rejects)
    assert len(result.rejects) == 6
    assert [r[1] for r in result.rejects if r[4] == truncated] == [1786540435700000]  # recorded time kept
    assert all(r[0] == "okx" and r[2] == "capture" for r in result.rejects)


# --- our own format ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["conn.jsonl", "conn.jsonl.gz"])
def test_writer_round_trip(tmp_path: Path, name: str) -> None:
    path = tmp_path / "sub" / name
    url = "wss://ws.okx.com:8443/ws/v5/public"
    weird = '{"arg":{"channel":"trades"},"data":[{"note":"tab\\t, unicode \u00e9, newline \\n"}]}'
    with CaptureWriter(path, url=url, opened_ts_us=1) as writer:
        writer.write(url, "sent", '{"op":"subscribe","args":[]}', 10)
        writer.write(url, "recv", OKX_TRADE, 11)
        writer.write(url, "recv", "pong", 12)
        writer.write(url, "recv", weird, 13)
        with pytest.raises(CryptolakeError):
            writer.write(url, "sideways", "x", 14)  # type: ignore[arg-type]
    assert writer.frames_written == 4
    if name.endswith(".gz"):
        assert path.read_bytes()[:2] == b"\x1f\x8b"
    assert capture_format(path) == "cryptolake"
    frames = list(iter_capture(path))
    assert frames[0].direction == "meta" and json.loads(frames[0].text)["format"] == CAPTURE_FORMAT
    assert [(f.direction, f.ts_us, f.text, f.url) for f in frames[1:]] == [
        ("sent", 10, '{"op":"subscribe","args":[]}', url),
        ("recv", 11, OKX_TRADE, url),
        ("recv", 12, "pong", url),
        ("recv", 13, weird, url),
    ]
    result = replay_capture(path, "okx")
    assert result.batch.trades[0][8] == 11 and result.controls["pong"] == 1
    assert [(r[1], r[3], r[4]) for r in result.rejects] == [(13, "okx trades: missing field 'instId'", weird)]


def test_truncated_gzip_keeps_the_prefix_and_reports_the_tail(tmp_path: Path) -> None:
    path = tmp_path / "killed.jsonl.gz"
    with CaptureWriter(path, url="u") as writer:
        for i in range(2000):
            writer.write("u", "recv", OKX_TRADE.replace("2832749635", str(i)), 1000 + i)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # what a SIGKILL mid-write leaves
    frames = list(iter_capture(path))
    assert frames[-1].bad and "unreadable gzip tail" in frames[-1].error
    good = [f for f in frames if f.direction == "recv"]
    assert 0 < len(good) < 2000
    assert [f.ts_us for f in good] == list(range(1000, 1000 + len(good)))
    result = replay_capture(path, "okx")
    assert len(result.rejects) == 1 and len(result.batch.trades) == len(good)


def test_our_format_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(
        json.dumps({"format": CAPTURE_FORMAT, "url": "u", "opened_ts_us": 1}) + "\n"
        + json.dumps({"ts_us": 5, "url": "u", "dir": "recv", "text": OKX_TRADE}) + "\n"
        + '{"ts_us": 6, "url": "u", "dir": "recv", "te\n'
        + json.dumps({"ts_us": "7", "url": "u", "dir": "recv", "text": OKX_TRADE}) + "\n"
    )  # fmt: skip
    frames = list(iter_capture(path))
    assert [f.direction for f in frames] == ["meta", "recv", "bad", "bad"]
    assert frames[2].text == '{"ts_us": 6, "url": "u", "dir": "recv", "te' and frames[2].line_no == 3


def test_gzip_detected_by_magic_not_name(tmp_path: Path) -> None:
    path = tmp_path / "plain-name.log"
    path.write_bytes(gzip.compress(f"1786540435.6: {OKX_TRADE}\n".encode()))
    assert [f.text for f in iter_capture(path)] == [OKX_TRADE]


def test_iter_replay_chunks(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    with CaptureWriter(path) as writer:
        for i in range(25):
            writer.write("u", "recv", OKX_TRADE.replace("2832749635", str(i)), i)
    chunks = list(iter_replay(path, "okx", chunk_rows=10))
    assert [len(c.batch.trades) for c in chunks] == [10, 10, 5]
    assert sum(c.frames for c in chunks) == 25


def test_connection_capture_path(tmp_path: Path) -> None:
    p = connection_capture_path(tmp_path, "okx", 1786540435948123, 3)
    assert p.name == "okx-1786540435948123-0003.jsonl.gz"
    with pytest.raises(CryptolakeError):
        connection_capture_path(tmp_path, "../okx", 1, 1)


def test_empty_file_yields_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    assert list(iter_capture(path)) == []
    assert replay_capture(path, "okx").frames == 0
