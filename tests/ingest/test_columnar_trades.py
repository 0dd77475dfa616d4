"""The columnar trade path (raw frames decoded at the flush) gives exactly what the per-frame parser gives:
the same bronze rows in the same order, the same rejects with the same reasons, the same quotes of frames it
hands back; on real recordings, mutated frames and hand-picked hostile values. And the vectorised gap check
finds exactly what the row-by-row one finds."""

from __future__ import annotations

import itertools
import os
import random
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.ingest import trade_decoder
from pipeline.ingest.flusher import convert_rows
from pipeline.ingest.frames import parse_frame
from pipeline.ingest.gaps import GapDetector
from pipeline.ingest.rawframes import RawFrames
from pipeline.lake import batches
from pipeline.lake.tables import BRONZE_TRADES
from pipeline.venues import deribit, okx, okx_columnar
from pipeline.venues.base import ParsedBatch
from tests.frame_mutations import frames_or_skip, mutate_bytes, real_frames

VENUES = {"okx": okx, "deribit": deribit}
EXAMPLES = int(os.environ.get("CRYPTOLAKE_FUZZ_EXAMPLES", "150"))
FRAMES = real_frames(VENUES)
T0 = 1_786_540_435_000_000


def _trade_frames(venue: str) -> list[bytes]:
    """The real frames that hold trades, and (the Deribit recordings hold only a few) variants of them with
    other instruments, sequence numbers, prices and 1-4 trades a frame, as the 100 ms channels batch them."""
    out = []
    for text in frames_or_skip(FRAMES, venue):
        batch = ParsedBatch()
        try:
            VENUES[venue].parse(text, 0, batch, "ws")
        except Exception:  # noqa: BLE001 - only frames with trades matter here
            continue
        if batch.trades:
            out.append(text.encode())
    assert out, f"no {venue} trade frames in the recordings"
    rng = random.Random(5)
    real = list(out)
    while len(out) < 200:
        msg = orjson.loads(rng.choice(real))
        data = msg["params"]["data"] if venue == "deribit" else msg["data"]
        items = []
        for k in range(rng.randint(1, 4)):
            item = dict(rng.choice(data))
            if venue == "deribit":
                item["trade_seq"] = item["trade_seq"] + len(out) * 5 + k
                item["price"] = round(item["price"] * (1 + rng.uniform(-0.01, 0.01)), 1)
                item["amount"] = rng.choice([1, 2.5, 10, 0.1])
            else:
                item["tradeId"] = str(int(item["tradeId"]) + len(out) * 5 + k)
                item["px"] = f"{float(item['px']) * (1 + rng.uniform(-0.01, 0.01)):.2f}"
                if "seqId" not in item and len(out) % 2:  # half in today's layout (the 2022 frames lack these)
                    item.update(count=str(rng.choice([1, 2, 10])), source="0", seqId=rng.randrange(10**12))
            items.append(item)
        if venue == "okx" and len({"seqId" in item for item in items}) > 1:
            items = [item for item in items if "seqId" in item]  # one layout a frame, as OKX sends them
        data[:] = items
        out.append(orjson.dumps(msg))
    return out


def _per_frame(venue: str, frames: list[bytes]) -> tuple[list[dict], list[tuple], ParsedBatch]:
    """The reference: each frame through the per-frame parser, in order."""
    batch, rejects = ParsedBatch(), []
    for i, frame in enumerate(frames):
        parse_frame(VENUES[venue], frame, T0 + i, batch, rejects)
    done = convert_rows(BRONZE_TRADES, batch.trades, venue)
    rows = done.table.to_pylist() if done.table is not None else []
    return rows, rejects + done.rejects, batch


def _columnar(venue: str, frames: list[bytes]) -> trade_decoder.DecodedTrades:
    raw = RawFrames()
    for i, frame in enumerate(frames):
        raw.add(frame, T0 + i)
    return trade_decoder.decode(VENUES[venue], raw)


def _same(venue: str, frames: list[bytes]) -> trade_decoder.DecodedTrades:
    rows, rejects, batch = _per_frame(venue, frames)
    got = _columnar(venue, frames)
    # repr: a NaN the parser let through (a mark price of "nan") must compare equal to itself
    assert [repr(r) for r in got.trades.to_pylist()] == [repr(r) for r in rows]

    def strip(r: tuple) -> str:  # unconvertible-row rejects carry the conversion clock, not a frame's
        return repr(r[:1] + r[2:] if r[3].startswith("unconvertible") else r)

    # the same rejects; their order is not kept (they are one table, written in one commit)
    assert sorted(map(strip, got.rejects)) == sorted(map(strip, rejects))
    assert repr(got.other.quotes) == repr(batch.quotes) and got.other.candles == batch.candles
    return got


@pytest.mark.parametrize("venue", sorted(VENUES))
def test_real_trade_frames_decode_columnar_and_equal_the_parser(venue: str) -> None:
    frames = _trade_frames(venue)
    got = _same(venue, frames)
    assert got.trades.num_rows >= len(frames)
    assert got.per_frame == 0, "the fast path refused real frames"


def test_okx_frames_in_todays_layout_skip_the_json_reader() -> None:
    """The byte-layout tier takes every frame in OKX's current wire layout (real ones among them) and leaves
    the 2022 frames, which lack count/source/seqId, to the JSON reader."""
    frames = _trade_frames("okx")
    current = [b'"seqId":' in f for f in frames]
    assert sum(current) >= 50 and not all(current)
    assert any(b'"seqId":' in f for f in frames[: len(frames) // 4]), "no real frame in today's layout"
    assert list(okx_columnar.decode_layout(frames).per_frame) == [not c for c in current]
    assert _columnar("okx", frames).slow == current.count(False)  # what the collector counts and warns on


@pytest.mark.parametrize("venue", sorted(VENUES))
def test_mutated_frames_give_the_same_rows_and_rejects(venue: str) -> None:
    frames = _trade_frames(venue)
    handed_back = []

    @settings(
        max_examples=max(30, EXAMPLES // 3), deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(seed=st.integers(0, 2**32), count=st.integers(1, 300), mutated=st.floats(0.0, 0.3))
    def run(seed: int, count: int, mutated: float) -> None:
        rng = random.Random(seed)
        batch = [rng.choice(frames) for _ in range(count)]
        batch = [mutate_bytes(f, rng, rng.randrange(1, 4)) if rng.random() < mutated else f for f in batch]
        got = _same(venue, batch)
        handed_back.append(got.per_frame)

    run()
    assert sum(handed_back) > 0  # the mutations reached the per-frame fallback


HOSTILE_OKX = [
    b'{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"1","px":"NaN","sz":"1","side":"buy","ts":"1"}]}',
    b'{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"1","px":" 1","sz":"1_0","side":"buy","ts":"1"}]}',
    b'{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"1","px":"1","sz":"1","side":"buy","ts":"0x10"}]}',
    b'{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":1,"px":"1","sz":"1","side":"buy","ts":"5"}]}',
    b'{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"1","px":"1","px":"2","sz":"1","side":"buy","ts":"5"}]}',
    b'{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"1","px":"1e400","sz":"1","side":"buy","ts":"5"}]}',
    b'{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"1","px":"1","sz":"1","side":"buy","ts":"9999999999999999"}]}',
    b'{"arg":{"channel":"trades","instId":"BTC-USDT"},\n"data":[{"instId":"BTC-USDT","tradeId":"2","px":"1","sz":"1","side":"buy","ts":"5"}]}',
    b'{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"3","px":"1","sz":"1","side":"buy","ts":"5"}]}\n',
    b'{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC\xff","tradeId":"1","px":"1","sz":"1","side":"buy","ts":"5"}]}',
    b'{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[]}{"x":1}',
    b'{"arg":{"channel":"trades","instId":"BTC-USDT"}}',
    b'{"arg":{"channel":"books5","instId":"BTC-USDT"},"data":[{"asks":[["1","2","0","1"]],"bids":[["0.5","2","0","1"]],"ts":"5"}]}',
    b'{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"NOT A NAME","tradeId":"1","px":"1","sz":"1","side":"buy","ts":"5"}]}',
    b'{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"4","px":"1","sz":"1","side":"buy","ts":"5","count":"-1"}]}',
    b'{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"5","px":"1","sz":"1","side":"buy","ts":"5","seqId":"7"}]}',
    b'{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"6","px":"1","sz":"1","side":"BUY","ts":"5"}]}',
    b"pong",
    b"",
]
_NOW = b'{"arg":{"channel":"trades","instId":"BTC-USDT-SWAP"},"data":[{"instId":"BTC-USDT-SWAP","tradeId":"2832749635","px":"63913.5","sz":"1","side":"buy","ts":"1786540435948","count":"1","source":"0","seqId":333793117432}]}'


def _now(old: bytes, new: bytes) -> bytes:
    assert old in _NOW
    return _NOW.replace(old, new, 1)


# Frames in (or one byte away from) OKX's current layout, which the byte-layout tier reads without a parser.
HOSTILE_OKX_LAYOUT = [
    _now(b"333793117432", b"0333793117432"),  # a leading zero: invalid JSON
    _now(b"333793117432", b"-5"),
    _now(b"333793117432", b"1.5"),
    _now(b"333793117432", b"1e3"),
    _now(b"333793117432", b"123456789012345678901"),
    _now(b"333793117432", b""),
    _now(b"333793117432", b'"7"'),
    _now(b"333793117432", b"0"),
    _now(b'"px":"63913.5"', b'"px":"6\\u0033913.5"'),  # an escape the parser decodes: same trade
    _now(b'"source":"0"', b'"source":"a\\"b"'),
    _now(b'"source":"0"', b'"source":"\x01"'),  # a raw control character: invalid JSON
    _now(b'"source":"0"', b'"source":"\x00"'),
    _now(b'"px":"63913.5"', b'"px": "63913.5"'),
    _now(b"}]}", b"}]}x"),
    _now(b"}]}", b"}]} "),
    _now(b"}]}", b"}]}}"),
    _now(b'"tradeId"', b'"tradeID"'),
    _now(b'"side":"buy"', b'"side":"bux"'),
    _now(b'"instId":"BTC-USDT-SWAP","tradeId"', '"instId":"BTC-ÜSDT-SWAP","tradeId"'.encode()),
    _now(b'"tradeId":"2832749635"', b'"tradeId":""'),
    _now(b'"count":"1"', b'"count":"x"'),
    _now(b'"ts":"1786540435948"', b'"ts":"0"'),
    _now(b'"channel":"trades"', b'"channel":"tradez"'),
    _now(b'"sz":"1"', b'"sz":"1","sz":"2"'),
    _now(b'"data":[{', b'"data":[{"x":"1",'),
    _now(
        b"333793117432}",
        b'333793117432},{"instId":"BTC-USDT-SWAP","tradeId":"2832749636","px":"1","sz":"1","side":"sell","ts":"5"}',
    ),
    _now(
        b"333793117432}",
        b'333793117432}, {"instId":"BTC-USDT-SWAP","tradeId":"2832749636","px":"1","sz":"1","side":"sell","ts":"5","count":"1","source":"0","seqId":1}',
    ),
    _now(
        b'[{"instId":"BTC-USDT-SWAP","tradeId":"2832749635","px":"63913.5","sz":"1","side":"buy","ts":"1786540435948","count":"1","source":"0","seqId":333793117432}]',
        b"[]",
    ),
    _NOW[:-1],
    _NOW + b"\n" + _NOW,
]

HOSTILE_DERIBIT = [
    b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.BTC-PERPETUAL.100ms","data":[{"timestamp":5,"price":NaN,"direction":"buy","trade_id":"1","instrument_name":"BTC-PERPETUAL","trade_seq":1,"amount":1}]}}',
    b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.BTC-PERPETUAL.100ms","data":[{"timestamp":5,"price":1,"direction":"buy","trade_id":"1","instrument_name":"BTC-PERPETUAL","trade_seq":1,"amount":1,"index_price":Infinity}]}}',
    b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.BTC-PERPETUAL.100ms","data":[{"timestamp":5.7,"price":1,"direction":"buy","trade_id":"1","instrument_name":"BTC-PERPETUAL","trade_seq":1,"amount":1}]}}',
    b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.BTC-PERPETUAL.100ms","data":[{"timestamp":5,"price":"1","direction":"buy","trade_id":7,"instrument_name":"BTC-PERPETUAL","trade_seq":1,"amount":true}]}}',
    b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.BTC-PERPETUAL.100ms","data":[{"timestamp":5,"price":1,"direction":"buy","trade_id":"1","instrument_name":"BTC-PERPETUAL","trade_seq":1,"amount":123456789012345678901234}]}}',
    b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.BTC-PERPETUAL.100ms","data":null}}',
    b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.BTC-PERPETUAL.100ms","data":[{"timestamp":5,"price":1,"direction":"buy","trade_id":"1","instrument_name":"BTC-PERPETUAL","trade_seq":1,"amount":1,"liquidation":5}]}}',
    b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.BTC-PERPETUAL.100ms","data":[{"timestamp":99999999999999999,"price":1,"direction":"buy","trade_id":"1","instrument_name":"BTC-PERPETUAL","trade_seq":1,"amount":1}]}}',
    b'{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}',
]


@pytest.mark.parametrize(
    ("venue", "frames"), [("okx", HOSTILE_OKX), ("okx", HOSTILE_OKX_LAYOUT), ("deribit", HOSTILE_DERIBIT)]
)
def test_hostile_values_between_good_frames_give_the_same_result(venue: str, frames: list[bytes]) -> None:
    good = _trade_frames(venue)
    mixed: list[bytes] = []
    for bad in frames:
        mixed += [good[len(mixed) % len(good)], bad]
    got = _same(venue, mixed)
    assert got.rejects, "hostile frames must reach rejects"
    assert got.trades.num_rows > 0


def test_raw_frames_give_every_frame_back_exactly() -> None:
    raw = RawFrames()
    frames = [b'{"a":1}', b"", b"line\nbreak", b"\xff\xfe", b"{}\r\n"]
    for i, frame in enumerate(frames):
        raw.add(frame, i)
    assert [raw.frame(i) for i in range(len(frames))] == frames
    assert raw.select([1, 2, 3]) == frames[1:4] and raw.select([0, 2, 4]) == frames[0::2]
    assert list(raw.receive_ts) == list(range(len(frames)))


# --- the vectorised gap check ------------------------------------------------------------------------
def _rows(venue: str, events: list[tuple[int, int, int | None]]) -> list[tuple[Any, ...]]:
    rows = []
    for i, (inst, counter, step) in enumerate(events):
        name = f"I{inst}"
        if venue == "okx":
            rows.append(
                (
                    "okx",
                    "spot",
                    name,
                    str(counter),
                    1.0,
                    1.0,
                    "buy",
                    1000 + i,
                    T0,
                    "ws",
                    None,
                    step,
                    None,
                    None,
                    None,
                    None,
                )
            )
        else:
            rows.append(
                (
                    "deribit",
                    "option",
                    name,
                    f"t{i}",
                    1.0,
                    1.0,
                    "buy",
                    1000 + i,
                    T0,
                    "ws",
                    counter,
                    None,
                    None,
                    None,
                    None,
                    None,
                )
            )
    return rows


def _state(d: GapDetector) -> tuple:
    pending = [(g.instrument, g.kind, g.from_seq, g.to_seq, g.from_ts_ms, g.to_ts_ms, g.missing) for g in d.pending]
    return pending, d.snapshot(), d.duplicates, d.out_of_order


@pytest.mark.parametrize("venue", ["okx", "deribit"])
def test_vectorised_gap_check_equals_the_row_by_row_check(venue: str) -> None:
    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(
        moves=st.lists(
            st.tuples(st.integers(0, 2), st.integers(-3, 6), st.sampled_from([1, 1, 2, 3, None])), max_size=120
        ),
        cuts=st.lists(st.integers(0, 120), max_size=3),
        start=st.dictionaries(st.sampled_from(["I0", "I1"]), st.integers(0, 50), max_size=2),
    )
    def run(moves: list[tuple[int, int, int | None]], cuts: list[int], start: dict[str, int]) -> None:
        counters = [100, 200, 300]
        events = []
        for inst, move, step in moves:
            counters[inst] += move
            events.append((inst, counters[inst], step))
        rows = _rows(venue, events)
        a, b = GapDetector(venue, settle_ms=0), GapDetector(venue, settle_ms=0)
        for d in (a, b):
            d.restore({k: [v + 100, 500] for k, v in start.items()})
        bounds = [0, *sorted(c for c in cuts if c <= len(rows)), len(rows)]
        for lo, hi in itertools.pairwise(bounds):  # several flushes: state carries over
            a.check(rows[lo:hi], 0)
            b.check_table(batches.trades_table(rows[lo:hi]))
        assert _state(b) == _state(a)

    run()


def test_vectorised_gap_check_finds_a_real_gap() -> None:
    d = GapDetector("okx", settle_ms=0)
    d.check_table(batches.trades_table(_rows("okx", [(0, 10, 1), (0, 11, 1), (0, 15, 1), (1, 7, 1)])))
    assert [(g.instrument, g.from_seq, g.to_seq, g.missing) for g in d.pending] == [("I0", 11, 15, 3)]
    assert orjson.loads(orjson.dumps(d.snapshot())) == {"I0": [15, 1002], "I1": [7, 1003]}
