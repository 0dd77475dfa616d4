"""Backtest parameters: ``[backtest]`` of ``config/workflow.toml``, overridable per run.

Every key is checked (type and range); a wrong one raises ``ConfigError`` naming the key and the fix.
"""

from __future__ import annotations

import ast
import datetime as dt
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from pipeline.checks import config_number
from pipeline.errors import ConfigError
from pipeline.gold.names import check_dataset

WORKFLOW_ENV = "CRYPTOLAKE_WORKFLOW"
DEFAULT_WORKFLOW = Path(__file__).resolve().parents[2] / "config" / "workflow.toml"
FREQS = ("day", "60min", "1min")


@dataclass(frozen=True)
class BacktestConfig:
    dataset: str = "okx-swap"
    freq: str = "day"
    signal: str = "$close/Ref($close,20)-1"
    topk: int = 2
    n_drop: int = 1
    benchmark: str = "BTC-USDT-SWAP"
    start: str = ""
    end: str = ""
    account: float = 1_000_000.0
    open_cost: float = 0.001
    close_cost: float = 0.001
    min_cost: float = 0.0
    deal_price: str = "close"
    risk_degree: float = 0.95
    annualization_days: int = 365

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def workflow_path(path: str | Path | None = None) -> Path:
    return Path(path) if path is not None else Path(os.environ.get(WORKFLOW_ENV, DEFAULT_WORKFLOW))


# [gold] keys and what checks each; [backtest] keys are BacktestConfig's fields, checked by load_backtest_config.
GOLD_KEYS: dict[str, dict[str, Any]] = {
    "freqs": {},
    "keep_versions": {"integer": True, "minimum": 1},
    "sample_instruments": {"integer": True, "minimum": 1},
    "sample_bars": {"integer": True, "minimum": 1},
}
SECTIONS = ("gold", "backtest")


def load_workflow(path: str | Path | None = None) -> dict[str, Any]:
    """The whole workflow file as a dict (``{}`` if the default file is absent). Unknown sections and [gold]
    keys are refused (a misspelt ``freqz`` was silently ignored), and so are bad [gold] numbers."""
    file = workflow_path(path)
    if not file.is_file():
        if path is not None:
            raise ConfigError(
                str(file), "workflow file not found", "pass an existing TOML file or omit it for config/workflow.toml"
            )
        return {}
    try:
        raw = tomllib.loads(file.read_text("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(file), f"not valid TOML ({exc})", "fix the syntax") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(str(file), f"not a text file ({exc.reason})", "pass a TOML workflow file") from exc
    for section in sorted(set(raw) - set(SECTIONS)):
        raise ConfigError(
            f"{file}: [{section}]", "unknown section", "the known sections are " + ", ".join(f"[{s}]" for s in SECTIONS)
        )
    gold = raw.get("gold", {})
    for key in sorted(gold):
        if key not in GOLD_KEYS:
            raise ConfigError(f"gold.{key}", "unknown key", "use one of " + ", ".join(GOLD_KEYS))
        if GOLD_KEYS[key]:
            config_number(f"gold.{key}", gold[key], **GOLD_KEYS[key])
    return raw


def load_backtest_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> BacktestConfig:
    """``[backtest]`` from the workflow file, then ``overrides`` on top, every value checked."""
    values = dict(load_workflow(path).get("backtest", {}))
    values.update(overrides or {})
    known = {f.name: f.type for f in fields(BacktestConfig)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"backtest.{unknown[0]}", "unknown key", "use one of " + ", ".join(known))
    cfg = replace(BacktestConfig(), **{k: _coerce(k, v, type(getattr(BacktestConfig(), k))) for k, v in values.items()})
    _check(cfg)
    return cfg


def _coerce(key: str, value: Any, kind: type) -> Any:
    # Overrides arrive as strings from the command line (--set topk=3): convert to the field's type.
    try:
        if kind is bool or isinstance(value, bool):
            raise ValueError
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"backtest.{key}", f"{value!r} is not a {kind.__name__}", f"give a {kind.__name__}") from None


def _check(cfg: BacktestConfig) -> None:
    check_dataset(cfg.dataset)
    if cfg.freq not in FREQS:
        raise ConfigError(
            "backtest.freq", f"{cfg.freq!r} is not supported", "use day or 60min (1min works but is slow)"
        )
    if cfg.topk < 1 or not 0 <= cfg.n_drop <= cfg.topk:
        raise ConfigError(
            "backtest.topk/n_drop", f"topk={cfg.topk}, n_drop={cfg.n_drop}", "need topk >= 1 and 0 <= n_drop <= topk"
        )
    for key in ("open_cost", "close_cost", "min_cost"):
        if not 0 <= getattr(cfg, key) < 0.1:
            raise ConfigError(
                f"backtest.{key}", f"{getattr(cfg, key)} is outside [0, 0.1)", "fees are fractions: 0.001 = 10 bp"
            )
    config_number("backtest.account", cfg.account, above=0)  # NaN passed the comparisons below
    config_number("backtest.risk_degree", cfg.risk_degree, above=0, maximum=1)
    if cfg.account <= 0 or not 0 < cfg.risk_degree <= 1:
        raise ConfigError(
            "backtest.account/risk_degree", "account must be > 0 and risk_degree in (0, 1]", "e.g. 1000000 and 0.95"
        )
    if cfg.annualization_days not in (365, 252, 238):
        raise ConfigError(
            "backtest.annualization_days", f"{cfg.annualization_days}", "365 for crypto (252/238 for stock calendars)"
        )
    if not cfg.signal.strip() or not cfg.benchmark.strip():
        raise ConfigError("backtest.signal/benchmark", "empty", "give a Qlib expression and an instrument code")
    _check_signal(cfg.signal, cfg.dataset)
    start, end = _date("start", cfg.start), _date("end", cfg.end)
    if start is not None and end is not None and start >= end:
        raise ConfigError(
            "backtest.start/end", f"start {cfg.start} is not before end {cfg.end}", "give a start earlier than the end"
        )


def _check_signal(signal: str, dataset: str = "") -> None:
    """Qlib evaluates an expression as Python once each ``$field`` is a feature: check that syntax here, so a
    missing parenthesis is one line naming the key, not a SyntaxError from inside Qlib."""
    try:
        ast.parse(re.sub(r"\$\w+", "x", signal), mode="eval")
    except SyntaxError as exc:
        raise ConfigError(
            "backtest.signal",
            f"{signal!r} is not a valid expression ({exc.msg})",
            "write a Qlib expression such as $close/Ref($close,20)-1",
        ) from None
    from pipeline.gold.extra_fields import fields_for
    from pipeline.gold.source import FIELDS  # what gold publishes per instrument

    # A perpetual dataset (okx-swap) also has $funding, $oi, $basis, ...; spot, swap and future datasets the
    # book fields $spread, $imb1, $imb5, $microprice, $depth10, $depth50, $ofi, $book_cover (gold.extra_fields)
    known = (*FIELDS, *fields_for(dataset.split("-", 1)[-1]))
    unknown = sorted(set(re.findall(r"\$(\w+)", signal)) - set(known))
    if unknown:  # Qlib would read it as all-NaN and the signal would be "never defined"
        raise ConfigError(
            "backtest.signal",
            f"${unknown[0]} is not a field of the gold datasets",
            "use " + ", ".join(f"${f}" for f in known),
        )


def _date(key: str, text: str) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"backtest.{key}", f"{text!r} is not a date", 'use ISO 8601, e.g. 2026-01-01, or "" for the whole calendar'
        ) from None
