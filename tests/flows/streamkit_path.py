"""Re-export of the stream test kit for tests outside tests/ingest."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ingest"))

from streamkit import *  # noqa: E402,F401,F403
