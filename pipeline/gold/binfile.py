"""Qlib feature files: little-endian float32, first value = start index in the calendar, then one value
per calendar slot up to the instrument's last bar, NaN for holes (the layout dump_bin.py writes)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

F32 = np.dtype("<f4")


def dense_series(slot_index: np.ndarray, values: np.ndarray) -> tuple[int, np.ndarray]:
    """Place ``values`` at calendar slots ``slot_index`` (sorted) on a dense NaN-padded float32 array.

    Returns (start index, array covering start..last slot), the shape of one .bin file."""
    start = int(slot_index[0])
    dense = np.full(int(slot_index[-1]) - start + 1, np.nan, dtype=F32)
    # float64 -> float32 rounds to nearest, as numpy's astype("<f") does inside dump_bin.
    dense[slot_index - start] = values.astype(F32)
    return start, dense


def write_series(path: Path, start: int, dense: np.ndarray) -> None:
    """Write one .bin file (new inode: never modifies a file another version links to)."""
    with open(path, "wb") as fp:
        np.asarray([start], dtype=F32).tofile(fp)
        dense.astype(F32, copy=False).tofile(fp)


def append_series(path: Path, *, expected_values: int, pad: int, dense: np.ndarray, shared: bool) -> None:
    """Append ``pad`` NaNs then ``dense`` after the first ``expected_values`` values of ``path``.

    Bytes past ``expected_values`` are leftovers of an interrupted publish and are cut first. When the
    file is ``shared`` (hard-linked from the live version) it is appended in place: the live version's
    calendar ends before the appended slots, and Qlib reads a series only up to the calendar's end, so
    the live version reads the same values as before. Otherwise the file is copied first (copy-on-write).
    """
    if not shared and path.exists():
        tmp = path.with_name(path.name + ".cow")
        shutil.copyfile(path, tmp)
        os.replace(tmp, path)
    with open(path, "r+b") as fp:
        fp.truncate(4 * (1 + expected_values))
        fp.seek(0, os.SEEK_END)
        if pad:
            np.full(pad, np.nan, dtype=F32).tofile(fp)
        dense.astype(F32, copy=False).tofile(fp)
