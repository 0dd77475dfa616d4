from pathlib import Path

import pytest

from pipeline.errors import ConfigError, UnsafeNameError
from pipeline.lake.location import LAKE_ENV, STORAGE_OPTIONS_ENV, resolve_lake


def test_cli_beats_env_beats_default(tmp_path: Path) -> None:
    env = {LAKE_ENV: str(tmp_path / "from-env")}
    assert resolve_lake(str(tmp_path / "from-cli"), env=env).root == str(tmp_path / "from-cli")
    assert resolve_lake(None, env=env).root == str(tmp_path / "from-env")
    assert resolve_lake(None, env={}).root == str(Path("./lake").resolve())


def test_object_store_uri_is_kept_and_tables_join_with_slashes() -> None:
    lake = resolve_lake("s3://bucket/lake/", env={STORAGE_OPTIONS_ENV: '{"AWS_REGION": "eu-west-1"}'})
    assert lake.root == "s3://bucket/lake"
    assert not lake.is_local
    assert lake.table_uri("bronze", "trades") == "s3://bucket/lake/bronze/trades"
    assert lake.storage_options == {"AWS_REGION": "eu-west-1", "AWS_CONDITIONAL_PUT": "etag"}  # said explicitly


def test_unknown_scheme_names_the_key_and_the_fix() -> None:
    with pytest.raises(ConfigError) as err:
        resolve_lake("ftp://host/lake", env={})
    assert "CRYPTOLAKE_LAKE" in str(err.value) and "s3" in str(err.value)


def test_bad_storage_options_are_a_config_error() -> None:
    with pytest.raises(ConfigError) as err:
        resolve_lake("s3://b/l", env={STORAGE_OPTIONS_ENV: "{not json"})
    assert STORAGE_OPTIONS_ENV in str(err.value)


@pytest.mark.parametrize("name", ["../etc", "a/b", "", ".hidden", "x\\y"])
def test_table_names_cannot_escape_the_lake(tmp_path: Path, name: str) -> None:
    lake = resolve_lake(str(tmp_path))
    with pytest.raises(UnsafeNameError):
        lake.table_uri("bronze", name)
