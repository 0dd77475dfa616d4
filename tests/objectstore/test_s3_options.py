"""How an s3:// lake's storage options are completed: conditional put said explicitly, the unsafe rename refused."""

from __future__ import annotations

import json

import pytest

from pipeline.errors import ConfigError
from pipeline.lake.location import STORAGE_OPTIONS_ENV, resolve_lake


def _env(**options: str) -> dict[str, str]:
    return {STORAGE_OPTIONS_ENV: json.dumps(options)}


def test_s3_lake_commits_with_conditional_put_unless_told_otherwise() -> None:
    assert resolve_lake("s3://b/l", env=_env(AWS_REGION="eu-west-1")).storage_options["AWS_CONDITIONAL_PUT"] == "etag"
    told = resolve_lake("s3a://b/l", env=_env(aws_conditional_put="etag")).storage_options
    assert told == {"aws_conditional_put": "etag"}  # the user's spelling kept, not doubled
    assert "AWS_CONDITIONAL_PUT" not in resolve_lake("gs://b/l", env=_env()).storage_options


@pytest.mark.parametrize("value", ["true", "TRUE", "1"])
def test_unsafe_rename_is_refused_naming_the_key_and_the_fix(value: str) -> None:
    with pytest.raises(ConfigError) as err:
        resolve_lake("s3://b/l", env=_env(AWS_S3_ALLOW_UNSAFE_RENAME=value))
    text = str(err.value)
    assert STORAGE_OPTIONS_ENV in text and "AWS_S3_ALLOW_UNSAFE_RENAME" in text and "conditional put" in text


def test_unsafe_rename_false_is_harmless() -> None:
    assert resolve_lake("s3://b/l", env=_env(AWS_S3_ALLOW_UNSAFE_RENAME="false")).root == "s3://b/l"
