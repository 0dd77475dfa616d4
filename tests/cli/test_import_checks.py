"""`cryptolake import` decides from the file before writing (issue #20): a capture recorded from another venue is
refused, a truncated one is refused unless --accept-truncated, and a capture's identity is its content, gzipped
or not. Real recordings from ../shared/realdata, real Delta tables, the real CLI entry point."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.lake import writer
from pipeline.lake.location import Lake
from pipeline.lake.tables import BRONZE_QUOTES, BRONZE_TRADES
from tests.cli.kit import lake_bytes


@pytest.fixture
def okx_capture(realdata: Path, tmp_path: Path) -> Path:
    src = realdata / "okx" / "ccxt-2026-08.jsonl"
    if not src.is_file():
        pytest.skip(f"real recordings not found at {realdata}")
    return Path(shutil.copy(src, tmp_path / "okx.jsonl"))


def _run(lake: Lake, *args: str) -> int:
    return main(["--lake", lake.root, "import", *args])


def test_an_okx_recording_read_as_deribit_is_refused_and_not_marked_imported(lake, okx_capture, capsys) -> None:
    assert _run(lake, str(okx_capture), "--venue", "deribit") == 2
    err = capsys.readouterr().err
    assert "recorded from okx" in err and "--venue okx" in err and len(err.strip().splitlines()) == 1
    assert lake_bytes(Path(lake.root)) == {}  # nothing written, so the right import needs no --force
    assert _run(lake, str(okx_capture), "--venue", "okx") == 0
    assert "imported" in capsys.readouterr().out and writer.count_rows(lake, BRONZE_QUOTES) > 0


def test_the_same_capture_gzipped_is_the_same_capture(lake, okx_capture, capsys) -> None:
    zipped = okx_capture.with_suffix(".jsonl.gz")
    zipped.write_bytes(gzip.compress(okx_capture.read_bytes()))
    assert _run(lake, str(okx_capture), "--venue", "okx") == 0
    counts = {spec.key: writer.count_rows(lake, spec) for spec in (BRONZE_TRADES, BRONZE_QUOTES)}
    capsys.readouterr()
    assert _run(lake, str(zipped), "--venue", "okx") == 0
    assert "already imported" in capsys.readouterr().out
    assert {spec.key: writer.count_rows(lake, spec) for spec in (BRONZE_TRADES, BRONZE_QUOTES)} == counts


def test_a_truncated_gzip_capture_is_refused_unless_accepted(lake, okx_capture, capsys) -> None:
    whole = gzip.compress(okx_capture.read_bytes())
    torn = okx_capture.with_suffix(".jsonl.gz")
    torn.write_bytes(whole[: len(whole) * 2 // 3])  # a collector killed mid-write
    assert _run(lake, str(torn), "--venue", "okx") == 2
    err = capsys.readouterr().err
    assert "truncated" in err and "--accept-truncated" in err and len(err.strip().splitlines()) == 1
    assert lake_bytes(Path(lake.root)) == {}
    assert _run(lake, str(torn), "--venue", "okx", "--accept-truncated") == 0
    out = capsys.readouterr().out
    assert "imported" in out and writer.count_rows(lake, BRONZE_QUOTES) > 0
