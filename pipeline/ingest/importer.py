"""Import a recorded capture into bronze through the same parsers the stream uses (source = capture).

A file is imported once: each table's commit carries a Delta application transaction named after the
file's content hash, and a table that already holds that transaction is skipped. A crash half-way through
an import therefore only re-imports the tables it had not reached.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import CryptolakeError
from pipeline.lake import writer
from pipeline.lake.location import Lake
from pipeline.lake.tables import BRONZE_CANDLES, BRONZE_QUOTES, BRONZE_REJECTS, BRONZE_TRADES


@dataclass
class ImportResult:
    frames: int = 0
    trades: int = 0
    quotes: int = 0
    candles: int = 0
    rejects: int = 0
    controls: int = 0
    skipped_tables: tuple[str, ...] = ()

    @property
    def already_imported(self) -> bool:
        return bool(self.skipped_tables) and self.trades + self.quotes + self.candles + self.rejects == 0


def content_id(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return "import-" + digest.hexdigest()[:24]


def import_capture(lake: Lake, path: Path, venue: str, *, force: bool = False) -> ImportResult:
    from pipeline.ingest.replay import replay_capture
    from pipeline.venues import get_venue

    get_venue(venue)  # a clear error for an unknown venue before reading anything
    if not path.is_file():
        raise CryptolakeError(f"capture file {path} does not exist or is not a file")
    app_id = content_id(path)
    replay = replay_capture(path, venue)
    result = ImportResult(frames=replay.frames, controls=sum(replay.controls.values()))
    skipped: list[str] = []
    for spec, rows, counter in (
        (BRONZE_QUOTES, replay.batch.quotes, "quotes"),
        (BRONZE_CANDLES, replay.batch.candles, "candles"),
        (BRONZE_REJECTS, replay.rejects, "rejects"),
        (BRONZE_TRADES, replay.batch.trades, "trades"),
    ):
        if not rows:
            continue
        done = writer.committed_version(lake, spec, app_id)
        if done is not None and not force:
            skipped.append(spec.key)
            continue
        writer.append(lake, spec, spec.from_rows(rows), txn=(app_id, (done or 0) + 1))  # type: ignore[misc]
        setattr(result, counter, len(rows))
    result.skipped_tables = tuple(skipped)
    return result
