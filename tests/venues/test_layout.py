"""The byte-layout reader (pipeline.venues._layout): it takes a frame only when the frame is the layout to the
byte, and then the values it cuts out are exactly what a JSON decoder reads from that frame."""

from __future__ import annotations

import os
import random

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.venues import _layout
from pipeline.venues._columnar import NotColumnar, json_ints
from pipeline.venues._layout import NUMBER, STRING, Layout
from pipeline.venues.okx_columnar import LAYOUT as OKX

EXAMPLES = int(os.environ.get("CRYPTOLAKE_FUZZ_EXAMPLES", "150"))
KEYS = ("instId", "tradeId", "px", "sz", "side", "ts", "count", "source")
# Small layouts: a bare number first in the item, and a last value that is a string (the frame's end is
# then measured from a quote, not the other way round).
PAIRS = Layout(
    head=f'{{"id":"{STRING}","rows":[', item=f'{{"a":{NUMBER},"b":"{STRING}"}}', joiner=",", tail="]}", names=("a", "b")
)
TAILED = Layout(head='{"rows":[', item=f'["{STRING}"]', joiner=",", tail="]}", names=("v",))


def _okx_frame(items: list[dict], inst: str = "BTC-USDT") -> bytes:
    return orjson.dumps({"arg": {"channel": "trades", "instId": inst}, "data": items})


def _values_by_json(frame: bytes) -> list[dict[str, str]]:
    """What a JSON decoder reads: the values of each item as the layout reader returns them (strings)."""
    return [{k: str(v) for k, v in item.items() if k != "source"} for item in orjson.loads(frame)["data"]]


def _values_by_layout(read: _layout.Read, frame_index: int) -> list[dict[str, str]]:
    rows = [i for i, f in enumerate(read.frame_of_row) if f == frame_index]
    return [{name: read.values[name][i].as_py() for name in read.values} for i in rows]


text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
item = st.builds(
    lambda values, seq: {**dict(zip(KEYS, values, strict=True)), "seqId": seq},
    st.tuples(*[text] * len(KEYS)),
    st.integers(0, 10**18),
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(frames=st.lists(st.lists(item, min_size=1, max_size=4), min_size=1, max_size=20), inst=text)
def test_a_frame_in_the_layout_gives_exactly_the_values_json_reads(frames: list[list[dict]], inst: str) -> None:
    encoded = [_okx_frame(items, inst) for items in frames]
    read = _layout.read(OKX, encoded)
    for i, frame in enumerate(encoded):
        # orjson writes the exact layout; it escapes quotes, backslashes and control characters, and a frame
        # with an escape is left to the JSON reader (the layout reader does not undo escapes).
        assert bool(read.per_frame[i]) == (b"\\" in frame)
        if not read.per_frame[i]:
            assert _values_by_layout(read, i) == _values_by_json(frame)


def test_a_changed_byte_outside_the_values_is_never_taken() -> None:
    """Change, drop or insert bytes anywhere in good frames: a changed frame is taken only if it still is the
    layout, and then its values are what JSON reads (a change inside a value just changes the value). Bare
    numbers come back unchecked, so the contract includes the caller's check of them (``json_ints``)."""
    outcomes: list[str] = []

    @settings(max_examples=EXAMPLES * 2, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(seed=st.integers(0, 2**32), edits=st.integers(1, 3))
    def run(seed: int, edits: int) -> None:
        rng = random.Random(seed)
        items = [{"instId": "ETH-USDT", "tradeId": str(rng.randrange(10**9)), "px": "1.5", "sz": "2", "side": "buy",
                  "ts": "1786540435948", "count": "1", "source": "0", "seqId": rng.randrange(10**12)} for _ in range(rng.randint(1, 3))]  # fmt: skip
        good = _okx_frame(items)
        changed = bytearray(good)
        for _ in range(edits):
            at = rng.randrange(len(changed))
            match rng.randrange(3):
                case 0:
                    changed[at] = rng.randrange(256)
                case 1:
                    del changed[at]
                case _:
                    changed.insert(at, rng.choice(b'"{}[],:\\0a \n\x01'))
        try:
            read = _layout.read(OKX, [good, bytes(changed), good])
        except NotColumnar:  # the change made the batch invalid UTF-8: the whole batch goes on
            outcomes.append("not utf-8")
            return
        assert not read.per_frame[0] and not read.per_frame[2]
        if read.per_frame[1]:
            outcomes.append("refused")
            return
        rows = read.frame_of_row == 1
        if json_ints(read.values["seqId"])[1][rows].all():
            json_values = _values_by_json(bytes(changed))  # a frame taken must be valid JSON
            assert _values_by_layout(read, 1) == json_values
            outcomes.append("taken" if bytes(changed) != good else "unchanged")

    run()
    assert {"refused", "taken"} <= set(outcomes), outcomes


@pytest.mark.parametrize(
    ("layout", "frame", "taken"),
    [
        (PAIRS, b'{"id":"x","rows":[{"a":1,"b":"y"},{"a":22,"b":""}]}', True),
        (PAIRS, b'{"id":"x","rows":[{"a":,"b":"y"}]}', False),  # an empty number
        (PAIRS, b'{"id":"x","rows":[{"a":1,"b":"y"}]} ', False),
        (TAILED, b'{"rows":[["p"],["q"]]}', True),
        (TAILED, b'{"rows":[["p"],["q"]]}}', False),  # one byte past the end: the end is checked
        (TAILED, b'{"rows":[["p"],["q"]]', False),
        (TAILED, b'{"rows":[["p"]["q"]]}', False),
    ],
)
def test_small_layouts_take_exact_frames_only(layout: Layout, frame: bytes, taken: bool) -> None:
    good = layout.head.replace(STRING, "g") + layout.item.replace(STRING, "v").replace(NUMBER, "7") + layout.tail
    read = _layout.read(layout, [good.encode(), frame, good.encode()])
    assert list(read.per_frame) == [False, not taken, False]
    if taken:
        values = orjson.loads(frame)
        got = _values_by_layout(read, 1)
        expected = (
            [{"a": str(r["a"]), "b": r["b"]} for r in values["rows"]]
            if layout is PAIRS
            else [{"v": r[0]} for r in values["rows"]]
        )
        assert got == expected


def test_an_empty_batch_and_bad_layouts() -> None:
    read = _layout.read(OKX, [])
    assert len(read.frame_of_row) == 0 and len(read.per_frame) == 0
    with pytest.raises(ValueError, match="one name per placeholder"):
        Layout(head="{", item=f'"{STRING}"', joiner=",", tail="}", names=())
    with pytest.raises(ValueError, match="bare numbers only in items"):
        Layout(head="{", item=f'"{STRING}"', joiner=",", tail=f"{NUMBER}}}", names=("a",))
