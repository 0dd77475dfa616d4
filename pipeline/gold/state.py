"""The manifest each published dataset version carries (``cryptolake.json`` beside ``calendars/``).

Qlib never reads it. It records, per frequency, the calendar length and last slot and, per instrument,
where its series starts and ends and its last close (float64, for ``change`` of the next bar), plus
the silver Delta version the dataset was built from (and those of the extra fields' tables). That is
everything an incremental publish needs, without re-reading history. The file is deterministic (sorted keys), so an incremental publish and a
full rebuild of the same silver version write the same bytes here too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST = "cryptolake.json"
FORMAT = 1


@dataclass(frozen=True)
class Series:
    start: int  # calendar index of the first bar
    end: int  # calendar index of the last bar (the file holds end - start + 1 values)
    first_us: int
    last_us: int
    last_close: float

    @property
    def length(self) -> int:
        return self.end - self.start + 1


@dataclass
class FreqState:
    calendar_len: int = 0
    last_us: int = -1
    series: dict[str, Series] = field(default_factory=dict)  # silver instrument name -> series


@dataclass
class Manifest:
    dataset: str
    venue: str
    market: str
    silver_version: int
    freqs: dict[str, FreqState] = field(default_factory=dict)
    # Delta version of each silver table the extra fields came from (pipeline.gold.extra_fields; -1: absent)
    sources: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> bytes:
        doc = {
            "format": FORMAT,
            "dataset": self.dataset,
            "venue": self.venue,
            "market": self.market,
            "silver_version": self.silver_version,
            "sources": self.sources,
            "freqs": {
                f: {
                    "calendar_len": s.calendar_len,
                    "last_us": s.last_us,
                    "series": {k: [v.start, v.end, v.first_us, v.last_us, v.last_close] for k, v in s.series.items()},
                }
                for f, s in self.freqs.items()
            },
        }
        return json.dumps(doc, sort_keys=True, indent=1).encode("utf-8") + b"\n"

    @classmethod
    def load(cls, folder: Path) -> Manifest | None:
        """The manifest of a published version, or None when there is none (or an older format)."""
        try:
            doc = json.loads((folder / MANIFEST).read_text("utf-8"))
        except (OSError, ValueError):
            return None
        if doc.get("format") != FORMAT:
            return None
        freqs = {
            f: FreqState(
                calendar_len=int(s["calendar_len"]),
                last_us=int(s["last_us"]),
                series={
                    k: Series(int(v[0]), int(v[1]), int(v[2]), int(v[3]), float(v[4])) for k, v in s["series"].items()
                },
            )
            for f, s in doc["freqs"].items()
        }
        sources = {str(k): int(v) for k, v in doc.get("sources", {}).items()}
        return cls(doc["dataset"], doc["venue"], doc["market"], int(doc["silver_version"]), freqs, sources)
