"""What a silver run did: counts per table, quarantined rows per rule, failures, watermarks. The CLI prints
it, the flow turns it into events and a markdown artifact."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from pipeline.errors import CryptolakeError
from pipeline.silver.validate import RuleFailure


class ContractFailed(CryptolakeError):
    """A table-level contract failure (schema drift, failing share over the threshold): the run failed."""

    def __init__(self, failures: list[RuleFailure]) -> None:
        self.failures = failures
        what = "; ".join(f"{f.table} {f.rule} ({f.failed_rows:,}/{f.total_rows:,} rows)" for f in failures)
        super().__init__(f"contract failed: {what}")


@dataclass
class SilverReport:
    run_id: str
    now: dt.datetime
    horizon: dt.datetime
    bronze_rows: dict[str, int] = field(default_factory=dict)  # rows read from each bronze table
    good: dict[str, int] = field(default_factory=dict)  # rows of each bronze table that passed its contract
    written: dict[str, int] = field(default_factory=dict)  # "silver/trades" -> rows inserted, ...
    updated: dict[str, int] = field(default_factory=dict)  # bars restated (late data)
    duplicates: int = 0  # bronze trades already known (same key in the batch or in silver)
    quarantined: dict[str, int] = field(default_factory=dict)  # "table rule" -> rows
    failures: list[RuleFailure] = field(default_factory=list)
    watermarks: dict[str, int | None] = field(default_factory=dict)
    seconds: float = 0.0
    passes: int = 0  # a backlog over the run's max_rows is read in several passes

    def count(self, table: str, written: int, updated: int = 0) -> None:
        """Add one write's rows to the run's counts (a run may write a table once per pass)."""
        self.written[table] = self.written.get(table, 0) + written
        self.updated[table] = self.updated.get(table, 0) + updated

    @property
    def fatal(self) -> list[RuleFailure]:
        return [f for f in self.failures if f.fatal]

    @property
    def ok(self) -> bool:
        return not self.fatal

    def raise_for_fatal(self) -> None:
        if self.fatal:
            raise ContractFailed(self.fatal)

    def progress_line(self) -> str:
        """One line after a pass of a run that does a backlog in several passes."""
        read = ", ".join(f"{v:,} {k}" for k, v in self.bronze_rows.items() if v)
        marks = ", ".join(f"{k} v{v}" for k, v in self.watermarks.items())
        return f"silver run {self.run_id}: pass {self.passes} committed ({read} read so far; watermarks {marks}), more to read"

    def lines(self) -> list[str]:
        passes = f", {self.passes} passes" if self.passes > 1 else ""
        out = [f"silver run {self.run_id}: horizon {self.horizon:%Y-%m-%d %H:%M} UTC, {self.seconds:.2f} s{passes}"]
        out += [f"  read {k:<24} {v:>12,} new rows" for k, v in self.bronze_rows.items()]
        out += [f"  wrote {k:<23} {v:>12,} rows ({self.updated.get(k, 0):,} restated)" for k, v in self.written.items()]
        out.append(f"  duplicates dropped             {self.duplicates:>12,}")
        out += [f"  quarantined {k}: {v:,}" for k, v in self.quarantined.items()]
        out += [f"  FAILED {f.table} {f.rule}: {f.failed_rows:,}/{f.total_rows:,} rows" for f in self.fatal]
        out += [f"  watermark {k} = {v}" for k, v in self.watermarks.items()]
        return out

    def quality_rows(self) -> list[dict[str, object]]:
        """The data-quality table: one row per bronze table (the flow's artifact on every run)."""
        failed = {f.table for f in self.fatal}
        rows: list[dict[str, object]] = []
        for table, read in self.bronze_rows.items():
            rules = {k.split(" ", 1)[1]: v for k, v in self.quarantined.items() if k.split(" ", 1)[0] == table}
            rows.append(
                {
                    "table": table,
                    "rows_read": read,
                    "good": self.good.get(table, 0),
                    "quarantined": sum(rules.values()),
                    "quarantined_by_rule": "; ".join(f"{r}: {n:,}" for r, n in rules.items()) or "-",
                    # only trades are deduplicated (bars and quotes are upserts on their key)
                    "duplicates_dropped": self.duplicates if table == "bronze/trades" else 0,
                    "watermark": self.watermarks.get(table),
                    "status": "FAILED" if table in failed else "ok",
                }
            )
        return rows

    def markdown(self) -> str:
        head = "FAILED" if self.fatal else "ok"
        md = [
            f"# Silver run {self.run_id}: {head}",
            "",
            f"Horizon {self.horizon.isoformat()} (bars closed by then are published).",
            "",
        ]
        md += [
            "| table | new bronze rows |",
            "|---|---|",
            *[f"| {k} | {v:,} |" for k, v in self.bronze_rows.items()],
            "",
        ]
        md += ["| silver table | written | restated |", "|---|---|---|"]
        md += [f"| {k} | {v:,} | {self.updated.get(k, 0):,} |" for k, v in self.written.items()]
        if self.failures:
            md += [
                "",
                "## Contract failures",
                "",
                "| table | rule | failed rows | of | fatal | sample |",
                "|---|---|---|---|---|---|",
            ]
            for f in self.failures:
                sample = str(f.sample[:1]).replace("|", "\\|")[:200]
                md.append(
                    f"| {f.table} | `{f.rule}` | {f.failed_rows:,} | {f.total_rows:,} | {'yes' if f.fatal else 'no'} | {sample} |"
                )
        return "\n".join(md) + "\n"
