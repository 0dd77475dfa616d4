"""Bad paths are refused before anything is written (issue #20): every path option of every command (found in the
real parser by its ``pipeline.checks.PathArg`` type, so a new one is covered the day it is added), given a
missing path, a folder, a text file, a binary file, an empty value or a path under a file, either works or
ends with exit code 2 and one line naming the option or the path, no traceback, and the lake byte-identical."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.checks import PathArg
from pipeline.cli import main
from tests.cli.kit import lake_bytes, subparsers

# What each command needs besides the path option to get past parsing (a value that is fine is then run).
EXTRA = {"import": ["--venue", "okx"], "stream": ["--venue", "okx", "--instruments", "BTC-USDT", "--seconds", "1"]}
# Values a kind of path cannot take; the others are valid paths whose content is the reader's to judge.
REFUSED = {
    "file": {"missing", "folder", "empty", "under-a-file"},
    "folder": {"missing", "text", "binary", "empty", "under-a-file"},
    "new folder": {"text", "binary", "empty", "under-a-file"},
}


def path_options() -> list[tuple[str, str, PathArg]]:
    """(command, option, its PathArg) for every path argument of every subcommand; "" for a positional."""
    return [(name, (a.option_strings or [""])[-1], a.type) for name, sub in subparsers().items()
            for a in sub._actions if isinstance(a.type, PathArg)]  # fmt: skip


def _values(tmp: Path) -> dict[str, str]:
    (tmp / "folder").mkdir(parents=True)
    (tmp / "text.toml").write_text("just = [text\n")
    (tmp / "binary.bin").write_bytes(bytes(range(256)) * 4)
    return {
        "missing": str(tmp / "missing"),
        "folder": str(tmp / "folder"),
        "text": str(tmp / "text.toml"),
        "binary": str(tmp / "binary.bin"),
        "empty": "",
        "under-a-file": str(tmp / "text.toml" / "inside"),
    }


def test_every_path_option_goes_through_the_validation_layer() -> None:
    found = {(c, o) for c, o, _ in path_options()}
    assert {("import", ""), ("stream", "--config"), ("stream", "--record"), ("stream", "--spool-dir"),
            ("gold", "--gold-dir"), ("gold", "--workflow"), ("backtest", "--workflow"), ("backtest", "--gold-dir"),
            ("up", "--config")} <= found  # fmt: skip


@pytest.mark.parametrize(("command", "opt", "kind"), path_options(), ids=lambda v: v if isinstance(v, str) else "")
def test_a_bad_path_is_refused_in_one_line_and_the_lake_is_untouched(
    command, opt, kind, filled_lake, tmp_path, capsys
) -> None:
    before = lake_bytes(Path(filled_lake.root))
    for name, value in _values(tmp_path / "paths").items():
        if name not in REFUSED[kind.kind]:
            continue
        argv = ["--lake", filled_lake.root, command, *([opt] if opt else []), value, *EXTRA.get(command, [])]
        with pytest.raises(SystemExit) as stop:
            main(argv)
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert stop.value.code == 2 and len(lines) == 1 and "Traceback" not in err, (argv, err)
        assert f"cryptolake {command}: error: argument {opt or 'file'}:" in lines[0], lines[0]
    assert lake_bytes(Path(filled_lake.root)) == before


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["stream", "--config", "{binary}", *EXTRA["stream"]], "not a text file"),
        (["stream", "--config", "{text}", *EXTRA["stream"]], "not valid TOML"),
        (["up", "--config", "{binary}"], "not a text file"),
        (["gold", "--workflow", "{binary}"], "not a text file"),
        (["backtest", "--workflow", "{text}"], "not valid TOML"),
        (["import", "{binary}", "--venue", "okx"], "unknown capture format"),
        (["import", "{text}", "--venue", "deribit"], "unknown capture format"),
    ],
    ids=lambda v: " ".join(v[:2]) if isinstance(v, list) else None,
)
def test_a_file_that_is_not_what_it_should_be_is_named_by_its_reader(
    argv, needle, filled_lake, tmp_path, capsys
) -> None:
    """Paths that exist go to the reader, which must also say what is wrong in one line (exit 2)."""
    values = _values(tmp_path)
    before = lake_bytes(Path(filled_lake.root))
    args = ["--lake", filled_lake.root, *(a.format(**values) for a in argv)]
    try:
        code = main(args)
    except SystemExit as stop:
        code = int(stop.code or 0)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err and "Traceback" not in err, err
    assert lake_bytes(Path(filled_lake.root)) == before


def test_a_lake_under_a_file_is_refused_by_every_command(tmp_path, capsys) -> None:
    """gold used to die on NotADirectoryError; no command can create a lake whose parent is a file."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the lake's parent folder should be")
    for command in (["tables"], ["status"], ["silver"], ["gold"], ["maintain"], ["universe", "--show"]):
        code = main(["--lake", str(blocker / "lake"), *command])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "--lake" in err and "cannot be created" in err, err
    assert blocker.read_text().startswith("a file")


def test_the_real_command_refuses_a_bad_path_in_one_line(filled_lake, tmp_path) -> None:
    before = lake_bytes(Path(filled_lake.root))
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "--lake", filled_lake.root, "import",
                           str(tmp_path), "--venue", "okx"], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == "" and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "is a folder" in proc.stderr
    assert lake_bytes(Path(filled_lake.root)) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes past permissions: nothing to refuse")
def test_unreadable_files_and_unwritable_lakes_are_refused(tmp_path, capsys) -> None:
    secret = tmp_path / "capture.jsonl"
    secret.write_text("{}\n")
    secret.chmod(0)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        for argv, needle in [
            (["--lake", str(tmp_path / "lake"), "import", str(secret), "--venue", "okx"], "cannot be read"),
            (["--lake", str(locked / "lake"), "gold"], "not writable"),
            (["--lake", str(locked), "silver"], "not writable"),
        ]:
            try:
                code = main(argv)
            except SystemExit as stop:  # a path option is refused while parsing
                code = int(stop.code or 0)
            err = capsys.readouterr().err
            assert code == 2 and err.count("\n") == 1 and needle in err, err
        assert not (tmp_path / "lake").exists() and list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)
        secret.chmod(0o644)


@pytest.mark.parametrize("command", ["tables", "status", "silver"])
def test_an_object_store_lake_that_cannot_be_reached_is_one_line(command, tmp_path) -> None:
    """No credentials, an endpoint nobody serves: one line naming $CRYPTOLAKE_STORAGE_OPTIONS, no Rust warnings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RUST_LOG"))}
    env["AWS_EC2_METADATA_DISABLED"] = "true"  # no instance-metadata lookups from a test
    env["CRYPTOLAKE_STORAGE_OPTIONS"] = '{"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ALLOW_HTTP": "true"}'
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "--lake", "s3://cryptolake-test/lake", command],
                          capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1 and "CRYPTOLAKE_STORAGE_OPTIONS" in proc.stderr, proc.stderr
