"""What the CLI tests share: the real parser's subcommands, a lake with rows in it, and its bytes to compare."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from pipeline.cli import build_parser


def subparsers() -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's parser, as `cryptolake` builds them (the option matrices are generated from these)."""
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(subs.choices)


def lake_bytes(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its SHA-256 ({} when the folder does not exist): equal = untouched."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
