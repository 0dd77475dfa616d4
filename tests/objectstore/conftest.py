"""Fixtures of the object-store tests: one moto and one SeaweedFS server per session (separate processes on
127.0.0.1, stopped by PID at the end), a fresh bucket per test, and $CRYPTOLAKE_STORAGE_OPTIONS pointing at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipeline.lake.location import Lake
from tests.objectstore.kit import MotoServer, SeaweedServer, start_or_skip


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    start_or_skip(server)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    server = SeaweedServer(tmp_path_factory.mktemp("seaweedfs"))
    start_or_skip(server)
    yield server
    server.stop()


@pytest.fixture
def moto_lake(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Lake:
    """A lake in a new moto bucket; the environment carries its storage options (child processes too)."""
    for key, value in moto.env().items():
        monkeypatch.setenv(key, value)
    return moto.lake()


@pytest.fixture
def seaweed_lake(seaweed: SeaweedServer, monkeypatch: pytest.MonkeyPatch) -> Lake:
    """A lake in a new SeaweedFS bucket; the environment carries its storage options (child processes too)."""
    if not seaweed.running:
        seaweed.restart()  # a test that stopped it and failed before restarting
    for key, value in seaweed.env().items():
        monkeypatch.setenv(key, value)
    return seaweed.lake()
