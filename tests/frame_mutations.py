"""Mutated real frames for the fuzz tests (tests/chaos/test_fuzz_parsers.py, tests/ingest/test_columnar_trades.py):
flipped, truncated and inserted bytes, JSON values swapped for other types and absurd numbers."""

from __future__ import annotations

import json
import random
from types import ModuleType
from typing import Any

import orjson
import pytest

from pipeline.ingest.capture import iter_capture
from pipeline.realdata import realdata_dir

# Values a hostile or broken venue might put anywhere: other JSON types, absurd numbers as numbers and as
# strings (OKX sends numbers as strings), huge integers, path tricks, very long strings.
HOSTILE: list[Any] = [
    None, True, False, 0, -1, 1e308, -1e308, 5e-324, 2**63, 2**70, -(2**63) - 1, "", "nan", "NaN", "inf", "-inf",
    "1e999", "-0", "0", "-1", "1e308", "99999999999999999999999", "../../etc/passwd", "BTC/USDT", "x" * 5000, [], {},
    [None], {"value": 1}, "buy", "sell", "\u0000", "🚀", " 1", "1_0", "0x10", "+5", "1.", "١",
]  # fmt: skip


def real_frames(venues: dict[str, ModuleType]) -> dict[str, list[str]]:
    """Every received frame of each venue's WebSocket recordings in ../shared/realdata ({} when absent)."""
    root = realdata_dir()
    if not root.is_dir():
        return {}
    out: dict[str, list[str]] = {}
    for venue in venues:
        frames: list[str] = []
        for path in sorted((root / venue).iterdir()):
            if ".rest." not in path.name:
                frames += [f.text for f in iter_capture(path) if f.direction == "recv"]
        assert len(frames) > 100, f"too few {venue} frames in {root / venue}"
        out[venue] = frames
    return out


def frames_or_skip(frames: dict[str, list[str]], venue: str) -> list[str]:
    if venue not in frames:
        pytest.skip(f"real recordings not found at {realdata_dir()}")
    return frames[venue]


def _leaves(node: Any, path: tuple = ()) -> list[tuple]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _leaves(v, (*path, k))] + [path]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _leaves(v, (*path, i))] + [path]
    return [path]


def _set(node: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    node[path[0]] = _set(node[path[0]], path[1:], value)
    return node


def mutate_bytes(data: bytes, rng: random.Random, steps: int) -> bytes:
    """Apply ``steps`` random mutations to a frame's bytes (the result may be invalid UTF-8)."""
    for _ in range(steps):
        kind = rng.randrange(6)
        if kind == 0 and data:  # flip a bit
            i = rng.randrange(len(data))
            data = data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1 :]
        elif kind == 1:  # truncate
            data = data[: rng.randrange(len(data) + 1)]
        elif kind == 2:  # insert bytes
            i = rng.randrange(len(data) + 1)
            data = data[:i] + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8))) + data[i:]
        else:  # swap a JSON value for another type / an absurd number (the frame stays valid JSON)
            try:
                msg = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            msg = _set(msg, rng.choice(_leaves(msg)), rng.choice(HOSTILE))
            try:
                data = orjson.dumps(msg)
            except TypeError:  # 2**70 and friends: orjson refuses big ints, the stdlib writes them
                data = json.dumps(msg, ensure_ascii=False).encode()
    return data


def mutate(text: str, rng: random.Random, steps: int) -> str:
    """``mutate_bytes`` for a text frame; the result is always a str (as a decoded WebSocket text frame is)."""
    for _ in range(steps):
        text = mutate_bytes(text.encode(), rng, 1).decode("utf-8", errors="replace")
    return text
