"""`cryptolake sql`: ask the lake a question in SQL (polars' SQL engine over the Delta tables)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.checks import Number, path_problem
from pipeline.lake.location import Lake, usable_lake

if TYPE_CHECKING:
    import polars as pl

HELP = "query the lake's tables in SQL (one query, or a prompt); print a table, CSV, JSON or write Parquet"
SHOWN_ROWS = 100  # a table printed to the terminal stops here unless --limit says otherwise
DESCRIPTION = f"""\
Run SQL over the lake with polars' SQL engine: every Delta table is named layer.table (silver.trades,
silver.candles, silver.quarantine, bronze.gaps, ...; `.tables` at the prompt lists them) and scanned lazily,
so filters on partition columns (venue, date, timeframe) read only the files they need. A table nothing has
written yet answers as an empty table. Without a QUERY, a prompt reads queries ending in ';' (`.tables`,
`.schema NAME`, `\\q` or end of input to quit); with stdin from a pipe or a file it runs every query there.
A printed table shows the first {SHOWN_ROWS} rows (--limit N for more); --csv, --json and --parquet write them all.

examples:
  cryptolake sql "SELECT venue, instrument, count(*) AS trades FROM silver.trades GROUP BY 1, 2 ORDER BY 3 DESC"
  cryptolake sql "SELECT instrument, open_time, open, high, low, close, volume FROM silver.candles
                  WHERE timeframe = '1h' AND date = '2026-08-12' ORDER BY instrument, open_time"
  cryptolake sql "SELECT \\"table\\", rule, count(*) AS rows FROM silver.quarantine GROUP BY 1, 2 ORDER BY 3 DESC"
  cryptolake sql "SELECT venue, instrument, kind, from_ts, detail FROM bronze.gaps WHERE status = 'open'"
  cryptolake sql --csv "SELECT * FROM silver.trades WHERE date = '2026-08-12'" > trades.csv
  echo "SELECT count(*) FROM silver.trades; SELECT count(*) FROM bronze.rejects;" | cryptolake sql"""


def output_file(text: str) -> Path:
    """An argparse ``type=`` for a file this command writes: not a folder, in a folder that exists or can be made."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path names nothing; give a file name")
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder; give a file name")
    problem = path_problem(str(path.parent), "new folder")  # the folder rules of pipeline.checks, for its parent
    if problem:
        raise argparse.ArgumentTypeError(f"{text!r} cannot be written: {problem.split('; ')[0]}; give another file")
    return path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument(
        "query", nargs="?", metavar="QUERY", help="the SQL query (none: read queries from a prompt or stdin)"
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument("--csv", action="store_true", help="write the answer as CSV to stdout")
    out.add_argument("--json", action="store_true", help="write the answer as a JSON array of row objects to stdout")
    out.add_argument("--parquet", metavar="FILE", type=output_file, help="write the answer to this Parquet file")
    p.add_argument(
        "--limit",
        type=Number(integer=True, minimum=1),
        default=None,
        metavar="N",
        help=f"at most N rows (the scan stops early); a printed table shows {SHOWN_ROWS} rows by default",
    )


def run(args: argparse.Namespace) -> int:
    lake = usable_lake(args.lake)
    if args.query is None:
        if args.parquet is not None:
            print("cryptolake sql: error: --parquet writes one answer: give a QUERY", file=sys.stderr)
            return 2
        return _session(lake, args)
    _answer(lake, args.query, args)
    return 0


def _answer(lake: Lake, query: str, args: argparse.Namespace) -> None:
    from pipeline.sql import query as run_query

    if args.csv or args.json or args.parquet is not None:
        frame = run_query(lake, query, limit=args.limit)
        if args.csv:
            sys.stdout.write(frame.write_csv())
        elif args.json:
            sys.stdout.write(frame.write_json() + "\n")
        else:
            args.parquet.parent.mkdir(parents=True, exist_ok=True)  # checked creatable by output_file
            frame.write_parquet(args.parquet)
            print(f"wrote {frame.height:,} rows to {args.parquet}", file=sys.stderr)
        return
    shown = args.limit or SHOWN_ROWS
    frame = run_query(lake, query, limit=shown + 1)  # one more says whether there is more
    print(_render(frame.head(shown)))
    if frame.height > shown:
        print(f"(first {shown:,} rows; --limit N shows more, --csv or --parquet write them all)")
    else:
        print(f"({frame.height:,} row{'' if frame.height == 1 else 's'})")


def _render(frame: pl.DataFrame) -> str:
    import polars as pl

    with pl.Config(tbl_rows=-1, tbl_cols=-1, fmt_str_lengths=60, tbl_width_chars=10_000, tbl_hide_dataframe_shape=True):
        return str(frame)


def _session(lake: Lake, args: argparse.Namespace) -> int:
    """Queries from the prompt (a terminal) or from stdin (a pipe, a file), each ending in ';'. A failed query
    prints its one-line error and the session goes on; the exit status is 2 when any failed."""
    from pipeline.errors import CryptolakeError

    tty = sys.stdin.isatty()
    if tty:
        print(
            f"cryptolake sql on {lake.root}: end a query with ';'; .tables, .schema NAME, \\q to quit", file=sys.stderr
        )
    read = _prompt_reader() if tty else _pipe_reader()
    failed = 0
    pending = ""
    while (line := read(bool(pending))) is not None:
        command = line.strip()
        if not pending and command in ("\\q", "quit", "exit"):
            break
        if not pending and command.startswith("."):
            failed += not _dot_command(lake, command)
            continue
        pending += line + "\n"
        statements, rest = split_statements(pending)
        pending = rest if rest.strip() else ""
        for statement in statements:
            try:
                _answer(lake, statement, args)
            except CryptolakeError as exc:
                print(f"error: {exc}", file=sys.stderr)
                failed += 1
            sys.stdout.flush()
    if _has_sql(pending):  # the last query may lack its ';' at the end of input
        try:
            _answer(lake, pending, args)
        except CryptolakeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
    return 2 if failed else 0


def _prompt_reader() -> Callable[[bool], str | None]:
    try:
        import readline  # noqa: F401 - line editing and history for input()
    except ImportError:  # pragma: no cover - not every Python has it
        pass

    def read(continuing: bool) -> str | None:
        try:
            return input("   ...> " if continuing else "lake sql> ")
        except EOFError:
            print(file=sys.stderr)
            return None

    return read


def _pipe_reader() -> Callable[[bool], str | None]:
    lines = iter(sys.stdin.read().splitlines())
    return lambda continuing: next(lines, None)


def _dot_command(lake: Lake, command: str) -> bool:
    from pipeline.lake import tables
    from pipeline.lake.summary import summarize
    from pipeline.sql import sql_name

    word, _, rest = command.partition(" ")
    if word == ".tables":
        for spec, summary in zip(tables.ALL_TABLES, summarize(lake, tables.ALL_TABLES), strict=True):
            state = "not created yet" if summary.version is None else f"{summary.rows:,} rows"
            print(f"  {sql_name(spec):<24} {state}")
        return True
    if word == ".schema":
        by_name = {sql_name(spec): spec for spec in tables.ALL_TABLES}
        wanted = by_name.get(rest.strip().rstrip(";").lower())
        if wanted is None:
            print(f"error: .schema needs a table name, one of {', '.join(by_name)}", file=sys.stderr)
            return False
        for field in wanted.schema:
            print(f"  {field.name:<16} {field.type}")
        return True
    print(f"error: unknown command {word!r}: .tables, .schema NAME, \\q", file=sys.stderr)
    return False


def _has_sql(text: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in text.splitlines())


def split_statements(text: str) -> tuple[list[str], str]:
    """The complete statements in ``text`` (each ended by a ';' outside quotes and comments) and what follows."""
    statements: list[str] = []
    start = 0
    quote: str | None = None
    comment = False
    i = 0
    while i < len(text):
        char = text[i]
        if comment:
            comment = char != "\n"
        elif quote:
            quote = None if char == quote else quote  # '' inside a literal closes and reopens: same result
        elif char in ("'", '"'):
            quote = char
        elif text.startswith("--", i):
            comment = True
        elif char == ";":
            statement = text[start:i].strip()
            if statement:
                statements.append(statement)
            start = i + 1
        i += 1
    return statements, text[start:]
