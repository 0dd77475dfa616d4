"""Shared fixtures. Everything real: Delta tables in tmp folders, sockets on 127.0.0.1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.lake.location import Lake, resolve_lake

REPO = Path(__file__).resolve().parents[1]


def realdata_dir() -> Path:
    env = os.environ.get("CRYPTOLAKE_REALDATA")
    return Path(env) if env else REPO.parent / "shared" / "realdata"


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return resolve_lake(str(tmp_path / "lake"))


@pytest.fixture
def realdata() -> Path:
    path = realdata_dir()
    if not path.is_dir():
        pytest.skip(f"real recordings not found at {path} (set CRYPTOLAKE_REALDATA)")
    return path
