"""`cryptolake import` lands OKX derivatives captures in bronze/derivatives and bronze/liquidations: the real
funding-rate push (../shared/realdata/okx-funding) and a recorded-shape session with every field today's venue
sends, each key of each item a column value or in raw; a bad item is a reject with its reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pipeline.cli import main
from pipeline.lake import writer
from pipeline.lake.location import Lake
from pipeline.lake.tables import BRONZE_DERIVATIVES, BRONZE_LIQUIDATIONS, BRONZE_QUOTES, BRONZE_REJECTS
from tests.venues.test_okx_derivatives import FUNDING_2026, LIQUIDATION_ITEM

# OKX key -> bronze/derivatives column (timestamps are ms strings, numbers are strings; "" is null).
COLUMN_OF = {
    "instId": "instrument", "ts": "exchange_ts", "fundingRate": "funding_rate", "nextFundingRate": "next_funding_rate",
    "fundingTime": "funding_time", "nextFundingTime": "next_funding_time", "oi": "open_interest",
    "oiCcy": "open_interest_ccy", "oiUsd": "open_interest_usd", "markPx": "mark_price", "idxPx": "index_price",
}  # fmt: skip


def _as_sent(column: str, value: Any) -> Any:
    """A column value back in OKX's spelling, to compare with the item."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return str(int(value.timestamp() * 1000))
    return value


def assert_every_key_kept(item: dict[str, Any], row: dict[str, Any]) -> None:
    raw = json.loads(row["raw"]) if row["raw"] else {}
    for key, sent in item.items():
        if key in raw:
            assert raw[key] == sent, key
        else:
            column = COLUMN_OF[key]  # KeyError: a key neither in raw nor a column was dropped
            kept = _as_sent(column, row[column])
            assert kept == sent if isinstance(kept, str) else kept == float(sent), (key, sent, kept)


def recorder_log(path: Path, frames: list[dict[str, Any]]) -> Path:
    """A capture in cryptofeed's recorder line format (the one ../shared/realdata uses)."""
    lines = ["wss://ws.okx.com:8443/ws/v5/public <-> 1786540470.000000"]
    lines += [f"{1786540471 + n}.000000: {json.dumps(f, separators=(',', ':'))}" for n, f in enumerate(frames)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_real_okx_funding_push_imports_with_every_field(lake: Lake, realdata: Path, capsys) -> None:
    path = realdata / "okx-funding" / "nautilus-funding-rate.ws.log"
    (item,) = json.loads(path.read_text().splitlines()[1].split(": ", 1)[1])["data"]
    assert main(["--lake", lake.root, "import", str(path), "--venue", "okx"]) == 0
    assert main(["--lake", lake.root, "import", str(path), "--venue", "okx"]) == 0  # a second import is a no-op
    assert "already imported" in capsys.readouterr().out
    rows = writer.read(lake, BRONZE_DERIVATIVES).to_dicts()
    assert len(rows) == 1
    row = rows[0]
    assert (row["venue"], row["market"], row["channel"], row["source"]) == ("okx", "swap", "funding-rate", "capture")
    assert (row["funding_rate"], row["next_funding_rate"]) == (0.0001, 0.0002)
    assert row["funding_time"] == datetime(2025, 4, 14, 0, 25, 49, 506000, tzinfo=UTC)
    assert row["raw"] is None  # the test data carries only columns
    assert_every_key_kept(item, row)
    assert writer.count_rows(lake, BRONZE_REJECTS) == 0


def test_a_session_of_every_channel_imports_into_both_tables(lake: Lake, tmp_path: Path) -> None:
    oi = {"instId": "BTC-USDT-SWAP", "instType": "SWAP", "oi": "2836217.02", "oiCcy": "28362.1702",
          "oiUsd": "1812770613.17", "ts": "1786540471710"}  # fmt: skip
    mark = {"instId": "BTC-USDT-SWAP", "instType": "SWAP", "markPx": "63918.4", "ts": "1786540471711"}
    index = {"instId": "BTC-USDT", "idxPx": "63902.1", "high24h": "64466.2", "low24h": "63162.9",
             "open24h": "64297.5", "sodUtc0": "63566.3", "sodUtc8": "63584.7", "ts": "1786540471712"}  # fmt: skip
    future_fields = {**FUNDING_2026, "fundingIntervalHours": "8", "ts": "1786540471713"}  # a field nobody has seen
    frames: list[dict[str, Any]] = [
        {"event": "subscribe", "arg": {"channel": "funding-rate", "instId": "BTC-USDT-SWAP"}, "connId": "a1"},
        {"arg": {"channel": "funding-rate", "instId": "BTC-USDT-SWAP"}, "data": [FUNDING_2026]},
        {"arg": {"channel": "funding-rate", "instId": "BTC-USDT-SWAP"}, "data": [future_fields]},
        {"arg": {"channel": "open-interest", "instId": "BTC-USDT-SWAP"}, "data": [oi]},
        {"arg": {"channel": "mark-price", "instId": "BTC-USDT-SWAP"}, "data": [mark]},
        {"arg": {"channel": "index-tickers", "instId": "BTC-USDT"}, "data": [index]},
        {"arg": {"channel": "liquidation-orders", "instType": "SWAP"}, "data": [LIQUIDATION_ITEM]},
        {"arg": {"channel": "mark-price", "instId": "BTC-USDT-SWAP"}, "data": [{**mark, "markPx": "-1"}]},
    ]
    path = recorder_log(tmp_path / "derivatives.ws.log", frames)
    assert main(["--lake", lake.root, "import", str(path), "--venue", "okx"]) == 0

    derivatives = writer.read(lake, BRONZE_DERIVATIVES).sort("exchange_ts")
    assert derivatives["channel"].to_list() == [
        "funding-rate", "open-interest", "mark-price", "index-tickers", "funding-rate",
    ]  # fmt: skip
    for item, row in zip([FUNDING_2026, oi, mark, index, future_fields], derivatives.to_dicts(), strict=True):
        assert_every_key_kept(item, row)
    assert derivatives.filter(pl.col("channel") == "index-tickers")["market"].to_list() == ["index"]
    assert derivatives["date"].unique().to_list() == [datetime(2026, 8, 12).date()]  # partitioned by exchange date

    liquidations = writer.read(lake, BRONZE_LIQUIDATIONS).sort("exchange_ts")
    assert liquidations.select("instrument", "side", "price", "size").rows() == [
        ("BTC-USDT-SWAP", "sell", 63012.4, 13.0),
        ("BTC-USDT-SWAP", "buy", 63020.0, 0.5),
    ]
    assert json.loads(liquidations["raw"][0])["posSide"] == "long"

    (reject,) = writer.read(lake, BRONZE_REJECTS).to_dicts()
    assert reject["reason"] == "okx mark-price: markPx is not a positive price: '-1'"
    assert '"markPx":"-1"' in reject["frame"]
    assert writer.open_table(lake, BRONZE_QUOTES) is None  # derivatives frames are not quotes


@pytest.mark.parametrize("rel", ["deribit/ccxt-2026-08.jsonl", "deribit/cryptofeed-2021-07-options.ws.log"])
def test_deribit_tickers_import_a_derivatives_row_each(lake: Lake, realdata: Path, rel: str) -> None:
    assert main(["--lake", lake.root, "import", str(realdata / rel), "--venue", "deribit"]) == 0
    quotes = writer.read(lake, BRONZE_QUOTES).filter(pl.col("channel") == "ticker")
    derivatives = writer.read(lake, BRONZE_DERIVATIVES)
    assert derivatives.height == quotes.height > 0  # every ticker of a perpetual or an option
    assert sorted(derivatives["exchange_ts"].to_list()) == sorted(quotes["exchange_ts"].to_list())
    assert (
        derivatives["mark_price"].to_list()
        == derivatives.join(
            quotes.select("instrument", "exchange_ts", "mark_price"), on=["instrument", "exchange_ts"], how="left"
        )["mark_price_right"].to_list()
    )
