"""Fixtures of the CLI tests."""

from __future__ import annotations

import pytest

from pipeline.lake import writer
from pipeline.lake.location import Lake
from pipeline.lake.tables import BRONZE_TRADES
from tests.silver_rows import T0_MS, trade


@pytest.fixture
def filled_lake(lake: Lake) -> Lake:
    """A lake with a few bronze trades, so "the lake is untouched" compares real Delta files."""
    writer.append_rows(lake, BRONZE_TRADES, [trade("BTC-USDT-SWAP", i, T0_MS + i, 100.0 + i, 1.0) for i in range(5)])
    return lake
