"""The library versions behind a benchmark's figures, printed with them: the same command moved by 30 % between
polars, deltalake or pyarrow releases, so a figure without its versions cannot be compared."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

LIBRARIES = ("polars", "deltalake", "pyarrow", "pandera", "numpy", "orjson", "pandas", "websockets", "ccxt")


def versions_line() -> str:
    """``python 3.11.7, polars 2.1.0, deltalake 1.6.6, ...`` for the libraries installed here."""
    parts = [f"python {platform.python_version()}"]
    for name in LIBRARIES:
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            parts.append(f"{name} (not installed)")
    return ", ".join(parts)


if __name__ == "__main__":
    print(versions_line())
