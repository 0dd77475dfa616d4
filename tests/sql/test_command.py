"""`cryptolake sql` as a user runs it (a real process): the printed table, each output format read back equal to
the query's answer, --limit, one-line errors with exit 2, and queries piped to the prompt."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from pipeline.commands.sql import split_statements
from pipeline.lake.location import Lake
from pipeline.sql import query

TRADES = "SELECT * FROM silver.trades ORDER BY venue, instrument, trade_id"


def cryptolake(lake: Lake, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "--lake", lake.root, "sql", *args],
        input=stdin, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_query_prints_a_readable_table(real_lake: Lake) -> None:
    done = cryptolake(real_lake, "SELECT venue, count(*) AS trades FROM silver.trades GROUP BY venue ORDER BY venue")
    assert done.returncode == 0, done.stderr
    counts = query(real_lake, "SELECT venue, count(*) AS n FROM silver.trades GROUP BY venue ORDER BY venue")
    lines = done.stdout.splitlines()
    for venue, n in counts.iter_rows():
        assert any(venue in line and f" {n} " in line for line in lines)
    assert lines[-1] == "(2 rows)"


def test_a_long_answer_is_cut_and_says_so(real_lake: Lake) -> None:
    done = cryptolake(real_lake, "--limit", "3", TRADES)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(" capture ") == 3  # three data rows
    assert "first 3 rows; --limit N shows more" in done.stdout


def test_csv_reads_back_equal(real_lake: Lake) -> None:
    done = cryptolake(real_lake, "--csv", TRADES)
    assert done.returncode == 0, done.stderr
    expected = query(real_lake, TRADES)
    back = pl.read_csv(io.StringIO(done.stdout), schema=expected.schema)
    assert back.equals(expected) and back.height > 50


def test_json_reads_back_equal(real_lake: Lake) -> None:
    done = cryptolake(real_lake, "--json", TRADES)
    assert done.returncode == 0, done.stderr
    expected = query(real_lake, TRADES)
    back = pl.read_json(io.StringIO(done.stdout))
    assert back.columns == expected.columns and back.height == expected.height
    # JSON has no datetime type: times come back as ISO strings
    times = back["exchange_ts"].str.to_datetime(time_zone="UTC", time_unit="us")
    assert times.equals(expected["exchange_ts"], check_names=False)
    assert back.select("trade_id", "price", "size").equals(expected.select("trade_id", "price", "size"))


def test_parquet_reads_back_equal(real_lake: Lake, tmp_path: Path) -> None:
    target = tmp_path / "out" / "trades.parquet"
    done = cryptolake(real_lake, "--parquet", str(target), "--limit", "10", TRADES)
    assert done.returncode == 0, done.stderr
    assert pl.read_parquet(target).equals(query(real_lake, TRADES).head(10))
    assert f"wrote 10 rows to {target}" in done.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["SELECT * FROM silver.nope"], "unknown table 'silver.nope'"),
        (["SELECT nope FROM silver.trades"], "unknown column 'nope'"),
        (["SELEC 1"], "SQL syntax error"),
        (["--parquet", "/", "SELECT 1"], "'/' is a folder; give a file name"),
        (["--parquet", "x.parquet"], "--parquet writes one answer: give a QUERY"),
        (["--limit", "0", "SELECT 1"], "argument --limit: 0 is below 1"),
    ],
)
def test_errors_exit_2_with_one_line(real_lake: Lake, args: list[str], says: str) -> None:
    done = cryptolake(real_lake, *args)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and says in done.stderr and "Traceback" not in done.stderr


def test_queries_piped_to_the_prompt(real_lake: Lake) -> None:
    script = (
        "SELECT count(*) AS n FROM silver.trades;\n"
        ".tables\n"
        "-- a comment; not a statement\n"
        "SELECT 'a;b' AS text,\n"
        "       2 AS two; SELECT nope FROM silver.trades;\n"
        ".schema bronze.gaps\n"
        "SELECT count(*) AS open_gaps FROM bronze.gaps WHERE status = 'open'\n"  # the last one needs no ';'
    )
    done = cryptolake(real_lake, "--csv", stdin=script)
    trades = query(real_lake, "SELECT count(*) AS n FROM silver.trades")["n"].item()
    assert done.returncode == 2  # one query failed; the others were answered
    assert done.stderr.splitlines() == [next(line for line in done.stderr.splitlines() if "unknown column" in line)]
    out = done.stdout
    assert f"n\n{trades}\n" in out and "text,two\na;b,2\n" in out and "open_gaps\n1\n" in out
    assert re.search(r"^  silver\.quarantine +2 rows$", out, re.MULTILINE)  # .tables: the two quarantined trades
    assert "  detail           string" in out  # .schema
    assert out.index(f"n\n{trades}") < out.index("silver.quarantine") < out.index("a;b") < out.index("open_gaps")


def test_a_pipe_that_ends_the_session_early(real_lake: Lake) -> None:
    done = cryptolake(real_lake, stdin="SELECT 1 AS one;\n\\q\nSELECT nope FROM silver.nope;\n")
    assert done.returncode == 0 and "(1 row)" in done.stdout and done.stderr == ""


def test_statements_split_on_semicolons_outside_quotes_and_comments() -> None:
    text = "SELECT ';' AS a; -- no; cut\nSELECT \"x;y\" FROM t;\nSELECT 'it''s'; SELECT"
    assert split_statements(text) == (
        ["SELECT ';' AS a", '-- no; cut\nSELECT "x;y" FROM t', "SELECT 'it''s'"],
        " SELECT",
    )


def test_the_prompt_on_a_terminal(real_lake: Lake) -> None:
    controller, terminal = pty.openpty()  # stdin is a terminal: prompts, a query over two lines, then \q
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "--lake", real_lake.root, "sql"],
            stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        os.write(controller, b"SELECT count(*) AS n\nFROM silver.trades;\n\\q\n")
        out, err = process.communicate(timeout=120)
    finally:
        os.close(terminal)
        os.close(controller)
    trades = query(real_lake, "SELECT count(*) AS n FROM silver.trades")["n"].item()
    assert process.returncode == 0, err
    assert "end a query with ';'" in err and "lake sql> " in out and "...> " in out
    assert f"│ {trades} " in out and "(1 row)" in out


def test_a_parquet_file_under_a_file_is_refused_before_the_query_runs(real_lake: Lake, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("a file, not a folder\n")
    done = cryptolake(real_lake, "--parquet", str(tmp_path / "notes.txt" / "out.parquet"), "SELECT 1 AS one")
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1
    assert "out.parquet' cannot be written: " in done.stderr and "notes.txt' is a file, not a folder" in done.stderr
