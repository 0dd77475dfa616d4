"""Import a recorded capture into bronze through the same parsers the stream uses (source = capture).

A file is imported once: each table's commit carries a Delta application transaction named after the
file's content hash (of the content decompressed, so the same recording gzipped or plain is one capture), and
a table that already holds that transaction is skipped. A crash half-way through an import therefore only
re-imports the tables it had not reached.

The file is judged before anything is written: a capture whose URLs name another venue's protocol is refused
(every frame would be a reject and the file marked imported), and so is a truncated one unless the caller
accepts the readable part.

Book messages are verified in order as they are replayed (chain, checksum, crossing: see
``pipeline.ingest.book_chain``), with sessions derived from the content hash; each break becomes a
``bronze/gaps`` row of kind "book". The result counts every frame per venue channel.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.errors import CryptolakeError
from pipeline.ingest.capture import CaptureSurvey, survey
from pipeline.lake import writer
from pipeline.lake.location import Lake
from pipeline.lake.tables import BRONZE_GAPS, BRONZE_REJECTS
from pipeline.venues import VENUES, get_venue
from pipeline.venues.base import BATCH_TABLES


@dataclass
class ImportResult:
    frames: int = 0
    trades: int = 0
    quotes: int = 0
    candles: int = 0
    books: int = 0  # book_deltas rows (one per level per book message)
    derivatives: int = 0
    liquidations: int = 0
    rejects: int = 0
    controls: int = 0
    gaps: int = 0  # book breaks recorded in bronze/gaps (kind "book")
    skipped_tables: tuple[str, ...] = ()
    # (venue channel family, outcome) -> frames; outcome "rows" | "reject" | "control:<kind>" (see replay)
    channels: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def already_imported(self) -> bool:
        return bool(self.skipped_tables) and self.rows() + self.rejects == 0

    def rows(self) -> int:
        return sum(getattr(self, name) for name, _ in BATCH_TABLES)

    def summary(self) -> str:
        """Rows per table (those written), rejects and book gaps: "74 trades, 36 quotes, 5,123 book rows, ..."."""
        names = {"books": "book rows"}
        parts = [f"{getattr(self, n):,} {names.get(n, n)}" for n, _ in BATCH_TABLES if getattr(self, n)]
        parts.append(f"{self.rejects:,} rejects")
        if self.gaps:
            parts.append(f"{self.gaps:,} book gaps")
        return ", ".join(parts)

    def channel_lines(self) -> list[str]:
        """One line per venue channel: its frames as data, rejects and controls by kind."""
        per: dict[str, Counter[str]] = {}
        for (channel, outcome), n in self.channels.items():
            per.setdefault(channel, Counter())[outcome] += n
        lines = []
        for channel in sorted(per):
            counts = per[channel]
            parts = [f"{counts[k]:,} {k}" for k in ("rows", "reject") if counts[k]]
            parts += [f"{n:,} {k}" for k, n in sorted(counts.items()) if k.startswith("control:")]
            lines.append(f"{channel}: {sum(counts.values()):,} frames ({', '.join(parts)})")
        return lines


def recorded_venues(urls: frozenset[str]) -> set[str]:
    """The venues whose protocol the recorded URLs name (empty when none says: a bare host and port)."""
    return {name for name in VENUES for url in urls if any(m in url for m in get_venue(name).CAPTURE_URL_MARKERS)}


def check_capture(path: Path, venue: str, *, accept_truncated: bool = False) -> CaptureSurvey:
    """Refuse, before anything is written, a capture that is another venue's or is cut short."""
    facts = survey(path)
    named = recorded_venues(facts.urls)
    if named and venue not in named:
        example = sorted(u for u in facts.urls if any(m in u for m in get_venue(sorted(named)[0]).CAPTURE_URL_MARKERS))[
            0
        ]
        raise CryptolakeError(
            f"{path} was recorded from {' and '.join(sorted(named))} ({example}), not {venue}: "
            f"import it with --venue {sorted(named)[0]}"
        )
    if facts.truncated and not accept_truncated:
        raise CryptolakeError(
            f"{path} is truncated ({facts.truncated}); nothing was imported. "
            "Pass --accept-truncated to import the readable part (the cut line becomes a reject)"
        )
    return facts


def import_capture(
    lake: Lake, path: Path, venue: str, *, force: bool = False, accept_truncated: bool = False
) -> ImportResult:
    from pipeline.ingest.replay import replay_capture

    venue_name = get_venue(venue).NAME  # a clear error for an unknown venue before reading anything
    if not path.is_file():
        raise CryptolakeError(f"capture file {path} does not exist or is not a file")
    content_id = check_capture(path, venue_name, accept_truncated=accept_truncated).content_sha256[:24]
    app_id = "import-" + content_id
    # Book sessions named after the content, so the same recording always gives the same ids.
    replay = replay_capture(path, venue, session_prefix="capture-" + content_id[:16])
    result = ImportResult(
        frames=replay.frames, controls=sum(replay.controls.values()), channels=Counter(replay.channels)
    )
    skipped: list[str] = []
    # Convert every table before writing any: a row the parser let through but Arrow cannot hold (an
    # exchange ts of 10**23 ms) becomes a reject with the reason instead of crashing the whole import
    # (it did: OverflowError out of `cryptolake import`), the same rule the stream's Flusher applies.
    rejects = list(replay.rejects)
    converted = []
    # Quotes, candles and the rest first, trades last: the order imports have always committed in.
    for counter, spec in sorted(BATCH_TABLES, key=lambda pair: pair[0] == "trades"):
        rows = getattr(replay.batch, counter)
        converted.append((spec, _convertible(spec, rows, rejects, venue_name), counter))
    converted.insert(2, (BRONZE_REJECTS, BRONZE_REJECTS.from_rows(rejects) if rejects else None, "rejects"))  # type: ignore[misc]  # from_rows is a callable field of the frozen TableSpec; mypy takes it for a method
    gaps = [
        b.gap_row(b.to_ts_ms * 1000) for b in replay.book_breaks
    ]  # at the break's own time: a re-import writes the same rows
    converted.insert(3, (BRONZE_GAPS, BRONZE_GAPS.from_rows(gaps) if gaps else None, "gaps"))  # type: ignore[misc]  # as above
    for spec, data, counter in converted:
        if data is None:
            continue
        done = writer.committed_version(lake, spec, app_id)
        if done is not None and not force:
            skipped.append(spec.key)
            continue
        writer.append(lake, spec, data, txn=(app_id, (done or 0) + 1))
        setattr(result, counter, data.num_rows)
    result.skipped_tables = tuple(skipped)
    return result


def _convertible(spec: Any, rows: list[tuple[Any, ...]], rejects: list[tuple[Any, ...]], venue: str) -> pa.Table | None:
    """The Arrow table of the ``rows`` Arrow accepts; each one it refuses is appended to ``rejects``."""
    if not rows:
        return None
    try:
        return spec.from_rows(rows)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        pass
    good = []
    for row in rows:
        try:
            spec.from_rows([row])
            good.append(row)
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
            rejects.append(
                (venue, time.time_ns() // 1000, "capture", f"unconvertible {spec.key} row: {exc}", repr(row))
            )
    return spec.from_rows(good) if good else None
