"""A simulator with REST faults on (429 and 5xx) for the backfill tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipeline.simulator import SimulatorThread
from tests.backfill.backfillkit import sim_config


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(sim_config()) as s:
        yield s
