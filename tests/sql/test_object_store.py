"""SQL over a lake on S3 (moto's server from tests/objectstore/kit.py, a process of its own on 127.0.0.1): the
tables are opened with the lake's storage options, by the Python function and by the command."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from pipeline.errors import LakeReadError
from pipeline.lake import writer
from pipeline.lake.location import Lake
from pipeline.lake.tables import BRONZE_TRADES
from pipeline.sql import query
from tests.objectstore.kit import MotoServer, start_or_skip
from tests.silver_rows import trades


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    start_or_skip(server)
    yield server
    server.stop()


def test_sql_over_an_s3_lake(moto: MotoServer) -> None:
    lake = moto.lake()
    rows = trades(40)
    writer.append_rows(lake, BRONZE_TRADES, rows)
    answer = query(lake, "SELECT instrument, count(*) AS n FROM bronze.trades GROUP BY 1 ORDER BY 1")
    per_instrument = {inst: sum(1 for r in rows if r[2] == inst) for inst in {r[2] for r in rows}}
    assert dict(answer.iter_rows()) == per_instrument and answer["n"].sum() == 40
    assert query(lake, "SELECT count(*) AS n FROM silver.trades")["n"].item() == 0  # not written yet: empty

    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "--lake", lake.root, "sql", "--csv",
         "SELECT count(*) AS n FROM bronze.trades"],
        env={**os.environ, **moto.env()}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (0, "n\n40\n"), done.stderr


def test_an_s3_lake_that_cannot_be_reached_fails_in_one_line(moto: MotoServer) -> None:
    lake = moto.lake()
    writer.append_rows(lake, BRONZE_TRADES, trades(5))
    # nothing listens on port 9; no retries, so the failure comes at once
    wrong = Lake(lake.root, {**lake.storage_options, "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "max_retries": "0"})
    with pytest.raises(LakeReadError) as caught:
        query(wrong, "SELECT count(*) FROM bronze.trades")
    assert "bronze/trades cannot be opened" in str(caught.value) and "\n" not in str(caught.value)
