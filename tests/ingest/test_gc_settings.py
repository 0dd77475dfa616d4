"""The GC thresholds of the processes that hold a flush's book levels (stream and import): set by the stream's
allocator settings and by ``cryptolake import``."""

from __future__ import annotations

import argparse
import gc
from pathlib import Path

from pipeline.commands import import_capture
from pipeline.ingest import memory


def test_the_stream_settings_raise_the_young_gc_thresholds() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        memory.configure_allocators()
        assert gc.get_threshold() == memory.GC_THRESHOLDS
        assert memory.GC_THRESHOLDS[0] > 700 and gc.isenabled()  # fewer young collections, cycles still collected
    finally:
        gc.set_threshold(*before)


def test_import_sets_them_too(tmp_path: Path) -> None:
    before = gc.get_threshold()
    capture = tmp_path / "empty.ws.log"
    capture.write_text("")
    args = argparse.Namespace(
        lake=str(tmp_path / "lake"), file=capture, venue="okx", force=False, accept_truncated=False
    )
    try:
        gc.set_threshold(700, 10, 10)
        import_capture.run(args)
        assert gc.get_threshold() == memory.GC_THRESHOLDS
    finally:
        gc.set_threshold(*before)
