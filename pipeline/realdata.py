"""Where the real recordings are, for the demo and the tests alike: ``$CRYPTOLAKE_REALDATA``, else
``../shared/realdata`` beside the checkout (where CI puts it)."""

from __future__ import annotations

import os
from pathlib import Path

REALDATA_ENV = "CRYPTOLAKE_REALDATA"
_CHECKOUT = Path(__file__).resolve().parents[1]


def realdata_dir() -> Path:
    env = os.environ.get(REALDATA_ENV)
    return Path(env) if env else _CHECKOUT.parent / "shared" / "realdata"
