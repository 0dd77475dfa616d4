"""The flush's decoding of raw trade frames (``RawFrames``): columnar in chunks where the venue's decoder
accepts them, the per-frame parser for every frame it hands back, rows in arrival order.

A venue's columnar decoders are tiers (OKX: its exact byte layout, then pyarrow's JSON reader): each takes
the frames the one before handed back, and the per-frame parser takes the rest. A chunk a tier refuses as
a whole (one frame of invalid JSON is enough for the JSON reader) is split in two until the pieces are
small, then goes to the next tier, so one bad frame costs a few small reads, not the batch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.ingest.flusher import convert_rows
from pipeline.ingest.frames import parse_frame
from pipeline.ingest.rawframes import RawFrames
from pipeline.lake import batches
from pipeline.lake.schemas import TRADES_SCHEMA
from pipeline.lake.tables import BRONZE_TRADES
from pipeline.venues._columnar import Decoded, NotColumnar
from pipeline.venues.base import Control, ParsedBatch, Venue

Decoder = Callable[[Sequence[bytes]], Decoded]  # a venue's columnar tier (``<venue>_columnar.DECODERS``)
CHUNK_FRAMES = 32_768  # one chunk per flush at the default flush_rows; fewer, larger reads are cheaper
MIN_SPLIT = 64  # a refused piece this small goes to the next tier instead of being halved again


def columnar_for(venue: Venue) -> ModuleType | None:
    """The venue's columnar trade decoder (``pipeline.venues.<name>_columnar``), if it has one."""
    try:
        return importlib.import_module(f"pipeline.venues.{venue.NAME}_columnar")
    except ModuleNotFoundError:
        return None


@dataclass
class DecodedTrades:
    trades: pa.Table  # bronze/trades rows in arrival order
    other: ParsedBatch = field(default_factory=ParsedBatch)  # quotes/candles of frames parsed one by one
    rejects: list[tuple[Any, ...]] = field(default_factory=list)
    controls: list[Control] = field(default_factory=list)
    per_frame: int = 0  # frames every columnar tier handed back (parsed one by one)
    slow: int = 0  # frames the venue's first (fastest) tier did not take: many means its wire format moved


class _Parts:
    def __init__(self) -> None:
        self.tables: list[pa.Table] = []
        self.frame_of_row: list[np.ndarray] = []
        self.ordered = True  # False once a later tier added rows of frames before rows already added
        self.last_frame = -1

    def add(self, table: pa.Table, frames: np.ndarray) -> None:
        if not table.num_rows:
            return
        if frames[0] < self.last_frame:
            self.ordered = False
        self.last_frame = max(self.last_frame, int(frames[-1]))
        self.tables.append(table)
        self.frame_of_row.append(frames)

    def table(self) -> pa.Table:
        if not self.tables:
            return TRADES_SCHEMA.empty_table()
        table = pa.concat_tables(self.tables)
        if not self.ordered:
            order = np.argsort(np.concatenate(self.frame_of_row), kind="stable")
            table = table.take(pa.array(order))
        return table


def decode(venue: Venue, raw: RawFrames, source: str = "ws") -> DecodedTrades:
    """All frames of ``raw`` -> bronze/trades rows (+ whatever handed-back frames held, + rejects). Trade rows
    of frames parsed one by one that Arrow cannot store go to rejects (``flusher.convert_rows``)."""
    return _Decoding(venue, raw, source).run()


class _Decoding:
    def __init__(self, venue: Venue, raw: RawFrames, source: str) -> None:
        self.venue, self.raw, self.source = venue, raw, source
        self.receive_ts = np.frombuffer(raw.receive_ts, dtype=np.int64) if len(raw) else np.zeros(0, np.int64)
        self.out = DecodedTrades(TRADES_SCHEMA.empty_table())
        self.parts = _Parts()

    def run(self) -> DecodedTrades:
        columnar = columnar_for(self.venue)
        n = len(self.raw)
        for lo in range(0, n, CHUNK_FRAMES):
            chunk = np.arange(lo, min(n, lo + CHUNK_FRAMES))
            if columnar is None:
                self.out.slow += len(chunk)
                self.per_frame(chunk)
            else:
                self.tiers(columnar.DECODERS, chunk, first=True)
        self.out.trades = self.parts.table()
        return self.out

    def tiers(self, decoders: tuple[Decoder, ...], frames: np.ndarray, first: bool = False) -> None:
        """``frames`` (indices into ``raw``, ascending) through the first decoder; what it hands back, or a
        small piece it refuses as a whole, through the next; after the last, the per-frame parser.
        ``first``: ``decoders`` are all the venue's tiers (what they pass on counts as slow)."""
        if not decoders:
            self.per_frame(frames)
            return
        try:
            decoded = decoders[0](self.raw.select(frames))
            rows = frames[decoded.frame_of_row]
            n = len(rows)
            columns = {
                **decoded.columns,
                "venue": pa.repeat(pa.scalar(self.venue.NAME), n),
                "source": pa.repeat(pa.scalar(self.source), n),
                "receive_ts_us": pa.array(self.receive_ts[rows]),
            }
            table = batches.trades_table_from_columns(columns)
        except (NotColumnar, pa.ArrowException):  # e.g. a timestamp that overflows: the row path rejects it
            if len(frames) <= MIN_SPLIT:
                self.out.slow += len(frames) if first else 0
                self.tiers(decoders[1:], frames)
            else:
                mid = len(frames) // 2
                self.tiers(decoders, frames[:mid], first)
                self.tiers(decoders, frames[mid:], first)
            return
        self.parts.add(table, rows)
        handed = frames[decoded.per_frame]
        if handed.size:
            self.out.slow += handed.size if first else 0
            self.tiers(decoders[1:], handed)

    def per_frame(self, indices: Any) -> None:
        out = self.out
        batch = out.other
        rows: list[tuple[Any, ...]] = []
        frames: list[int] = []
        for i in indices:
            i = int(i)
            before = len(batch.trades)
            control = parse_frame(
                self.venue, self.raw.frame(i), int(self.receive_ts[i]), batch, out.rejects, self.source
            )
            added = len(batch.trades) - before
            if added:
                rows.extend(batch.trades[before:])
                frames.extend([i] * added)
                del batch.trades[before:]
            if control is not None:
                out.controls.append(control)
            out.per_frame += 1
        if rows:
            done = convert_rows(BRONZE_TRADES, rows, self.venue.NAME, self.source)
            out.rejects.extend(done.rejects)
            if done.table is not None:
                self.parts.add(done.table, np.asarray(frames, dtype=np.int64)[done.kept])
