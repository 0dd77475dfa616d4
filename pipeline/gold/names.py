"""Names that become paths in a Qlib provider directory: dataset folders and instrument folders.

Qlib's reader maps an instrument code to its folder with ``code_to_fname(code).lower()``: Windows
device names (CON, PRN, AUX, NUL, COM0-9, LPT0-9) get a ``_qlib_`` prefix, everything else is only
lower-cased. ``instruments/all.txt`` holds the code upper-cased (what ``dump_bin.py`` writes). A name
with a path separator or ``..`` would make qlib read (and us write) outside the dataset, so it is
rejected here, before anything touches the file system.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pipeline.errors import UnsafeNameError

QLIB_PREFIX = "_qlib_"
RESERVED = frozenset({"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))})

# Separators and characters that break all.txt (tab, newline) or paths (NUL, ':' on Windows).
_FORBIDDEN = re.compile(r"[/\\\x00-\x1f:]")
_DATASET = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def check_instrument(name: str) -> str:
    """Return ``name`` if it is safe to become a folder; raise ``UnsafeNameError`` otherwise."""
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise UnsafeNameError(f"instrument name {name!r} is empty or has surrounding blanks")
    if _FORBIDDEN.search(name) or ".." in name or name.startswith("."):
        raise UnsafeNameError(
            f"instrument name {name!r} contains a path separator, '..', a control character or a leading '.';"
            " it cannot become a Qlib feature folder"
        )
    return name


def qlib_code(name: str) -> str:
    """The code Qlib lists in ``instruments/all.txt`` (upper case, as dump_bin writes it)."""
    return check_instrument(name).upper()


def feature_dir_name(name: str) -> str:
    """The folder under ``features/`` where Qlib's reader looks for this instrument."""
    code = check_instrument(name)
    if code.upper() in RESERVED:
        code = QLIB_PREFIX + code
    return code.lower()


def check_unique(names: Iterable[str]) -> None:
    """Two silver names that differ only in case would share one Qlib folder: refuse, do not merge."""
    seen: dict[str, str] = {}
    for name in names:
        folder = feature_dir_name(name)
        if folder in seen and seen[folder] != name:
            raise UnsafeNameError(f"instruments {seen[folder]!r} and {name!r} map to the same Qlib folder {folder!r}")
        seen[folder] = name


def dataset_name(venue: str, market: str) -> str:
    """``okx`` + ``swap`` -> ``okx-swap``: one Qlib provider directory per venue and market."""
    return check_dataset(f"{venue}-{market}".lower())


def check_dataset(name: str) -> str:
    if not _DATASET.match(name):
        raise UnsafeNameError(f"dataset name {name!r} must be lower-case letters, digits, '-' or '_' (e.g. okx-swap)")
    return name
