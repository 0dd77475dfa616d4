"""Run a pandera contract over a batch and split it: good rows go on, failing rows become quarantine rows
(one per failed rule, with the offending value and the whole row as JSON), and table-level problems
(schema drift, too large a failing share) are reported as fatal."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pandera.polars as pa
import polars as pl
from pandera.errors import SchemaErrors

from pipeline.lake.schemas import QUARANTINE_SCHEMA
from pipeline.silver.screen import Decided, surely_passes

QUARANTINE_POLARS = pl.Schema(pl.DataFrame(QUARANTINE_SCHEMA.empty_table()).schema)
SAMPLE_ROWS = 5


@dataclass(frozen=True)
class RuleFailure:
    """All failures of one rule in one table in one run (what an event and the artifact report)."""

    table: str
    rule: str
    failed_rows: int
    total_rows: int
    sample: list[dict[str, object]]
    fatal: bool = False


@dataclass
class Checked:
    table: str
    good: pl.DataFrame
    quarantine: pl.DataFrame  # QUARANTINE_SCHEMA
    failures: list[RuleFailure] = field(default_factory=list)

    @property
    def fatal(self) -> list[RuleFailure]:
        return [f for f in self.failures if f.fatal]


def _rule_name(fc: pl.DataFrame) -> pl.Expr:
    # Column checks are named "column:check"; dataframe (row) rules by their own name.
    return (
        pl.when(pl.col("schema_context") == "Column")
        .then(pl.col("column") + pl.lit(":") + pl.col("check"))
        .otherwise(pl.col("check"))
    )


def check(
    schema: pa.DataFrameSchema,
    df: pl.DataFrame,
    table: str,
    *,
    run_id: str,
    detected: dt.datetime,
    fail_share: float,
    decided: Decided | None = None,
) -> Checked:
    """Validate ``df`` (all checks, lazily collected) and split it. Never raises on bad data.

    ``decided``: {check name: a callable giving whether the check passes on every row of ``df``}, for
    dataframe checks the caller computes anyway with the contract's own function. A True skips the check;
    a False (or an error) has pandera run every check, so failing rows are still reported by pandera."""
    empty_q = pl.DataFrame(schema=QUARANTINE_POLARS)
    if df.height == 0:
        return Checked(table, df, empty_q)
    if surely_passes(schema, df, decided):  # pandera's own verdict costs ~33 passes over the data
        return Checked(table, df, empty_q)
    try:
        schema.validate(df, lazy=True)
        return Checked(table, df, empty_q)
    except SchemaErrors as exc:
        fc = exc.failure_cases
    fc = fc.with_columns(rule=_rule_name(fc))
    failures: list[RuleFailure] = []
    # Failures without a row index are about the table itself: a missing or retyped column.
    drift = fc.filter(pl.col("index").is_null())
    for rule, group in drift.group_by("rule", maintain_order=True):
        sample = [{"column": c, "found": f} for c, f in zip(group["column"], group["failure_case"], strict=True)]
        failures.append(RuleFailure(table, f"schema:{rule[0]}", df.height, df.height, sample, fatal=True))
    if drift.height:
        return Checked(table, df.head(0), empty_q, failures)

    rows = fc.select("index", "rule", "column", "check", "failure_case").with_columns(pl.col("index").cast(pl.Int64))
    bad_index = rows["index"].unique()
    bad = df.with_row_index("index").filter(pl.col("index").is_in(bad_index.implode()))
    bad = bad.with_columns(pl.col("index").cast(pl.Int64))
    as_json = bad.select(
        "index",
        row=pl.struct(list(df.columns)).struct.json_encode(),
        venue=pl.col("venue") if "venue" in df.columns else pl.lit(None, pl.String),
        instrument=pl.col("instrument") if "instrument" in df.columns else pl.lit(None, pl.String),
    )
    detected_us = detected.astimezone(dt.UTC)
    quarantine = (
        rows.join(as_json, on="index", how="left")
        .with_columns(
            table=pl.lit(table),
            run_id=pl.lit(run_id),
            detected_ts=pl.lit(detected_us, dtype=pl.Datetime("us", "UTC")),
            date=pl.lit(detected_us.date()),
        )
        .select(QUARANTINE_POLARS.names())
        .cast(dict(QUARANTINE_POLARS))
    )
    for rule, group in quarantine.group_by("rule", maintain_order=True):
        sample = [
            {"failure_case": r["failure_case"], "row": r["row"]} for r in group.head(SAMPLE_ROWS).iter_rows(named=True)
        ]
        failures.append(RuleFailure(table, str(rule[0]), group.height, df.height, sample))
    share = bad.height / df.height
    if share > fail_share:
        sample = [
            {"failed_rows": bad.height, "total_rows": df.height, "share": round(share, 6), "threshold": fail_share}
        ]
        failures.append(RuleFailure(table, "failing_share", bad.height, df.height, sample, fatal=True))
    good = df.with_row_index("__i").filter(~pl.col("__i").is_in(bad_index.cast(pl.UInt32).implode())).drop("__i")
    return Checked(table, good, quarantine, failures)


def good_rows(schema: pa.DataFrameSchema, df: pl.DataFrame) -> pl.DataFrame:
    """Only the rows that pass (for re-reads of bronze rows already quarantined when they were new)."""
    return check(schema, df, "", run_id="", detected=dt.datetime.now(dt.UTC), fail_share=1.0).good
