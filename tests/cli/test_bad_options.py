"""Bad input is refused before anything is written (issue #20): every numeric option of every command, given a
value that cannot be right, ends with exit code 2 and one line on stderr that names the option, no traceback,
and the lake byte-identical. The matrix is generated from the real parser, so a new numeric option is covered
the day it is added (and one added without ``pipeline.checks.Number`` fails ``test_every_numeric_option_...``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.checks import Number, http_url, ws_url
from pipeline.cli import main
from tests.cli.kit import lake_bytes, subparsers

ALWAYS_BAD = ("nan", "inf", "-inf", "", "text", "1e400")


def numeric_options() -> list[tuple[str, str, Number]]:
    """(command, option, its Number) for every option of every subcommand whose type is numeric."""
    out = []
    for name, sub in subparsers().items():
        for action in sub._actions:
            if isinstance(action.type, Number):
                out.append((name, action.option_strings[-1], action.type))
    return out


def test_every_numeric_option_goes_through_the_validation_layer() -> None:
    loose = [(name, a.option_strings[-1]) for name, sub in subparsers().items() for a in sub._actions
             if a.type in (int, float)]  # fmt: skip
    assert loose == [], f"options parsed with bare int/float (NaN and signs unchecked): {loose}"
    assert len(numeric_options()) >= 25


def _bad_values(number: Number) -> list[str]:
    bad = list(ALWAYS_BAD)
    floor = number.minimum if number.minimum is not None else number.above
    if floor is not None and floor >= 0:
        bad.append("-1")
    if (number.minimum is not None and number.minimum > 0) or (number.above is not None and number.above >= 0):
        bad.append("0")
    if number.maximum is not None:
        bad.append(repr(number.maximum * 2 + 1))
    if number.integer:  # beyond int64 (a finite float that large is a legal, if odd, value)
        bad += ["1.5", "99999999999999999999999"]
    return bad


# "--seed" bounds nothing but NaN; commands that need a running service still parse first.
@pytest.mark.parametrize(("command", "opt", "number"), numeric_options(), ids=lambda v: v if isinstance(v, str) else "")
def test_a_bad_number_is_refused_in_one_line_and_the_lake_is_untouched(
    command, opt, number, filled_lake, capsys
) -> None:
    before = lake_bytes(Path(filled_lake.root))
    for value in _bad_values(number):
        with pytest.raises(SystemExit) as stop:
            main(["--lake", filled_lake.root, command, f"{opt}={value}"])
        err = capsys.readouterr().err
        assert stop.value.code == 2, (opt, value, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and opt in lines[0] and "Traceback" not in err, (opt, value, err)
        assert f"cryptolake {command}: error:" in lines[0]
    assert lake_bytes(Path(filled_lake.root)) == before


def test_a_good_number_still_parses() -> None:
    sub = subparsers()
    assert sub["status"].parse_args(["--min-completeness", "0.9", "--max-open-gaps", "3"]).max_open_gaps == 3
    assert sub["universe"].parse_args(["--quote", "USDT, USDC", "--min-volume", "1e6"]).quote == ("USDT", "USDC")
    assert sub["maintain"].parse_args(["--target-mb", "1e3"]).target_mb == 1000


def test_stream_record_into_an_existing_file_is_refused_before_it_starts(tmp_path, capsys) -> None:
    taken = tmp_path / "capture.log"
    taken.write_text("keep me\n")
    with pytest.raises(SystemExit) as stop:
        main(["--lake", str(tmp_path / "lake"), "stream", "--record", str(taken), "--seconds", "1"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "--record" in err and len(err.strip().splitlines()) == 1
    assert taken.read_text() == "keep me\n" and not (tmp_path / "lake").exists()


@pytest.mark.parametrize("argv", [["universe", "--min-volume", "nan"], ["status", "--min-completeness", "nan"]])
def test_the_real_command_says_it_in_one_line(argv, filled_lake) -> None:
    before = lake_bytes(Path(filled_lake.root))
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "--lake", filled_lake.root, *argv],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and argv[1] in proc.stderr and "Traceback" not in proc.stderr
    assert lake_bytes(Path(filled_lake.root)) == before


def _one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    """Run the CLI in-process: exit 2, one line on stderr holding every needle, no traceback."""
    try:
        code = main(argv)
    except SystemExit as stop:
        code = int(stop.code or 0)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (argv, code, err)
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def test_paths_and_times_that_used_to_end_in_a_traceback(tmp_path, capsys) -> None:
    lake = str(tmp_path / "lake")
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(bytes(range(256)))
    _one_line_error(["--lake", str(a_file), "tables"], capsys, "--lake", "is a file")
    _one_line_error(["--lake", "memory:///lake", "tables"], capsys, "--lake", "memory")
    _one_line_error(
        ["--lake", lake, "stream", "--config", str(binary), "--seconds", "1"], capsys, "--config", "not a text file"
    )
    _one_line_error(
        ["--lake", lake, "stream", "--config", str(tmp_path), "--seconds", "1"], capsys, "--config", "is a folder"
    )
    _one_line_error(["--lake", lake, "gold", "--gold-dir", str(a_file)], capsys, "--gold-dir", "is a file")
    _one_line_error(["--lake", lake, "backfill", "--venue", "okx", "--instruments", "BTC-USDT", "--start", "99999999999999999999"],
                    capsys, "start", "outside")  # fmt: skip
    assert not (tmp_path / "lake").exists()  # refused before anything was created


def test_workflow_and_backtest_settings_are_checked_before_any_work(tmp_path, capsys) -> None:
    lake = str(tmp_path / "lake")
    for override, needle in [("signal=$close/Ref($close,5", "backtest.signal"), ("start=notadate", "backtest.start"),
                             ("account=nan", "backtest.account"), ("signal=$nosuchfield/$close", "$nosuchfield is not a field")]:  # fmt: skip
        _one_line_error(["--lake", lake, "backtest", "--set", override], capsys, needle)
    _one_line_error(
        ["--lake", lake, "backtest", "--set", "start=2026-12-01", "--set", "end=2026-11-20"], capsys, "start/end"
    )
    workflow = tmp_path / "workflow.toml"
    workflow.write_text('[gold]\nfreqz = ["day"]\n')
    _one_line_error(["--lake", lake, "gold", "--workflow", str(workflow)], capsys, "gold.freqz", "unknown key")
    workflow.write_text("[gold]\nkeep_versions = 0.5\n")
    _one_line_error(["--lake", lake, "gold", "--workflow", str(workflow)], capsys, "gold.keep_versions")
    workflow.write_text("[golden]\n")
    _one_line_error(["--lake", lake, "gold", "--workflow", str(workflow)], capsys, "[golden]")
    assert not (tmp_path / "lake" / "gold").exists()


def test_a_venue_url_that_is_not_a_websocket_is_refused(tmp_path, capsys) -> None:
    argv = ["--lake", str(tmp_path / "lake"), "stream", "--venue", "okx", "--instruments", "BTC-USDT", "--seconds", "1"]
    _one_line_error([*argv, "--url", "http://127.0.0.1:1"], capsys, "--url", "not a WebSocket URL")
    assert not (tmp_path / "lake").exists()


def test_the_simulator_on_a_port_in_use_says_so(capsys) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        _one_line_error(["sim", "--port", str(port)], capsys, f"port {port}", "already in use")


def test_a_reader_that_stops_early_is_no_error(tmp_path) -> None:
    """`cryptolake tables | head -3`: the pipe closes before the table is written; no BrokenPipeError trace."""
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "--lake", str(tmp_path / "lake"), "tables"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first byte
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_a_stream_whose_spool_cannot_be_created_says_so_before_streaming(tmp_path, capsys) -> None:
    """A lake that refuses writes is what the spool is for, but the spool beside a lake under a file cannot be
    created either: one line naming --spool-dir before any frame is taken."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the lake's parent folder should be")
    argv = [
        "--lake",
        str(blocker / "lake"),
        "stream",
        "--venue",
        "okx",
        "--url",
        "sim",
        "--instruments",
        "BTC-USDT",
        "--seconds",
        "1",
    ]
    err = _one_line_error(argv, capsys, "--spool-dir", "cannot be created")
    assert str(blocker) in err and blocker.is_file()


def test_every_url_option_refuses_what_is_not_a_url(filled_lake, capsys) -> None:
    """Generated from the parser: every option typed as a URL (REST, webhook, WebSocket) refuses these values."""
    url_options = [(name, a.option_strings[-1]) for name, sub in subparsers().items() for a in sub._actions
                   if a.type in (http_url, ws_url)]  # fmt: skip
    assert {("backfill", "--rest-url"), ("universe", "--rest-url"), ("up", "--webhook"), ("stream", "--url")} <= set(
        url_options
    )
    before = lake_bytes(Path(filled_lake.root))
    for command, opt in url_options:
        for value in ("", "text", "ftp://host", "http://", "127.0.0.1:8765"):
            with pytest.raises(SystemExit) as stop:
                main(["--lake", filled_lake.root, command, f"{opt}={value}"])
            err = capsys.readouterr().err
            assert stop.value.code == 2 and err.count("\n") == 1 and f"argument {opt}:" in err, (opt, value, err)
    assert lake_bytes(Path(filled_lake.root)) == before
