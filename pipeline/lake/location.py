"""Where the lake lives. The root is a URI (a local path, or s3://, gs://, az:// with deltalake's storage
options), so table code never assumes a local folder: it asks for ``table_uri``."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import ConfigError, UnsafeNameError

LAKE_ENV = "CRYPTOLAKE_LAKE"
STORAGE_OPTIONS_ENV = "CRYPTOLAKE_STORAGE_OPTIONS"
DEFAULT_LAKE = "./lake"

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_OBJECT_STORES = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "file"}  # memory:// would keep nothing
_SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=-]*$")
_S3 = {"s3", "s3a"}
# Delta commits on S3 are safe between writers only through conditional put (If-None-Match: *), delta-rs'
# default since 1.6.1; said explicitly so that an older default or a changed one cannot quietly drop it.
S3_CONDITIONAL_PUT = ("AWS_CONDITIONAL_PUT", "etag")
_UNSAFE_RENAME = "AWS_S3_ALLOW_UNSAFE_RENAME"


def _checked_part(part: str) -> str:
    # Table names end up in paths and object keys: no separators, no '..', nothing hidden.
    if not _SAFE_PART.match(part) or ".." in part:
        raise UnsafeNameError(f"unsafe lake path component {part!r}: use letters, digits, '_', '-', '.', '='")
    return part


@dataclass(frozen=True)
class Lake:
    """The lake root plus the storage options deltalake needs to reach it."""

    root: str
    storage_options: dict[str, str] = field(default_factory=dict)

    @property
    def is_local(self) -> bool:
        return not _SCHEME.match(self.root) or self.root.startswith("file://")

    def table_uri(self, layer: str, name: str) -> str:
        """URI of one table, e.g. ``lake.table_uri("bronze", "trades")``."""
        return f"{self.root.rstrip('/')}/{_checked_part(layer)}/{_checked_part(name)}"

    def local_path(self, *parts: str) -> Path:
        """A local folder under the root, for things that must be on local disk (spool, Prefect home)."""
        if not self.is_local:
            raise ConfigError(
                LAKE_ENV,
                f"{self.root} is object storage, which has no local folders",
                "set --spool-dir to a local path",
            )
        base = Path(self.root.removeprefix("file://"))
        return base.joinpath(*(_checked_part(p) for p in parts))


def resolve_lake(cli_value: str | None = None, *, env: Mapping[str, str] | None = None) -> Lake:
    """The lake named by ``--lake``, else ``$CRYPTOLAKE_LAKE``, else ``./lake``.

    Local paths become absolute so that flows started from another working directory (a Prefect worker)
    write to the same place.
    """
    env = os.environ if env is None else env  # os.environ is a Mapping[str, str] too
    raw = cli_value if cli_value is not None else env.get(LAKE_ENV, DEFAULT_LAKE)
    raw = raw.strip()
    if not raw:
        raise ConfigError("--lake / " + LAKE_ENV, "the lake root is empty", "give a folder such as ./lake or a URI")
    match = _SCHEME.match(raw)
    if match:
        scheme = match.group(1).lower()
        if scheme not in _OBJECT_STORES:
            raise ConfigError(
                "--lake / " + LAKE_ENV,
                f"unsupported URI scheme {scheme!r}",
                "use a local path or one of " + ", ".join(sorted(_OBJECT_STORES)),
            )
        root = raw.rstrip("/")
        if scheme in _S3:
            return Lake(root=root, storage_options=_s3_options(_storage_options(env)))
    else:
        path = Path(raw).expanduser().resolve()
        if path.exists() and not path.is_dir():
            raise ConfigError(
                "--lake / " + LAKE_ENV,
                f"{path} is a file, not a folder",
                "give the lake's folder (created if missing) or a URI",
            )
        root = str(path)
    return Lake(root=root, storage_options=_storage_options(env))


def usable_lake(cli_value: str | None = None, *, env: Mapping[str, str] | None = None) -> Lake:
    """``resolve_lake`` for the commands: a local lake under a regular file (one that no command could ever
    create) is refused. Not in ``resolve_lake`` itself: the stream runs on while its lake refuses writes (the
    spool is for that), and the code that tests it builds such lakes on purpose."""
    lake = resolve_lake(cli_value, env=env)
    if lake.is_local:
        path = Path(lake.root.removeprefix("file://"))
        existing = next(p for p in (path, *path.parents) if p.exists())  # the root always exists
        if not existing.is_dir():  # gold died on NotADirectoryError; tables listed empty tables
            raise ConfigError(
                "--lake / " + LAKE_ENV,
                f"{path} cannot be created: {existing} is a file",
                "give a folder whose parent is a folder, or a URI",
            )
    return lake


def writable_lake(cli_value: str | None = None, *, env: Mapping[str, str] | None = None) -> Lake:
    """``usable_lake`` for commands that write: a local lake this process cannot write is refused before any
    work (a read-only lake used to fail half-way, with a traceback from gold). Object stores answer on write."""
    lake = usable_lake(cli_value, env=env)
    if lake.is_local:
        path = Path(lake.root.removeprefix("file://"))
        existing = next(p for p in (path, *path.parents) if p.exists())  # the root always exists
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigError(
                "--lake / " + LAKE_ENV,
                f"{path} is not writable ({existing} refuses writes)",
                "give a lake folder you can write, or fix its permissions",
            )
    return lake


def _s3_options(options: dict[str, str]) -> dict[str, str]:
    """Conditional put on (unless given), and never the unsafe rename: with it two writers that commit the
    same version both "succeed" and one commit is lost."""
    keys = {k.upper(): k for k in options}
    unsafe = keys.get(_UNSAFE_RENAME)
    if unsafe is not None and options[unsafe].strip().lower() not in ("", "false", "0"):
        raise ConfigError(
            STORAGE_OPTIONS_ENV,
            f"{_UNSAFE_RENAME} lets concurrent commits overwrite each other",
            f"remove it: deltalake commits to S3 with conditional put ({S3_CONDITIONAL_PUT[0]}=etag)",
        )
    key, value = S3_CONDITIONAL_PUT
    return options if key in keys else {**options, key: value}


def _storage_options(env: Mapping[str, str]) -> dict[str, str]:
    text = env.get(STORAGE_OPTIONS_ENV, "").strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            STORAGE_OPTIONS_ENV,
            f"not valid JSON ({exc.msg})",
            'set it to a JSON object such as {"AWS_REGION": "eu-west-1"}',
        ) from exc
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ConfigError(
            STORAGE_OPTIONS_ENV, "must be a JSON object of string to string", 'e.g. {"AWS_REGION": "eu-west-1"}'
        )
    return value
