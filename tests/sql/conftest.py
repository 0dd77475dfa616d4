"""A lake built the way users build one: the real recordings through `cryptolake import`, then `cryptolake silver`;
plus two trades that break the contract (quarantine) and two gaps (one open), so every example query has rows."""

from __future__ import annotations

import pytest

from pipeline.cli import main
from pipeline.lake import writer
from pipeline.lake.location import Lake, resolve_lake
from pipeline.lake.tables import BRONZE_GAPS, BRONZE_TRADES
from pipeline.realdata import realdata_dir
from tests.silver_rows import T0_MS, trade

RECORDINGS = [
    ("okx", "okx/cryptofeed-2022-05-public.ws.log"),
    ("okx", "okx/okcoin-v5-2023-05-candles.ws.log"),
    ("okx", "okx/ccxt-2026-08.jsonl"),
    ("deribit", "deribit/cryptofeed-2021-07-options.ws.log"),
    ("deribit", "deribit/ccxt-2026-08.jsonl"),
]
BAD_TRADES = [  # price and size must be > 0 (contracts/bronze.py)
    trade("BTC-USDT-SWAP", 990001, T0_MS, -1.0, 1.0),
    trade("BTC-USDT-SWAP", 990002, T0_MS + 1, 100.0, 0.0),
]
GAPS = [  # GAP_FIELDS order
    ("okx|BTC-USDT|trade_id|1", "okx", "BTC-USDT", "trade_id", T0_MS, T0_MS + 5000, 10, 15, "open", T0_MS * 1000,
     "trade ids 11-14 missing"),
    ("okx|*|reconnect|2", "okx", "*", "reconnect", T0_MS, T0_MS + 9000, None, None, "filled", T0_MS * 1000,
     "reconnected after 9 s"),
]  # fmt: skip


@pytest.fixture(scope="session")
def real_lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    recordings = realdata_dir()
    if not recordings.is_dir():
        pytest.skip(f"real recordings not found at {recordings} (set CRYPTOLAKE_REALDATA)")
    lake = resolve_lake(str(tmp_path_factory.mktemp("sql") / "lake"))
    for venue, rel in RECORDINGS:
        assert main(["--lake", lake.root, "import", str(recordings / rel), "--venue", venue]) == 0
    writer.append_rows(lake, BRONZE_TRADES, BAD_TRADES)
    writer.append_rows(lake, BRONZE_GAPS, GAPS)
    assert main(["--lake", lake.root, "silver"]) == 0
    return lake
