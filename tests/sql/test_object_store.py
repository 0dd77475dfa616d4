"""SQL over a lake on S3 (moto's server in its own process on 127.0.0.1: delta-rs #3942 hangs with the in-process
one): the tables are opened with the lake's storage options, by the Python function and by the command."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from pipeline.errors import LakeReadError
from pipeline.lake import writer
from pipeline.lake.location import STORAGE_OPTIONS_ENV, Lake
from pipeline.lake.tables import BRONZE_TRADES
from pipeline.sql import query
from tests.silver_rows import trades

BUCKET = "sql-lake"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def s3_endpoint() -> Iterator[str]:
    server = shutil.which("moto_server", path=os.path.dirname(sys.executable))
    if server is None:
        pytest.skip("moto_server not installed (pip install 'moto[server]')")
    port = _free_port()
    process = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):  # up to ~10 s for the server to answer
            try:
                urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{BUCKET}", method="PUT"), timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("moto_server did not answer on 127.0.0.1")
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)


def s3_options(endpoint: str) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}  # fmt: skip


def test_sql_over_an_s3_lake(s3_endpoint: str) -> None:
    lake = Lake(f"s3://{BUCKET}/lake", s3_options(s3_endpoint))
    rows = trades(40)
    writer.append_rows(lake, BRONZE_TRADES, rows)
    answer = query(lake, "SELECT instrument, count(*) AS n FROM bronze.trades GROUP BY 1 ORDER BY 1")
    per_instrument = {inst: sum(1 for r in rows if r[2] == inst) for inst in {r[2] for r in rows}}
    assert dict(answer.iter_rows()) == per_instrument and answer["n"].sum() == 40
    assert query(lake, "SELECT count(*) AS n FROM silver.trades")["n"].item() == 0  # not written yet: empty

    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "--lake", lake.root, "sql", "--csv",
         "SELECT count(*) AS n FROM bronze.trades"],
        env={**os.environ, STORAGE_OPTIONS_ENV: json.dumps(s3_options(s3_endpoint))},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (0, "n\n40\n"), done.stderr


def test_an_s3_lake_that_cannot_be_reached_fails_in_one_line(s3_endpoint: str) -> None:
    lake = Lake(f"s3://{BUCKET}/lake", s3_options(s3_endpoint))
    writer.append_rows(lake, BRONZE_TRADES, trades(5))
    # nothing listens on port 9; no retries, so the failure comes at once
    wrong = Lake(lake.root, {**s3_options(s3_endpoint), "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "max_retries": "0"})
    with pytest.raises(LakeReadError) as caught:
        query(wrong, "SELECT count(*) FROM bronze.trades")
    assert "bronze/trades cannot be opened" in str(caught.value) and "\n" not in str(caught.value)
