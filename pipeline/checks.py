"""One validation layer for the values people type: command-line options and configuration keys.

Every numeric option goes through ``number_problem`` so a new one cannot forget NaN, infinity, a sign or a
fraction where a count is meant (``float("nan")`` passes every ``<``/``>`` comparison as False, which is how
``--min-volume nan`` once end-dated a whole universe). ``Number(...)`` is the argparse ``type=`` for a
command-line option; ``config_number(...)`` raises ``ConfigError`` naming the key for a configuration file.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pipeline.errors import ConfigError

INT64_MAX = 2**63 - 1


def number_problem(
    value: object,
    *,
    integer: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
) -> str | None:
    """What is wrong with ``value`` as a finite number (an integer when ``integer``) within the bounds, or None.
    ``minimum``/``maximum`` are inclusive, ``above`` is exclusive."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{value!r} is not a number"
    if not math.isfinite(value):
        return f"{value!r} is not a finite number"
    if integer and (isinstance(value, float) and not value.is_integer()):
        return f"{value!r} is not a whole number"
    if integer and abs(value) > INT64_MAX:
        return f"{value!r} is too large"
    if minimum is not None and value < minimum:
        return f"{value!r} is below {minimum:g}"
    if maximum is not None and value > maximum:
        return f"{value!r} is above {maximum:g}"
    if above is not None and value <= above:
        return f"{value!r} must be greater than {above:g}"
    return None


def _bounds_text(integer: bool, minimum: float | None, maximum: float | None, above: float | None) -> str:
    kind = "a whole number" if integer else "a finite number"
    if minimum is not None and maximum is not None:
        return f"{kind} from {minimum:g} to {maximum:g}"
    if above is not None:
        return f"{kind} greater than {above:g}"
    if minimum is not None:
        return f"{kind} >= {minimum:g}"
    if maximum is not None:
        return f"{kind} <= {maximum:g}"
    return kind


@dataclass(frozen=True)
class Number:
    """An argparse ``type=`` for a numeric option: the parsed value, or a one-line error that says what fits."""

    integer: bool = False
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None

    @property
    def wanted(self) -> str:
        return _bounds_text(self.integer, self.minimum, self.maximum, self.above)

    def __call__(self, text: str) -> float | int:
        raw = text.strip()
        value: float | int
        try:
            value = int(raw) if self.integer else float(raw)
        except ValueError:
            try:  # "1e3" for a count is a whole number written as a float: fine; "1.5" is not
                as_float = float(raw)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{text!r} is not a number; give {self.wanted}") from None
            if number_problem(as_float, integer=True) is not None:
                raise argparse.ArgumentTypeError(f"{text!r} is not {self.wanted}") from None
            value = int(as_float)
        problem = number_problem(
            value, integer=self.integer, minimum=self.minimum, maximum=self.maximum, above=self.above
        )
        if problem:
            raise argparse.ArgumentTypeError(f"{problem}; give {self.wanted}")
        return value


def nonempty_list(text: str) -> tuple[str, ...]:
    """An argparse ``type=`` for a comma-separated list that must name at least one item."""
    items = tuple(part.strip() for part in text.split(",") if part.strip())
    if not items:
        raise argparse.ArgumentTypeError(f"{text!r} names nothing; give one or more comma-separated values")
    return items


PathKind = Literal["file", "folder", "new folder"]


@dataclass(frozen=True)
class PathArg:
    """An argparse ``type=`` for a path option. ``file``: an existing, readable file (what is inside is the
    reader's to judge); ``folder``: an existing folder; ``new folder``: a folder this command writes into,
    created if missing, so a file of that name, or a place that cannot be written, is refused. An empty
    value is refused everywhere: ``Path("")`` is the current folder, which nobody means."""

    kind: PathKind

    def __call__(self, text: str) -> Path:
        problem = path_problem(text, self.kind)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return Path(text).expanduser()


def path_problem(text: str, kind: PathKind) -> str | None:
    """What is wrong with ``text`` as a path of ``kind`` (see ``PathArg``), or None."""
    if not text.strip():
        return f"an empty path names nothing; give a {'file' if kind == 'file' else 'folder'}"
    path = Path(text).expanduser()
    if kind == "file":
        if path.is_dir():
            return f"{text!r} is a folder; give a file"
        if not path.exists():
            return f"{text!r} does not exist; give an existing file"
        if not os.access(path, os.R_OK):
            return f"{text!r} cannot be read; check its permissions"
        return None
    if path.exists() and not path.is_dir():
        created = " (created if missing)" if kind == "new folder" else ""
        return f"{text!r} is a file, not a folder; give a folder{created}"
    if kind == "folder":
        return None if path.exists() else f"{text!r} does not exist; give an existing folder"
    existing = next(p for p in (path, *path.parents) if p.exists())  # the root always exists
    if not existing.is_dir():
        return f"{text!r} cannot be created: {str(existing)!r} is a file; give another folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{text!r} cannot be written: {str(existing)!r} is not writable; give another folder"
    return None


def ws_url(text: str) -> str:
    """An argparse ``type=`` for a venue WebSocket base URL: ``ws://`` or ``wss://`` and a host, or "sim"."""
    raw = text.strip()
    if raw == "sim":
        return raw
    scheme, sep, rest = raw.partition("://")
    if not sep or scheme not in ("ws", "wss") or not rest.strip("/"):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a WebSocket URL; give wss://HOST[:PORT] (e.g. wss://ws.okx.com:8443) or sim"
        )
    return raw.rstrip("/")


def http_url(text: str) -> str:
    """An argparse ``type=`` for an HTTP base URL (a venue's REST API, a webhook): ``http(s)://`` and a host."""
    raw = text.strip()
    scheme, sep, rest = raw.partition("://")
    if not sep or scheme not in ("http", "https") or not rest.strip("/"):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an HTTP URL; give http(s)://HOST[:PORT], e.g. http://127.0.0.1:8765"
        )
    return raw.rstrip("/")


def config_number(
    key: str,
    value: object,
    *,
    integer: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
) -> None:
    """ConfigError naming ``key`` when ``value`` is not a number within the bounds."""
    problem = number_problem(value, integer=integer, minimum=minimum, maximum=maximum, above=above)
    if problem:
        raise ConfigError(key, problem, f"set {key} to {_bounds_text(integer, minimum, maximum, above)}")
