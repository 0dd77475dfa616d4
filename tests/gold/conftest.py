"""Fixtures of the gold tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def gold_dir(tmp_path):
    return tmp_path / "gold"
