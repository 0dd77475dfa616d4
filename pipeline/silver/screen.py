"""The one-pass contract screen: True only when pandera would find nothing wrong with a batch.

Pandera collects every check on its own (a pass over the data plus bookkeeping each, ~33 of them for
bronze/trades); the screen runs the same check functions of the same schema in one ``collect_all``. It
answers "fine" or "not sure", never "bad": on "not sure" pandera validates as always, so quarantine rows
and rule names are always pandera's.

This module is the one place the pipeline touches pandera's internals (``Check._check_fn``,
``_check_kwargs``, the built-in check registry, the model-check adapter, the backend registration), read
against pandera ``PANDERA_READ`` (pandera/backends/polars/{checks,base,components}.py,
pandera/api/base/model_components.py). It models an allow-list: a schema, column or check option set to
anything but its neutral value, a check kind or a backend it has no rule for, makes it answer "not sure".
A pandera upgrade can thus make silver slower (tests/silver/test_screen.py would say so), never wrong.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import pandera.polars as pa
import polars as pl
from pandera.api.function_dispatch import Dispatcher
from pandera.api.polars.types import PolarsData
from pandera.config import CONFIG

PANDERA_READ = "0.35.0"

Decided = Mapping[str, Callable[[], bool]]

# Options the screen evaluates, or that cannot change the verdict (names, docs, the shape of a report).
_SCHEMA_MODELLED = frozenset(
    {"columns", "checks", "strict", "unique", "report_duplicates", "name", "title", "description", "metadata"}
)
_COLUMN_MODELLED = frozenset(
    {"dtype", "checks", "nullable", "required", "name", "report_duplicates", "title", "description", "metadata"}
)
# native and determined_by_unique are read only by the narwhals and pandas backends (the screen refuses
# the narwhals one), statistics/statistics_args/strategy/constraint only by reports and data synthesis.
_CHECK_MODELLED = frozenset(
    {
        "check_fn",
        "check_kwargs",
        "ignore_na",
        "name",
        "error",
        "title",
        "description",
        "n_failure_cases",
        "statistics",
        "statistics_args",
        "strategy",
        "constraint",
        "native",
        "determined_by_unique",
    }
)
# The polars built-ins that return one boolean per row (unique_values_eq returns one bool: not modelled).
_BUILTINS = frozenset(
    {
        "equal_to",
        "not_equal_to",
        "greater_than",
        "greater_than_or_equal_to",
        "less_than",
        "less_than_or_equal_to",
        "in_range",
        "isin",
        "notin",
        "str_matches",
        "str_contains",
        "str_startswith",
        "str_endswith",
        "str_length",
    }
)
# A rule declared on a DataFrameModel (@pa.check / @pa.dataframe_check) becomes a Check whose function is
# this adapter around the model's method: the contract's own code, written to return a boolean LazyFrame.
_MODEL_CHECK = "BaseCheckInfo.to_check.<locals>._adapter"


def _neutral(obj: object, modelled: frozenset[str]) -> bool:
    """Every option of ``obj`` the screen does not model is unset: None, False, empty, or the default its
    constructor declares. An option pandera adds later is thus refused as soon as someone sets it."""
    defaults = {n: p.default for n, p in inspect.signature(type(obj).__init__).parameters.items()}
    for attr, value in vars(obj).items():
        name = attr.lstrip("_")
        if (
            name in modelled
            or value is None
            or value is False
            or (isinstance(value, list | tuple | dict | set) and not value)
        ):
            continue
        default = defaults.get(name, inspect.Parameter.empty)
        if isinstance(default, bool | int | float | str) and type(value) is type(default) and value == default:
            continue
        return False
    return True


def _runnable(chk: pa.Check) -> Callable[[PolarsData], Any] | None:
    """The function pandera's polars backend would call for ``chk`` (kwargs bound), or None when the
    screen has no rule for this check: an unknown kind, element-wise, a warning-only check, grouped."""
    if not _neutral(chk, _CHECK_MODELLED):
        return None
    fn = chk._check_fn
    name = getattr(fn, "__name__", None)
    if isinstance(fn, Dispatcher) and name in _BUILTINS and chk.is_builtin_check(name):
        # As Check.__call__ does: looked up again, so the polars variant register_default_backends added runs.
        fn = chk.get_builtin_check_fn(name)
    elif getattr(fn, "__qualname__", None) != _MODEL_CHECK:
        return None  # a bare pa.Check(fn) or an extension check: pandera's to run
    kwargs = chk._check_kwargs
    return lambda data: fn(data, **kwargs)


def _reduce(out: object, ignore_na: bool) -> pl.LazyFrame | None:
    """A check's output reduced to one "all rows pass" value the way pandera's polars backend reads it
    (several columns and-ed; a null a pass only with ignore_na); None for an output it does not model."""
    if not isinstance(out, pl.LazyFrame):
        return None
    schema = out.collect_schema()
    if len(schema) == 0 or any(t != pl.Boolean for t in schema.dtypes()):
        return None
    names = schema.names()
    ok = (
        pl.fold(acc=pl.lit(True), function=lambda acc, x: acc & x, exprs=pl.col("*"))
        if len(names) > 1
        else pl.col(names[0])
    )
    ok = (ok | ok.is_null()) if ignore_na else ok.fill_null(False)
    return out.select(ok.all().alias("ok"))


def _schema_known(schema: pa.DataFrameSchema) -> bool:
    if CONFIG.use_narwhals_backend:  # its check functions take other data objects
        return False
    if schema.strict not in (True, False) or not _neutral(schema, _SCHEMA_MODELLED):
        return False
    return all(_neutral(col, _COLUMN_MODELLED) for col in schema.columns.values())


def surely_passes(schema: pa.DataFrameSchema, df: pl.DataFrame, decided: Decided | None = None) -> bool:
    """True only when pandera would find nothing wrong with ``df``; False when something fails *or* the
    schema uses an option or check this does not model.

    ``decided``: dataframe checks the caller evaluates on ``df`` itself, by name (asked only once all other
    checks passed, so the caller's work overlaps theirs)."""
    if not _schema_known(schema):
        return False
    schema.register_default_backends(pl.LazyFrame)  # what validate() does first: the built-in checks
    names = set(df.columns)
    if set(schema.columns) - names or (schema.strict and names - set(schema.columns)):
        return False
    lf = df.lazy()
    parts: list[pl.LazyFrame] = []
    deferred: list[Callable[[], bool]] = []
    try:
        for name, col in schema.columns.items():
            if col.dtype is not None and not col.dtype.check(df.schema[name], PolarsData(lf.select(name), name)):
                return False
            if not col.nullable:
                present = pl.col(name).is_not_null()
                if df.schema[name].is_float():
                    present = present & pl.col(name).is_not_nan()
                parts.append(lf.select(present.all().alias("ok")))
            for chk in col.checks:
                run = _runnable(chk)
                reduced = _reduce(run(PolarsData(lf, name)), chk.ignore_na) if run is not None else None
                if reduced is None:
                    return False
                parts.append(reduced)
        for chk in schema.checks:
            run = _runnable(chk)
            if run is None:
                return False
            if decided and chk.name in decided:
                deferred.append(decided[chk.name])
                continue
            reduced = _reduce(run(PolarsData(lf, "*")), chk.ignore_na)
            if reduced is None:
                return False
            parts.append(reduced)
        if schema.unique:
            groups = [schema.unique] if all(isinstance(x, str) for x in schema.unique) else schema.unique
            for cols in groups:
                parts.append(
                    lf.select(pl.struct([c for c in cols if c in names]).is_duplicated().any().not_().alias("ok"))
                )
        results = pl.collect_all(parts)
        return all(r.item() is True for r in results) and all(verdict() is True for verdict in deferred)
    except Exception:  # noqa: BLE001 - a check that cannot run here is pandera's to report
        return False
