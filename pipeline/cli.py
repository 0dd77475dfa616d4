"""The ``cryptolake`` command. Each subcommand is a module in ``pipeline.commands`` with ``HELP``,
``DESCRIPTION``, ``add_arguments(parser)`` and ``run(args) -> int``; adding a command is adding a module
and one line to ``COMMANDS``. Nothing here knows about Delta, WebSockets or Prefect."""

from __future__ import annotations

import argparse
import atexit
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from pipeline.errors import CryptolakeError
from pipeline.lake.location import DEFAULT_LAKE, LAKE_ENV

# command name -> module under pipeline.commands, in the order --help lists them
COMMANDS: dict[str, str] = {
    "sim": "sim",
    "stream": "stream",
    "import": "import_capture",
    "tables": "tables",
    "sql": "sql",
    "book": "book",
    "silver": "silver",
    "gold": "gold",
    "backtest": "backtest",
    "demo": "demo",
    "backfill": "backfill",
    "fill-gaps": "fill_gaps",
    "universe": "universe",
    "refresh": "refresh",
    "maintain": "maintain",
    "status": "status",
    "up": "up",
}

EPILOG = f"""\
The lake root is --lake, else ${LAKE_ENV}, else {DEFAULT_LAKE}. It may be a local folder or an object store
URI (s3://, gs://, az://) with credentials in $CRYPTOLAKE_STORAGE_OPTIONS (a JSON object).
Run `cryptolake COMMAND --help` for the options of each command."""


class _Parser(argparse.ArgumentParser):
    """Bad arguments end in one line on stderr that names the option and what fits (exit 2), not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cryptolake",
        description="Crypto market-data lakehouse: exchange WebSockets -> bronze Delta tables -> silver -> Qlib gold.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--lake", metavar="URI", help=f"lake root (default: ${LAKE_ENV} or {DEFAULT_LAKE})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"pipeline.commands.{module_name}")
        p = sub.add_parser(name, help=module.HELP, description=module.DESCRIPTION)
        module.add_arguments(p)
        p.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # deltalake's Rust logger warns on stderr (an object store without credentials: IMDS lookups) before the
    # error we report in one line; RUST_LOG=warn or debug still shows them.
    os.environ.setdefault("RUST_LOG", "error")
    try:
        return int(args.handler(args) or 0)
    except CryptolakeError as exc:
        print(f"cryptolake {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `cryptolake tables | head -3`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush does not raise again
        return 0


def entry() -> NoReturn:
    """The `cryptolake` console script: ``main``, then an exit that skips C++ static destructors.

    Arrow's thread pools may still hold a joinable thread when the interpreter tears down, and libstdc++ then
    aborts ("terminate called without an active exception", exit 134) after a command that succeeded: about
    1 run in 16 of `cryptolake universe` here (apache/arrow#34314). Everything Python registered to run at
    exit (logging's flush, temporary files) still runs first.
    """
    code = main()
    atexit._run_exitfuncs()  # noqa: SLF001 - the interpreter's own exit hooks, before the hard exit
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing left to deliver
            pass
    os._exit(code)


if __name__ == "__main__":
    entry()
