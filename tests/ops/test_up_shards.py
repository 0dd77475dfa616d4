"""`make up` with shards: flushes spooled under the unsharded collector name are pointed out (the shards,
named <stream.name>-<shard>, never replay them), and nothing is said when there are none."""

from __future__ import annotations

import pyarrow as pa
import pytest

from flows.ops.up import warn_unsharded_spool, worker_argv
from pipeline.config import load_config
from pipeline.ingest.spool import Spool
from pipeline.ingest.stream import default_spool_dir
from pipeline.lake.location import Lake


def test_a_spool_left_under_the_unsharded_name_is_pointed_out(lake: Lake, capsys: pytest.CaptureFixture[str]) -> None:
    config = load_config()
    warn_unsharded_spool(lake, config)  # no spool at all
    Spool(default_spool_dir(lake, config.name))  # an empty one
    warn_unsharded_spool(lake, config)
    assert capsys.readouterr().out == ""
    Spool(default_spool_dir(lake, config.name)).put(7, "bronze/trades", pa.table({"x": [1]}))
    warn_unsharded_spool(lake, config)
    out = capsys.readouterr().out
    assert "spooled under the collector name 'default'" in out and "cryptolake stream --seconds 5" in out


def test_each_worker_is_a_named_process_worker_of_the_pool() -> None:
    argv = worker_argv("cryptolake-local-2")
    assert argv[1:] == ["worker", "start", "--pool", "cryptolake", "--type", "process", "--name", "cryptolake-local-2"]
