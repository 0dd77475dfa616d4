"""Every frame of every real recording is accounted for, and every book level lands verified (issue #15).

The expectations are computed here from the recordings themselves with plain ``json`` (own line splitting,
own book rebuild keyed by Decimal, own CRC32), not with the code under test:
- per venue channel, the importer's replay counts as many frames as the file holds; data-bearing channels
  are all data rows (no rejects in these files, never a control), the rest are controls of a known kind;
- every level of every book message is a bronze/book_deltas row (a message without levels is one row);
- every non-zero OKX checksum matches the book rebuilt from the strings as sent, and no book gap is written.
"""

from __future__ import annotations

import json
import zlib
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pipeline.ingest.importer import import_capture
from pipeline.ingest.replay import replay_capture
from pipeline.lake import writer
from pipeline.lake.tables import BRONZE_BOOK_DELTAS, BRONZE_GAPS
from pipeline.realdata import realdata_dir
from pipeline.venues import get_venue

KNOWN_CONTROLS = {"ack", "unsubscribed", "error", "pong", "heartbeat", "response", "notice"}
VENUE_OF_FOLDER = {"okx": "okx", "okx-funding": "okx", "deribit": "deribit"}


def recordings() -> list[tuple[str, Path]]:
    """Every WebSocket recording under the real-data folder (REST listings are not frame streams)."""
    root = realdata_dir()
    if not root.is_dir():
        return []
    return [
        (VENUE_OF_FOLDER[path.parent.name], path)
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.parent.name in VENUE_OF_FOLDER and ".rest." not in path.name
    ]


RECORDINGS = recordings()
pytestmark = pytest.mark.skipif(not RECORDINGS, reason=f"real recordings not found at {realdata_dir()}")


def received(path: Path) -> list[Any]:
    """The JSON (or bare text) of every frame received from the venue, in order, read with plain json."""
    frames: list[Any] = []
    for line in path.read_text().splitlines():
        if path.suffix == ".jsonl":
            obj = json.loads(line)
            if obj["dir"] == "recv":
                frames.append(obj["msg"])
            continue
        head, sep, body = line.partition(": ")
        if sep and head.replace(".", "").isdigit():  # "<unix ts>: <frame>"; the rest is sent/open/REST
            try:
                frames.append(json.loads(body))
            except ValueError:
                frames.append(body)  # "pong"
    return frames


def channel_of(venue: str, msg: Any) -> tuple[str, bool]:
    """(channel family as the replay names it, whether the frame carries market data)."""
    if not isinstance(msg, dict):
        return "-", False
    if venue == "okx":
        arg = msg.get("arg")
        return (arg.get("channel", "-") if isinstance(arg, dict) else "-"), "data" in msg
    params = msg.get("params")
    if msg.get("method") == "subscription" and isinstance(params, dict):
        data = params["data"]
        inst = data.get("instrument_name") if isinstance(data, dict) else data[0].get("instrument_name")
        return ".".join("{inst}" if part == inst else part for part in params["channel"].split(".")), True
    return "-", False


def book_messages(venue: str, frames: list[Any]) -> list[dict[str, Any]]:
    """Each book message as {instrument, channel, snapshot, bids, asks, checksum}, levels as sent."""
    out = []
    for msg in frames:
        if not isinstance(msg, dict):
            continue
        if venue == "okx" and msg.get("arg", {}).get("channel") in ("books", "books-l2-tbt", "books50-l2-tbt"):
            for item in msg.get("data", []):
                out.append({"instrument": msg["arg"]["instId"], "channel": msg["arg"]["channel"],
                            "snapshot": msg["action"] == "snapshot", "bids": item["bids"], "asks": item["asks"],
                            "checksum": item.get("checksum")})  # fmt: skip
        elif venue == "deribit" and msg.get("params", {}).get("channel", "").startswith("book."):
            data = msg["params"]["data"]
            out.append({"instrument": data["instrument_name"], "channel": msg["params"]["channel"],
                        "snapshot": data["type"] == "snapshot", "bids": data["bids"], "asks": data["asks"],
                        "checksum": None})  # fmt: skip
    return out


def okx_crc(bids: dict[Decimal, list[str]], asks: dict[Decimal, list[str]]) -> int:
    best_bids = [bids[p] for p in sorted(bids, reverse=True)[:25]]
    best_asks = [asks[p] for p in sorted(asks)[:25]]
    parts = []
    for i in range(25):
        parts += [f"{lv[0]}:{lv[1]}" for lv in (best_bids[i : i + 1] + best_asks[i : i + 1])]
    crc = zlib.crc32(":".join(parts).encode())
    return crc - 2**32 if crc >= 2**31 else crc


@pytest.mark.parametrize(("venue", "path"), RECORDINGS, ids=[f"{p.parent.name}/{p.name}" for _, p in RECORDINGS])
def test_every_frame_is_a_row_a_reject_or_a_known_control(venue: str, path: Path) -> None:
    frames = received(path)
    expected: dict[str, Counter[str]] = {}
    data_channels = set()
    for msg in frames:
        channel, data = channel_of(venue, msg)
        expected.setdefault(channel, Counter())["data" if data else "control"] += 1
        if data:
            data_channels.add(channel)
    result = replay_capture(path, venue, receive_clock=lambda: 1)
    got: dict[str, Counter[str]] = {}
    for (channel, outcome), n in result.channels.items():
        got.setdefault(channel, Counter())[outcome] += n
    assert result.frames == len(frames) > 0
    assert sum(result.channels.values()) == len(frames)
    assert set(result.controls) <= KNOWN_CONTROLS, result.controls
    assert result.rejects == []  # these recordings are clean: every frame the venue sent is readable
    assert set(got) == set(expected)
    for channel, counts in expected.items():
        assert sum(got[channel].values()) == sum(counts.values()), channel
        if channel in data_channels:  # a data-bearing channel: its data frames are rows, never "control"
            assert got[channel]["rows"] == counts["data"], channel
        controls = sum(n for outcome, n in got[channel].items() if outcome.startswith("control:"))
        assert controls == counts["control"], channel
    assert not any(outcome == "control:ignored" for _, outcome in result.channels)


BOOK_RECORDINGS = [(v, p) for v, p in RECORDINGS if book_messages(v, received(p))]


def test_the_book_recordings_are_the_ones_expected() -> None:
    names = {p.name for _, p in BOOK_RECORDINGS}
    assert {"cryptofeed-2022-05-public.ws.log", "okcoin-v5-2023-05-candles.ws.log",
            "cryptofeed-2021-07-options.ws.log", "ccxt-2026-08.jsonl"} <= names  # fmt: skip


@pytest.mark.parametrize(
    ("venue", "path"), BOOK_RECORDINGS, ids=[f"{p.parent.name}/{p.name}" for _, p in BOOK_RECORDINGS]
)
def test_every_book_level_lands_and_every_checksum_verifies(lake, venue: str, path: Path) -> None:
    messages = book_messages(venue, received(path))
    levels: Counter[tuple[Any, ...]] = Counter()  # (instrument, side, price, size) -> rows expected
    books: dict[tuple[str, str], tuple[dict, dict]] = {}
    checksums = 0
    for m in messages:
        if not m["bids"] and not m["asks"]:
            levels[m["instrument"], None, None, None] += 1
        bids, asks = books.setdefault((m["instrument"], m["channel"]), ({}, {}))
        if m["snapshot"]:
            bids.clear()
            asks.clear()
        for side, book, raw in (("bid", bids, m["bids"]), ("ask", asks, m["asks"])):
            for level in raw:
                px, sz = (level[0], level[1]) if venue == "okx" else (level[1], level[2])
                levels[m["instrument"], side, float(px), float(sz)] += 1
                if Decimal(str(sz)) == 0:
                    book.pop(Decimal(str(px)), None)
                else:
                    book[Decimal(str(px))] = [px, sz]
        if m["checksum"]:
            assert okx_crc(bids, asks) == m["checksum"], m
            checksums += 1
    if path.name == "cryptofeed-2022-05-public.ws.log":
        assert len(messages) == checksums == 290  # the 3 snapshots and 287 updates, all with a checksum
    result = import_capture(lake, path, venue)
    assert result.gaps == 0
    table = writer.read(lake, BRONZE_BOOK_DELTAS)
    assert result.books == table.height == sum(levels.values())
    got = Counter(zip(table["instrument"], table["side"], table["price"], table["size"], strict=True))
    assert got == levels
    assert set(table["source"]) == {"capture"} and table["session"].null_count() == 0
    assert writer.count_rows(lake, BRONZE_GAPS) == 0  # no book gap: every chain and checksum held


def test_the_venue_checksum_rule_matches_this_rebuild() -> None:
    """okx.book_checksum (what the verifier uses) against the test's own CRC on a small book."""
    okx = get_venue("okx")
    bids = {Decimal("100.5"): ["100.5", "2"], Decimal("99"): ["99", "1.5"]}
    asks = {Decimal("101"): ["101", "3"]}
    assert okx.book_checksum([["100.5", "2"], ["99", "1.5"]], [["101", "3"]]) == okx_crc(bids, asks)  # type: ignore[attr-defined]


def test_cryptolake_import_prints_rows_per_table_and_frames_per_channel(lake, realdata: Path, capsys) -> None:
    from pipeline.cli import main

    path = realdata / "okx" / "cryptofeed-2022-05-public.ws.log"
    assert main(["--lake", lake.root, "import", str(path), "--venue", "okx"]) == 0
    out = capsys.readouterr().out
    levels = sum(max(1, len(m["bids"]) + len(m["asks"])) for m in book_messages("okx", received(path)))
    assert f"{levels:,} book rows" in out and "0 rejects" in out
    assert "  books: 293 frames (290 rows, 3 control:ack)" in out  # 3 snapshots + 287 updates, 3 acks
    assert "  trades: 80 frames (74 rows, 6 control:ack)" in out
