"""The stream's allocator settings: defaults fill what the environment leaves open, never override it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pipeline.ingest import memory


def test_defaults_fill_the_environment_and_user_values_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("_RJEM_MALLOC_CONF", raising=False)
    monkeypatch.setenv("MIMALLOC_PURGE_DELAY", "250")
    memory.configure_allocators()
    assert os.environ["_RJEM_MALLOC_CONF"] == memory._ENV_DEFAULTS["_RJEM_MALLOC_CONF"]
    assert os.environ["MIMALLOC_PURGE_DELAY"] == "250"


def test_the_stream_command_configures_before_the_columnar_libraries_load() -> None:
    # The jemalloc / mimalloc settings only count if they are in place before deltalake, polars, pyarrow load.
    code = (
        "import sys, os\n"
        "from pipeline.commands import stream\n"
        "assert not {'pyarrow', 'polars', 'deltalake'} & set(sys.modules), sorted(sys.modules)\n"
        "from pipeline.ingest.memory import configure_allocators\n"
        "configure_allocators()\n"
        "import pyarrow\n"
        "print(os.environ['MIMALLOC_PURGE_DELAY'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MIMALLOC_PURGE_DELAY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60, check=True)
    assert out.stdout.strip() == memory._ENV_DEFAULTS["MIMALLOC_PURGE_DELAY"]
