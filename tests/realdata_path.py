"""Where the real recordings are: $CRYPTOLAKE_REALDATA, else ../shared/realdata beside the checkout (CI)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def realdata_dir() -> Path:
    env = os.environ.get("CRYPTOLAKE_REALDATA")
    return Path(env) if env else REPO.parent / "shared" / "realdata"
