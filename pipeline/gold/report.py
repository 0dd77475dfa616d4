"""What a gold run published, as the rows of the flow's table artifact: one row per dataset with its
publish mode, bars, calendars and the result of reading a sample back through Qlib."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pipeline.gold.publish import PublishReport


def publish_rows(report: PublishReport, read_back: Sequence[Mapping[str, object]]) -> list[dict[str, object]]:
    """``read_back``: the flow's per-dataset read-back results (``dataset``, ``checked_bars``,
    ``instruments``); a dataset missing there was not read back (no manifest)."""
    checked = {str(r["dataset"]): r for r in read_back}
    rows: list[dict[str, object]] = []
    for d in report.datasets:
        back = checked.get(d.dataset)
        rows.append(
            {
                "dataset": d.dataset,
                "mode": d.mode,
                "silver_version": report.silver_version,
                "bars_written": sum(d.bars.values()),
                "instruments": d.instruments,
                "calendars": ", ".join(f"{f}: {n:,}" for f, n in d.calendar_len.items()),
                "read_back_bars": back["checked_bars"] if back else 0,
                "read_back_instruments": back["instruments"] if back else 0,
                "read_back": "equals silver" if back else "not read back",
                "provider_uri": str(d.path),
            }
        )
    return rows
