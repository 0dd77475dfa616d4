"""Contracts of bronze/derivatives and bronze/liquidations: rows the parsers give pass, and a row breaking a
rule fails under that rule's name (what silver's quarantine will record)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pandera.errors
import polars as pl
import pytest

from contracts.bronze import derivatives_schema, liquidations_schema
from pipeline.lake.tables import BRONZE_DERIVATIVES, BRONZE_LIQUIDATIONS
from pipeline.venues._derivatives import derivative_row, liquidation_row

NOW = dt.datetime(2026, 8, 12, 14, tzinfo=dt.UTC)
TS_MS = 1786540471710  # 2026-08-12 13:14:31 UTC
RECV_US = TS_MS * 1000 + 5_000


def derivatives(*rows: tuple[Any, ...]) -> pl.DataFrame:
    return pl.DataFrame(BRONZE_DERIVATIVES.from_rows(list(rows)))


def liquidations(*rows: tuple[Any, ...]) -> pl.DataFrame:
    return pl.DataFrame(BRONZE_LIQUIDATIONS.from_rows(list(rows)))


def funding(**change: Any) -> tuple[Any, ...]:
    values: dict[str, Any] = dict(
        funding_rate=-0.0001, next_funding_rate=None, funding_time_ms=TS_MS + 60_000, next_funding_time_ms=None,
        raw='{"method":"current_period"}',
    )  # fmt: skip
    market = change.pop("market", "swap")
    values.update(change)
    return derivative_row("okx", market, "BTC-USDT-SWAP", "funding-rate", TS_MS, RECV_US, "ws", **values)


GOOD = [
    funding(),
    derivative_row("okx", "swap", "BTC-USDT-SWAP", "open-interest", TS_MS, RECV_US, "ws", open_interest=0.0,
                   open_interest_ccy=1.5, open_interest_usd=9e9),
    derivative_row("deribit", "option", "ETH-27DEC26-3000-C", "ticker", TS_MS, RECV_US, "capture", mark_price=0.0,
                   index_price=3000.1, open_interest=12.0),
    derivative_row("okx", "index", "BTC-USDT", "index-tickers", TS_MS, RECV_US, "ws", index_price=63902.1),
]  # fmt: skip


def failed_rules(schema: Any, frame: pl.DataFrame) -> set[str]:
    try:
        schema.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        return set(exc.failure_cases["check"].cast(pl.String).to_list())
    return set()


def test_rows_the_parsers_give_pass() -> None:
    assert failed_rules(derivatives_schema(NOW), derivatives(*GOOD)) == set()
    good = liquidation_row("okx", "swap", "BTC-USDT-SWAP", "sell", 63012.4, 13.0, TS_MS, RECV_US, "ws", None)
    assert failed_rules(liquidations_schema(NOW), liquidations(good)) == set()


DERIVATIVE_CASES = {
    "rates_finite": funding(funding_rate=math.inf),
    "mark_positive": derivative_row("okx", "swap", "BTC-USDT-SWAP", "mark-price", TS_MS, RECV_US, "ws", mark_price=0.0),
    "greater_than_or_equal_to(0)": derivative_row("okx", "swap", "X-USDT-SWAP", "open-interest", TS_MS, RECV_US, "ws",
                                                  open_interest=-1.0),
    "greater_than(0)": derivative_row("okx", "index", "BTC-USDT", "index-tickers", TS_MS, RECV_US, "ws", index_price=-2.0),
    "carries_state": derivative_row("okx", "swap", "BTC-USDT-SWAP", "funding-rate", TS_MS, RECV_US, "ws"),
    "raw_is_object": funding(raw="[1]"),
    "isin(('spot', 'swap', 'future', 'option', 'index'))": funding(market="perp"),
    "in_time_window": derivative_row("okx", "index", "BTC-USDT", "index-tickers", TS_MS + 86_400_000, RECV_US, "ws",
                                     index_price=1.0),
}  # fmt: skip


@pytest.mark.parametrize("rule", list(DERIVATIVE_CASES))
def test_a_derivatives_row_breaking_a_rule_fails_under_its_name(rule: str) -> None:
    assert failed_rules(derivatives_schema(NOW), derivatives(*GOOD, DERIVATIVE_CASES[rule])) == {rule}


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"side": "long"}, "isin(('buy', 'sell'))"),
        ({"price": 0.0}, "greater_than(0)"),
        ({"size": -1.0}, "greater_than(0)"),
    ],
)
def test_a_liquidation_breaking_a_rule_fails_under_its_name(change: dict[str, Any], rule: str) -> None:
    values: dict[str, Any] = {"side": "buy", "price": 1.0, "size": 2.0}
    values.update(change)
    bad = liquidation_row("okx", "swap", "BTC-USDT-SWAP", values["side"], values["price"], values["size"], TS_MS,
                          RECV_US, "ws", None)  # fmt: skip
    assert failed_rules(liquidations_schema(NOW), liquidations(bad)) == {rule}
