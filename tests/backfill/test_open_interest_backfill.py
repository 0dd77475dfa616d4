"""The OKX open-interest-history row builder (the first piece of backfill --kind open-interest)."""

from __future__ import annotations

import pytest

from pipeline.errors import FrameError
from pipeline.lake.tables import BRONZE_DERIVATIVES
from pipeline.venues import okx


def test_an_okx_open_interest_history_item_becomes_a_bronze_derivatives_row() -> None:
    item = ["1790550000000", "2800476.45", "28006.5419", "2360916466.88"]  # ccxt's documented example
    row = okx.open_interest_history_row(item, "BTC-USDT-SWAP", 5)
    assert row[:7] == ("okx", "swap", "BTC-USDT-SWAP", "open-interest-history", 1790550000000, 5, "rest")
    assert row[11:14] == (2800476.45, 28006.5419, 2360916466.88) and row[-1] is None
    assert BRONZE_DERIVATIVES.from_rows is not None and BRONZE_DERIVATIVES.from_rows([row]).num_rows == 1
    assert okx.open_interest_history_row([*item, "7"], "BTC-USDT-SWAP", 5)[-1] == '{"4":"7"}'
    with pytest.raises(FrameError, match="oi is not a number"):
        okx.open_interest_history_row([item[0], "x", *item[2:]], "BTC-USDT-SWAP", 5)
    with pytest.raises(FrameError, match="not an array"):
        okx.open_interest_history_row({"ts": item[0]}, "BTC-USDT-SWAP", 5)
