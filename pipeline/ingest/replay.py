"""Replay a recorded session through a venue parser: what ``cryptolake import FILE --venue`` runs.

Every received frame goes through ``venue.parse(text, ts_us, batch, source="capture")`` with the
recorded receive time (captures without timestamps, i.e. ccxt ``.jsonl``, use ``receive_clock``).
Frames the parser rejects, and capture lines that could not be read, become reject rows
(``REJECT_FIELDS`` order) holding the verbatim text: nothing is dropped silently.

Every frame is counted under its venue channel (``channels``: data frames as "rows", "reject", or
"control:<kind>"), so an import can show that each frame is accounted for. Book messages are verified in
arrival order (``pipeline.ingest.book_chain``), which also fills their ``session``; the breaks come back in
``book_breaks`` for the caller to record as gaps.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from pipeline.errors import FrameError
from pipeline.ingest.book_chain import BookBreak, BookVerifier
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
    # (venue channel family, outcome) -> frames; outcome "rows" | "reject" | "control:<kind>"; channel "-"
    # where the frame names none (pong, a JSON-RPC answer, an unreadable line)
    channels: Counter[tuple[str, str]] = field(default_factory=Counter)
    book_breaks: list[BookBreak] = field(default_factory=list)


# The venue channel a frame names (OKX arg.channel, Deribit params.channel): found without parsing the JSON
# again; it only labels the counts.
_CHANNEL = re.compile(r'"channel"\s*:\s*"([^"]{1,200})"')


class _Families:
    """Venue channel -> its family, instrument names replaced by ``{inst}`` (book.BTC-PERPETUAL.100ms ->
    book.{inst}.100ms, the venue module's own template spelling), memoised."""

    def __init__(self, market_of: Callable[[str], str]) -> None:
        self._market_of = market_of
        self._memo: dict[str, str] = {}

    def of(self, channel: str | None) -> str:
        if channel is None:
            return "-"
        family = self._memo.get(channel)
        if family is None:
            family = ".".join("{inst}" if self._is_instrument(part) else part for part in channel.split("."))
            if len(self._memo) < 10_000:
                self._memo[channel] = family
        return family

    def _is_instrument(self, part: str) -> bool:
        try:
            self._market_of(part)
        except ValueError:
            return False
        return True

    def of_frame(self, text: str, control: Control | None = None) -> str:
        if control is not None and control.channel is not None:
            return self.of(control.channel)
        found = _CHANNEL.search(text)
        return self.of(found.group(1) if found else None)


def iter_replay(
    path: str | Path,
    venue: str | ModuleType,
    receive_clock: Callable[[], int] | None = None,
    *,
    chunk_rows: int = 200_000,
    session_prefix: str = SOURCE,
) -> Iterator[ReplayResult]:
    """Replay in chunks of about ``chunk_rows`` rows (+ rejects), so a large capture never sits in memory
    whole. Each chunk has its own counters; the last chunk may be empty of rows but carries the tail.
    One ``BookVerifier`` follows the books across chunks; ``session_prefix`` starts the sessions it derives
    (the importer passes one made of the capture's content hash, so a re-import gives the same ids)."""
    module = get_venue(venue) if isinstance(venue, str) else venue
    name = module.NAME
    parse = module.parse
    clock = receive_clock or wall_clock_us
    families = _Families(module.market_of)
    verifier = BookVerifier(session_prefix)
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
                result.channels[families.of_frame(frame.text), "reject"] += 1
            else:
                if control is not None:
                    result.controls[control.kind] += 1
                    result.channels[families.of_frame(frame.text, control), "control:" + control.kind] += 1
                    if control.kind == "error":
                        result.venue_errors.append(control)
                else:
                    result.channels[families.of_frame(frame.text), "rows"] += 1
        elif direction == "bad":
            ts_us = frame.ts_us if frame.ts_us is not None else clock()
            reason = f"capture line {frame.line_no}: {frame.error}"
            result.rejects.append((name, ts_us, SOURCE, reason, frame.text))
            result.channels["-", "reject"] += 1
        if batch.row_count() + len(result.rejects) >= chunk_rows:
            result.book_breaks = verifier.verify(batch.books)
            yield result
            result = ReplayResult()
            batch = result.batch
    result.book_breaks = verifier.verify(batch.books)
    yield result


def replay_capture(
    path: str | Path,
    venue: str | ModuleType,
    receive_clock: Callable[[], int] | None = None,
    *,
    session_prefix: str = SOURCE,
) -> ReplayResult:
    """Replay a whole capture into one ``ReplayResult`` (see ``iter_replay`` for large files)."""
    parts = list(iter_replay(path, venue, receive_clock, chunk_rows=1 << 62, session_prefix=session_prefix))
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
        total.channels.update(part.channels)
        total.book_breaks.extend(part.book_breaks)
    return total


__all__ = ["ReplayResult", "iter_replay", "replay_capture", "wall_clock_us"]
