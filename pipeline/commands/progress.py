"""A plain stderr progress bar for long commands (no dependency): redrawn in place on a terminal, one
line at most every few seconds otherwise (logs, CI, a test reading the output)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    def __init__(self, label: str, *, stream: TextIO | None = None, width: int = 28, quiet: bool = False) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.quiet = quiet
        self.tty = self.stream.isatty()
        self._last = 0.0
        self._drawn = False

    def update(self, done: int, total: int, text: str = "") -> None:
        if self.quiet:
            return
        now = time.monotonic()
        final = done >= total
        if not final and now - self._last < (0.1 if self.tty else 2.0):
            return
        self._last = now
        frac = done / total if total else 1.0
        filled = int(frac * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        line = f"{self.label} [{bar}] {done}/{total} {frac:6.1%} {text}"
        if self.tty:
            self.stream.write("\r" + line[:160].ljust(100))
            self._drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._drawn and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
