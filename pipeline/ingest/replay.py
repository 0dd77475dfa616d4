"""Replay a recorded session through a venue parser: what ``cryptolake import FILE --venue`` runs.

Every received frame goes through ``venue.parse(text, ts_us, batch, source="capture")`` with the
recorded receive time (captures without timestamps, i.e. ccxt ``.jsonl``, use ``receive_clock``).
Frames the parser rejects, and capture lines that could not be read, become reject rows
(``REJECT_FIELDS`` order) holding the verbatim text: nothing is dropped silently.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from pipeline.errors import FrameError
from pipeline.ingest.capture import iter_capture
from pipeline.venues import get_venue
from pipeline.venues.base import Control, ParsedBatch

SOURCE = "capture"


def wall_clock_us() -> int:
    return time.time_ns() // 1_000


@dataclass(slots=True)
class ReplayResult:
    batch: ParsedBatch = field(default_factory=ParsedBatch)
    rejects: list[tuple[Any, ...]] = field(default_factory=list)  # REJECT_FIELDS order
    controls: Counter[str] = field(default_factory=Counter)  # Control.kind -> count
    venue_errors: list[Control] = field(default_factory=list)  # Control("error") frames, for the log
    frames: int = 0  # received frames fed to the parser
    lines: Counter[str] = field(default_factory=Counter)  # capture direction -> count (recv, sent, ...)


def iter_replay(
    path: str | Path,
    venue: str | ModuleType,
    receive_clock: Callable[[], int] | None = None,
    *,
    chunk_rows: int = 200_000,
) -> Iterator[ReplayResult]:
    """Replay in chunks of about ``chunk_rows`` rows (+ rejects), so a large capture never sits in memory
    whole. Each chunk has its own counters; the last chunk may be empty of rows but carries the tail."""
    module = get_venue(venue) if isinstance(venue, str) else venue
    name = module.NAME
    parse = module.parse
    clock = receive_clock or wall_clock_us
    result = ReplayResult()
    batch = result.batch
    for frame in iter_capture(path):
        direction = frame.direction
        result.lines[direction] += 1
        if direction == "recv":
            ts_us = frame.ts_us if frame.ts_us is not None else clock()
            result.frames += 1
            try:
                control = parse(frame.text, ts_us, batch, SOURCE)
            except FrameError as exc:
                result.rejects.append((name, ts_us, SOURCE, exc.reason, frame.text))
            else:
                if control is not None:
                    result.controls[control.kind] += 1
                    if control.kind == "error":
                        result.venue_errors.append(control)
        elif direction == "bad":
            ts_us = frame.ts_us if frame.ts_us is not None else clock()
            reason = f"capture line {frame.line_no}: {frame.error}"
            result.rejects.append((name, ts_us, SOURCE, reason, frame.text))
        if batch.row_count() + len(result.rejects) >= chunk_rows:
            yield result
            result = ReplayResult()
            batch = result.batch
    yield result


def replay_capture(
    path: str | Path, venue: str | ModuleType, receive_clock: Callable[[], int] | None = None
) -> ReplayResult:
    """Replay a whole capture into one ``ReplayResult`` (see ``iter_replay`` for large files)."""
    parts = list(iter_replay(path, venue, receive_clock, chunk_rows=1 << 62))
    if len(parts) == 1:
        return parts[0]
    total = ReplayResult()
    for part in parts:
        total.batch.extend(part.batch)
        total.rejects.extend(part.rejects)
        total.controls.update(part.controls)
        total.venue_errors.extend(part.venue_errors)
        total.frames += part.frames
        total.lines.update(part.lines)
    return total


__all__ = ["ReplayResult", "iter_replay", "replay_capture", "wall_clock_us"]
