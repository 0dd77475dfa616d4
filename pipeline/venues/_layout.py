"""Frames in a venue's own byte layout, read without a JSON parser (the first tier of the columnar decoders).

A venue sends one kind of push in one byte layout: the same keys in the same order, no whitespace, values
in the same places. A ``Layout`` is that layout with a placeholder where each value goes; ``read`` finds
the frames of a batch that are the layout to the byte and cuts their values out as Arrow strings. The work
is numpy over the positions of the quote characters, done for all frames at once: a frame with ``k`` items
has a known number of quotes, and each byte outside the values sits at a known distance from one of them.

A frame matches only if every byte outside the values equals the layout and it holds no backslash (no
escapes to undo) and no control character (JSON allows none inside a string). A matching frame is then
valid JSON whose values are exactly the strings cut out, provided the caller checks the bare numbers it
gets as strings (``_columnar.json_ints``); the batch must be valid UTF-8 (checked first). Every
other frame is handed back to the next tier (pyarrow's JSON reader, then the per-frame parser), so a
venue that changes its layout costs speed, never rows.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np
import pyarrow as pa
from numpy.lib.stride_tricks import sliding_window_view

from pipeline.venues._columnar import check_utf8

STRING = "\x00"  # placeholder: the characters between a string value's quotes
NUMBER = "\x01"  # placeholder: a bare JSON number
MAX_ITEMS = 1_000  # frames with more items go to the next tier (OKX pushes a few trades a frame)

_NEWLINE, _SPACE, _QUOTE, _BACKSLASH = 10, 32, 34, 92
_PIECE = 16  # literal bytes are compared in rows of this many (one gather a row, two uint64 compares)
_PAD = bytes(_PIECE)


@dataclass(frozen=True)
class Layout:
    """``head`` + ``item`` x k joined by ``joiner`` + ``tail``; ``names`` name the placeholders of ``item``
    in order (placeholders in ``head`` are checked for shape and not returned)."""

    head: str
    item: str
    joiner: str
    tail: str
    names: tuple[str, ...]  # "" for a value the caller does not want

    def __post_init__(self) -> None:
        if self.item.count(STRING) + self.item.count(NUMBER) != len(self.names):
            raise ValueError("Layout: one name per placeholder of the item")
        if NUMBER in self.head or STRING in self.tail or NUMBER in self.tail:
            raise ValueError("Layout: bare numbers only in items, no values in the tail")
        quotes = [text.count('"') for text in (self.head, self.item, self.joiner, self.tail)]
        if any(q % 2 for q in quotes):
            raise ValueError("Layout: every part must hold whole strings")


@dataclass(slots=True)
class Read:
    """The values of the frames that match, one row per item, and which frames did not match."""

    values: dict[str, pa.Array]  # name -> string values, one per item of a matching frame
    frame_of_row: np.ndarray  # int64: the batch-local frame index of each row, ascending
    per_frame: np.ndarray  # bool per frame: not the layout, hand it to the next tier


def read(layout: Layout, frames: Sequence[bytes]) -> Read:
    """Match ``frames`` (as received) against ``layout``; the caller checks the values. Raises
    ``NotColumnar`` when the batch is not valid UTF-8."""
    n = len(frames)
    if not n:
        return _values(layout, b"", np.zeros(0, bool), np.zeros(0, np.int64), {})
    data = b"\n".join(chain(frames, (_PAD,)))  # the pad: a piece can be read from the last byte of a frame
    check_utf8(data)
    buf = np.frombuffer(data, np.uint8)[: len(data) - len(_PAD) - 1]
    pieces = sliding_window_view(np.frombuffer(data, np.uint8), _PIECE)  # the 16 bytes from each position
    starts, ends, quotes, first, unclean = _scan(frames, data, buf)
    n_quotes = np.diff(first, append=len(quotes))  # no quote between frames, only a newline
    shape = _Shape.of(layout)
    k, whole = np.divmod(n_quotes - shape.fixed_quotes, shape.item_quotes)
    ok = (whole == 0) & (k >= 1) & (k <= MAX_ITEMS) & (len(data) < 2**31)
    ok[unclean] = False
    spans: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for items in np.unique(k[ok]):
        group = np.flatnonzero(ok & (k == items))
        compiled = _compiled(layout, int(items))
        anchors = np.empty((len(group), compiled.columns), np.int64)
        anchors[:, 0] = starts[group]
        # The frame's quotes: rows of a sliding window over all quotes (row copies, not a gather per quote).
        anchors[:, 1:-1] = sliding_window_view(quotes, compiled.columns - 2)[first[group]]
        anchors[:, -1] = ends[group]
        good = compiled.matches(pieces, anchors)
        ok[group[~good]] = False
        if good.any():
            spans[int(items)] = (group[good], *compiled.value_spans(anchors[good]))
    return _values(layout, data, ok, k, spans)


def _scan(frames: Sequence[bytes], data: bytes, buf: np.ndarray) -> tuple[np.ndarray, ...]:
    """One pass over the batch: each frame's first byte and end (its newline, or the buffer's end), the
    positions of all quotes, the index of each frame's first quote among them, and the frames holding a
    backslash or a control character. Usually the only control characters are the newlines between frames,
    which then are the bounds; otherwise the frames' lengths say where they are."""
    n = len(frames)
    special = np.flatnonzero(buf <= _QUOTE)  # control characters, space, "!" and the quote
    kind = buf[special]
    is_quote = kind == _QUOTE
    quotes = special[is_quote]
    other = np.flatnonzero(~is_quote)  # indices into ``special``
    if len(other) == n - 1 and (kind[other] == _NEWLINE).all():  # one between frames, nothing else
        ends = np.append(special[other], len(buf))
        first = np.empty(n, np.int64)
        first[0], first[1:] = 0, other - np.arange(n - 1)  # quotes before each newline
        unclean = np.zeros(0, np.int64)
    else:
        lengths = np.fromiter(map(len, frames), np.int64, n)
        ends = np.cumsum(lengths + 1) - 1
        control = special[kind < _SPACE]
        frame = np.searchsorted(ends, control)
        unclean = frame[control != ends[frame]]  # not a newline between frames
        first = np.searchsorted(quotes, ends - lengths)
    starts = np.empty_like(ends)
    starts[0], starts[1:] = 0, ends[:-1] + 1
    if b"\\" in data:
        unclean = np.concatenate([unclean, np.searchsorted(ends, np.flatnonzero(buf == _BACKSLASH))])
    return starts, ends, quotes, first, unclean


@dataclass(frozen=True)
class _Shape:
    fixed_quotes: int  # quotes of a frame beyond k x item_quotes
    item_quotes: int  # quotes one more item adds (item + joiner)

    @staticmethod
    def of(layout: Layout) -> _Shape:
        head, item, joiner, tail = (text.count('"') for text in (layout.head, layout.item, layout.joiner, layout.tail))
        return _Shape(head + tail - joiner, item + joiner)


@functools.lru_cache(maxsize=64)
def _compiled(layout: Layout, items: int) -> _Compiled:
    return _Compiled.build(layout, items)


@dataclass(frozen=True)
class _Compiled:
    """The layout of a frame with a given number of items, as offsets from anchors. Anchor 0 is the frame's
    first byte, anchors 1..q its quotes in order, the last its end. Each run of literal bytes between two
    values is compared, 16 bytes at a time, at a fixed offset from one of its anchors (the anchor it starts
    at, or past a bare number the first one after it). A frame already has the layout's number of quotes,
    so once every run matches, its quotes are exactly where the layout has them: runs and values tile the
    frame. Left to check: a bare number is one character at least, and a frame ends where its last run does."""

    columns: int  # anchors per frame
    gap_number: np.ndarray  # gaps holding a bare number: at least ...
    gap_min: np.ndarray  # ... this long (one digit)
    end_from: int  # the frame's end must be this anchor ...
    end_offset: int  # ... plus this (0, 0: the last run is measured from the end itself)
    piece_anchor: np.ndarray  # per piece (16 bytes) of a run of literal bytes: its anchor ...
    piece_offset: np.ndarray  # ... and offset from it
    piece: np.ndarray  # (pieces, 2) uint64: the bytes expected there ...
    piece_mask: np.ndarray  # ... where the mask is set (runs shorter than a piece)
    value_gap: np.ndarray  # per returned value (item-major): the gap that holds it ...
    value_start: np.ndarray  # ... its first byte = anchor + value_start ...
    value_end: np.ndarray  # ... and its end = next anchor - value_end

    @staticmethod
    def build(layout: Layout, items: int) -> _Compiled:
        text = layout.head + layout.joiner.join([layout.item] * items) + layout.tail
        anchor_pos = [0] + [i for i, ch in enumerate(text) if ch == '"'] + [len(text)]
        gap_number, gap_min = [], []
        v_gap, v_start, v_end = [], [], []
        head_values = layout.head.count(STRING)
        seen_values = 0
        for g in range(len(anchor_pos) - 1):
            lo, hi = anchor_pos[g], anchor_pos[g + 1]
            gap = text[lo:hi]
            number = gap.find(NUMBER)
            if STRING in gap:
                if gap != '"' + STRING:
                    raise ValueError("Layout: a string placeholder stands alone between quotes")
                if seen_values >= head_values:
                    v_gap.append(g)
                    v_start.append(1)
                    v_end.append(0)
                seen_values += 1
            elif number >= 0:
                gap_number.append(g)
                gap_min.append(hi - lo)
                v_gap.append(g)
                v_start.append(number)
                v_end.append(hi - lo - number - 1)
                seen_values += 1
        p_anchor, p_offset, piece_bytes, piece_mask = [], [], [], []
        run_start = 0
        for end in [i for i, ch in enumerate(text) if ch in (STRING, NUMBER)] + [len(text)]:
            run = text[run_start:end].encode()
            # The anchor the run is measured from: the one it starts at, or after a number the next one.
            anchor = next(c for c, pos in enumerate(anchor_pos) if pos >= run_start)
            for at in sorted({*range(0, max(len(run) - _PIECE + 1, 1), _PIECE), max(len(run) - _PIECE, 0)}):
                piece = run[at : at + _PIECE]
                p_anchor.append(anchor)
                p_offset.append(run_start + at - anchor_pos[anchor])
                piece_bytes.append(piece.ljust(_PIECE, b"\0"))
                piece_mask.append(bytes([255] * len(piece)).ljust(_PIECE, b"\0"))
            run_start = end + 1
        end_from, end_offset = (anchor, len(text) - anchor_pos[anchor]) if anchor < len(anchor_pos) - 1 else (0, 0)
        as_int = functools.partial(np.asarray, dtype=np.int64)
        return _Compiled(
            columns=len(anchor_pos),
            gap_number=as_int(gap_number), gap_min=as_int(gap_min), end_from=end_from, end_offset=end_offset,
            piece_anchor=as_int(p_anchor), piece_offset=as_int(p_offset),
            piece=np.frombuffer(b"".join(piece_bytes), np.uint64).reshape(len(p_anchor), -1),
            piece_mask=np.frombuffer(b"".join(piece_mask), np.uint64).reshape(len(p_anchor), -1),
            value_gap=as_int(v_gap), value_start=as_int(v_start), value_end=as_int(v_end),
        )  # fmt: skip

    def matches(self, pieces: np.ndarray, anchors: np.ndarray) -> np.ndarray:
        """Per frame (a row of ``anchors``): whether it is the layout. ``pieces[i]``: the 16 bytes from i on."""
        gaps = anchors[:, self.gap_number + 1] - anchors[:, self.gap_number]
        ok = (gaps >= self.gap_min).all(axis=1)
        if self.end_offset:
            ok &= anchors[:, -1] - anchors[:, self.end_from] == self.end_offset
        where = np.clip(anchors[:, self.piece_anchor] + self.piece_offset, 0, len(pieces) - 1)  # clip: refused rows
        found = pieces[where].view(np.uint64)  # (frames, pieces, 2)
        ok &= ((found & self.piece_mask) == self.piece).all(axis=(1, 2))
        return ok

    def value_spans(self, anchors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(starts, ends) of the returned values, shape (frames, values of the frame), item-major."""
        return anchors[:, self.value_gap] + self.value_start, anchors[:, self.value_gap + 1] - self.value_end


def _values(layout: Layout, data: bytes, ok: np.ndarray, k: np.ndarray, spans: dict) -> Read:
    names = layout.names
    per_item = len(names)
    rows_of = np.where(ok, k, 0)
    row_start = np.cumsum(rows_of) - rows_of
    total = int(rows_of.sum())
    starts = np.empty((total, per_item), np.int64)
    ends = np.empty((total, per_item), np.int64)
    for items, (group, s, e) in spans.items():
        rows = (row_start[group][:, None] + np.arange(items)).ravel()
        starts[rows] = s.reshape(-1, per_item)
        ends[rows] = e.reshape(-1, per_item)
    if not total:
        empty = pa.array([], pa.string())
        return Read({name: empty for name in names if name}, np.zeros(0, np.int64), ~ok)
    buffer = pa.py_buffer(data)
    evens = pa.array(np.arange(0, 2 * total, 2))
    values = {}
    for j, name in enumerate(names):
        if not name:
            continue
        # Values j of all rows interleaved with the bytes between them: a valid string array over the batch
        # without a copy (offsets ascend); taking every other element copies out just the values.
        offsets = np.empty(2 * total, np.int32)
        offsets[0::2], offsets[1::2] = starts[:, j], ends[:, j]
        both = pa.Array.from_buffers(pa.string(), 2 * total - 1, [None, pa.py_buffer(offsets), buffer])
        values[name] = both.take(evens)
    return Read(values, np.repeat(np.arange(len(ok)), rows_of), ~ok)
