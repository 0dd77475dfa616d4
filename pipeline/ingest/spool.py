"""A local disk spool for flushes the lake refused.

Each failed flush becomes a folder ``<spool>/<flush_id>/`` holding one Arrow IPC file per table. Files are
written to a temporary name and renamed, so a crash never leaves half a file that replay would trust.
Replay happens oldest first, before any newer flush, so tables receive flushes in order.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

from pipeline.errors import CryptolakeError

_SUFFIX = ".arrow"


class Spool:
    def __init__(self, root: Path) -> None:
        self.root = root
        try:  # checked at start-up: a spool that cannot be written would lose the flushes it exists to keep
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CryptolakeError(
                f"the spool folder {root} cannot be created ({exc.strerror}): pass --spool-dir a writable local folder"
            ) from exc

    def put(self, flush_id: int, table_key: str, data: pa.Table) -> Path:
        folder = self.root / f"{flush_id:012d}"
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / (table_key.replace("/", "__") + _SUFFIX)
        tmp = final.with_suffix(".tmp")
        with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, data.schema) as writer:
            writer.write_table(data)
        os.replace(tmp, final)
        return final

    def pending(self) -> Iterator[tuple[int, str, Path]]:
        """(flush_id, table_key, file) oldest first."""
        # By number: a flush numbered from the clock (a start with the lake unreachable) has more digits.
        folders = (p for p in self.root.iterdir() if p.is_dir() and p.name.isdigit())
        for folder in sorted(folders, key=lambda p: int(p.name)):
            for file in sorted(folder.glob("*" + _SUFFIX)):
                yield int(folder.name), file.name[: -len(_SUFFIX)].replace("__", "/"), file

    @staticmethod
    def load(file: Path) -> pa.Table:
        with pa.memory_map(str(file), "r") as source:
            return ipc.open_file(source).read_all()

    def done(self, file: Path) -> None:
        file.unlink(missing_ok=True)
        folder = file.parent
        if folder != self.root and not any(folder.iterdir()):
            shutil.rmtree(folder, ignore_errors=True)

    def max_flush_id(self) -> int:
        ids = [int(p.name) for p in self.root.iterdir() if p.is_dir() and p.name.isdigit()]
        return max(ids, default=0)

    def rows_pending(self) -> int:
        return sum(ipc.open_file(pa.memory_map(str(f), "r")).read_all().num_rows for _, _, f in self.pending())

    def files_pending(self) -> int:
        return sum(1 for _ in self.pending())
