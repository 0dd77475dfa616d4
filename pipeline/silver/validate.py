"""Run a pandera contract over a batch and split it: good rows go on, failing rows become quarantine rows
(one per failed rule, with the offending value and the whole row as JSON), and table-level problems
(schema drift, too large a failing share) are reported as fatal."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData
from pandera.config import CONFIG
from pandera.errors import SchemaErrors

from pipeline.lake.schemas import QUARANTINE_SCHEMA

Decided = Mapping[str, Callable[[], bool]]
QUARANTINE_POLARS = pl.Schema(pl.from_arrow(QUARANTINE_SCHEMA.empty_table()).schema)  # type: ignore[union-attr]
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


def _reduce(out: pl.LazyFrame, ignore_na: bool) -> pl.LazyFrame:
    """A check's boolean output reduced to one "all rows pass" value, the way pandera's polars backend
    reads it (several columns are and-ed; a null counts as a pass only with ignore_na)."""
    names = out.collect_schema().names()
    ok = pl.fold(acc=pl.lit(True), function=lambda acc, x: acc & x, exprs=pl.col("*")) if len(names) > 1 else pl.col(names[0])
    ok = (ok | ok.is_null()) if ignore_na else ok.fill_null(False)
    return out.select(ok.all().alias("ok"))


def _check_fn(chk: pa.Check):
    # As Check.__call__ does: a built-in check's function is looked up again, so the polars variant
    # registered by register_default_backends is the one that runs.
    name = getattr(chk._check_fn, "__name__", None)
    return chk.get_builtin_check_fn(name) if name is not None and chk.is_builtin_check(name) else chk._check_fn


def _surely_passes(schema: pa.DataFrameSchema, df: pl.DataFrame, decided: Decided | None = None) -> bool:
    """True only when pandera would find nothing wrong with ``df``; False when something fails *or* the
    schema uses a feature this does not model: then pandera runs and reports as it always did.

    ``decided``: dataframe checks the caller evaluates on ``df`` itself, by name (asked only once all other
    checks passed, so the caller's work overlaps theirs).

    Pandera collects every check on its own (a pass over the data plus bookkeeping each, ~33 of them for
    bronze/trades); here the same check functions of the same schema run in one ``collect_all``. Any
    failing row, dtype or column still goes through pandera, so quarantine rows and rule names are
    pandera's."""
    if CONFIG.use_narwhals_backend:  # its check functions take other data objects
        return False
    schema.register_default_backends(pl.LazyFrame)  # what validate() does first: the built-in checks
    if schema.coerce or schema.ordered or schema.strict not in (True, False) or schema.add_missing_columns:
        return False
    if getattr(schema, "drop_invalid_rows", False) or getattr(schema, "parsers", None):
        return False
    names = set(df.columns)
    if set(schema.columns) - names or (schema.strict and names - set(schema.columns)):
        return False
    lf = df.lazy()
    parts: list[pl.LazyFrame] = []
    try:
        for name, col in schema.columns.items():
            if col.coerce or col.regex or col.unique or getattr(col, "drop_invalid_rows", False) or getattr(col, "parsers", None):
                return False
            if col.dtype is not None and not col.dtype.check(df.schema[name], PolarsData(lf.select(name), name)):
                return False
            if not col.nullable:
                present = pl.col(name).is_not_null()
                if df.schema[name].is_float():
                    present = present & pl.col(name).is_not_nan()
                parts.append(lf.select(present.all().alias("ok")))
            for chk in col.checks:
                if chk.element_wise or chk.raise_warning:
                    return False
                out = _check_fn(chk)(PolarsData(lf, name), **chk._check_kwargs)
                if not isinstance(out, pl.LazyFrame):
                    return False
                parts.append(_reduce(out, chk.ignore_na))
        deferred = []
        for chk in schema.checks:
            if decided and chk.name in decided:
                deferred.append(decided[chk.name])
                continue
            if chk.element_wise or chk.raise_warning:
                return False
            out = _check_fn(chk)(PolarsData(lf, "*"), **chk._check_kwargs)
            if not isinstance(out, pl.LazyFrame):
                return False
            parts.append(_reduce(out, chk.ignore_na))
        if schema.unique:
            groups = [schema.unique] if all(isinstance(x, str) for x in schema.unique) else schema.unique
            for cols in groups:
                parts.append(lf.select(pl.struct([c for c in cols if c in names]).is_duplicated().any().not_().alias("ok")))
        results = pl.collect_all(parts)
        return all(r.item() is True for r in results) and all(verdict() is True for verdict in deferred)
    except Exception:  # noqa: BLE001 - a check that cannot run here is pandera's to report
        return False


def check(
    schema: pa.DataFrameSchema, df: pl.DataFrame, table: str, *, run_id: str, detected: dt.datetime, fail_share: float,
    decided: Decided | None = None,
) -> Checked:
    """Validate ``df`` (all checks, lazily collected) and split it. Never raises on bad data.

    ``decided``: {check name: a callable giving whether the check passes on every row of ``df``}, for
    dataframe checks the caller computes anyway with the contract's own function. A True skips the check;
    a False (or an error) has pandera run every check, so failing rows are still reported by pandera."""
    empty_q = pl.DataFrame(schema=QUARANTINE_POLARS)
    if df.height == 0:
        return Checked(table, df, empty_q)
    if _surely_passes(schema, df, decided):
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
        row=pl.struct([c for c in df.columns]).struct.json_encode(),
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
        sample = [{"failure_case": r["failure_case"], "row": r["row"]} for r in group.head(SAMPLE_ROWS).iter_rows(named=True)]
        failures.append(RuleFailure(table, str(rule[0]), group.height, df.height, sample))
    share = bad.height / df.height
    if share > fail_share:
        sample = [{"failed_rows": bad.height, "total_rows": df.height, "share": round(share, 6), "threshold": fail_share}]
        failures.append(RuleFailure(table, "failing_share", bad.height, df.height, sample, fatal=True))
    good = df.with_row_index("__i").filter(~pl.col("__i").is_in(bad_index.cast(pl.UInt32).implode())).drop("__i")
    return Checked(table, good, quarantine, failures)


def good_rows(schema: pa.DataFrameSchema, df: pl.DataFrame) -> pl.DataFrame:
    """Only the rows that pass (for re-reads of bronze rows already quarantined when they were new)."""
    return check(schema, df, "", run_id="", detected=dt.datetime.now(dt.UTC), fail_share=1.0).good
