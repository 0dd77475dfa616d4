"""silver/derivative_bars against a plain-Python computation from the bronze rows; late rows restate exactly
the minutes they touch (an index row: every instrument on that index); twice = once; incremental runs over
any commit boundaries equal one run over everything."""

from __future__ import annotations

import random
from collections import defaultdict

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.lake import writer
from pipeline.lake.location import resolve_lake
from pipeline.lake.tables import BRONZE_DERIVATIVES, BRONZE_LIQUIDATIONS, SILVER_DERIVATIVE_BARS, SILVER_QUARANTINE
from pipeline.silver import run_silver
from pipeline.venues._derivatives import derivative_row, liquidation_row
from tests.silver_rows import MIN_MS, T0_MS
from tests.silver_tables import LAKE_PROPERTY

MINUTES = 12
# instrument -> (venue, market, the index rows it is priced against: None = its own index_price)
INSTRUMENTS = {
    "BTC-USDT-SWAP": ("okx", "swap", "BTC-USDT"),
    "BTC-USDT-261225": ("okx", "future", "BTC-USDT"),
    "ETH-USDT-SWAP": ("okx", "swap", "ETH-USDT"),
    "ETH-PERPETUAL": ("deribit", "swap", None),
}


def _rows(seed: int, n: int = 400, start_ms: int = T0_MS, span_ms: int = MINUTES * MIN_MS) -> tuple[list, list]:
    """Random bronze rows of every kind over ``span_ms`` (integer prices: float sums exact in any order)."""
    rng = random.Random(seed)
    deriv, liq = [], []
    for _ in range(n):
        ts = start_ms + rng.randrange(span_ms)
        rcv = ts * 1000 + rng.randrange(5000)
        kind = rng.randrange(7)
        inst = rng.choice(list(INSTRUMENTS))
        venue, market, _ = INSTRUMENTS[inst]
        px = 100.0 + rng.randrange(50)
        if kind == 0 and venue == "okx":
            deriv.append(derivative_row(venue, market, inst, "mark-price", ts, rcv, "ws", mark_price=px))
        elif kind == 1 and venue == "okx":
            oi = float(rng.randrange(1000))
            deriv.append(derivative_row(venue, market, inst, "open-interest", ts, rcv, "ws", open_interest=oi,
                                        open_interest_ccy=oi / 10, open_interest_usd=oi * 100))  # fmt: skip
        elif kind == 2 and market == "swap" and venue == "okx":
            deriv.append(derivative_row(venue, market, inst, "funding-rate", ts, rcv, "ws",
                                        funding_rate=rng.randrange(-50, 50) / 1e5, funding_time_ms=T0_MS + 8 * 3600_000))  # fmt: skip
        elif kind == 3:
            name = rng.choice(("BTC-USDT", "ETH-USDT"))
            deriv.append(derivative_row("okx", "index", name, "index-tickers", ts, rcv, "ws", index_price=px + 0.5))
        elif kind == 4:
            deriv.append(derivative_row("deribit", "swap", "ETH-PERPETUAL", "ticker", ts, rcv, "ws",
                                        funding_rate=rng.randrange(-50, 50) / 1e6, open_interest_usd=float(rng.randrange(9999)),
                                        mark_price=px, index_price=px - 0.25))  # fmt: skip
        elif kind == 5:
            # the Deribit index channel (the perpetual's own ticker index wins) and an option (left out)
            deriv.append(derivative_row("deribit", "index", "eth_usd", "deribit_price_index.eth_usd", ts, rcv, "ws",
                                        index_price=px + 3))  # fmt: skip
            deriv.append(derivative_row("deribit", "option", "ETH-27DEC26-3000-C", "ticker", ts, rcv, "ws",
                                        mark_price=0.05, index_price=px, open_interest=5.0))  # fmt: skip
        else:
            liq_inst = rng.choice(("BTC-USDT-SWAP", "ETH-USDT-SWAP", "IOST-USDT-SWAP"))
            liq.append(liquidation_row("okx", "swap", liq_inst, rng.choice(("buy", "sell")), px,
                                       float(rng.randrange(1, 20)), ts, rcv, "ws", None))  # fmt: skip
    return deriv, liq


def _expected(deriv: list, liq: list, horizon_ms: int) -> dict[tuple[str, int], dict]:
    """The bars, computed row by row (field order of pipeline.venues._derivatives.derivative_row)."""
    by: dict[tuple[str, int], list] = defaultdict(list)
    index: dict[tuple[str, str, int], list] = defaultdict(list)
    for r in set(deriv):
        minute = r[4] // MIN_MS * MIN_MS
        if r[1] == "index":
            index[(r[0], r[2], minute)].append(r)
        elif r[1] in ("swap", "future"):
            by[(r[2], minute)].append(r)
    liqs: dict[tuple[str, int], list] = defaultdict(list)
    for r in {(*r[:7], r[9]): r for r in liq}.values():  # a liquidation received twice counts once
        liqs[(r[2], r[6] // MIN_MS * MIN_MS)].append(r)
    out = {}
    for key in set(by) | set(liqs):
        inst, minute = key
        if minute + MIN_MS > horizon_ms:
            continue
        rows = sorted(by.get(key, []), key=lambda r: (r[4], r[5]))

        def last(col: int, rows: list = rows) -> float | None:
            vals = [r[col] for r in rows if r[col] is not None]
            return vals[-1] if vals else None

        marks = [r[14] for r in rows if r[14] is not None]
        idx = last(15)
        name = INSTRUMENTS.get(inst, ("", "", None))[2]
        if idx is None and name is not None:
            idx_rows = sorted(index.get(("okx", name, minute), []), key=lambda r: (r[4], r[5]))
            idx = idx_rows[-1][15] if idx_rows else None
        ls = liqs.get(key, [])
        out[key] = {
            "mark_open": marks[0] if marks else None,
            "mark_high": max(marks) if marks else None,
            "mark_low": min(marks) if marks else None,
            "mark_close": marks[-1] if marks else None,
            "index_close": idx,
            "basis": marks[-1] / idx - 1 if marks and idx else None,
            "open_interest": last(11),
            "open_interest_ccy": last(12),
            "open_interest_usd": last(13),
            "funding_rate": last(7),
            "liq_buy_volume": sum(r[5] for r in ls if r[3] == "buy"),
            "liq_sell_volume": sum(r[5] for r in ls if r[3] == "sell"),
            "liq_buy_count": sum(r[3] == "buy" for r in ls),
            "liq_sell_count": sum(r[3] == "sell" for r in ls),
        }
    return out


def _table(lake) -> dict[tuple[str, int], dict]:
    df = writer.read(lake, SILVER_DERIVATIVE_BARS)
    return {(r["instrument"], int(r["open_time"].timestamp() * 1000)): r for r in df.iter_rows(named=True)}


def _put(lake, deriv: list, liq: list) -> None:
    writer.append_rows(lake, BRONZE_DERIVATIVES, deriv)
    writer.append_rows(lake, BRONZE_LIQUIDATIONS, liq)


def _assert_equal(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for k, w in want.items():
        for col, v in w.items():
            assert got[k][col] == (pytest.approx(v, rel=1e-12) if isinstance(v, float) else v), (k, col)


NOW = T0_MS + MINUTES * MIN_MS + 30_000  # every minute closed but the last


def test_bars_equal_a_plain_computation_late_rows_restate_exactly_and_twice_is_once(lake) -> None:
    deriv, liq = _rows(3)
    _put(lake, deriv, liq)
    report = run_silver(lake, now_ms=NOW, lateness_secs=30)
    assert report.ok
    got, horizon = _table(lake), (NOW - 30_000) // MIN_MS * MIN_MS
    want = _expected(deriv, liq, horizon)
    _assert_equal(got, want)
    # every kind of bar is there: OKX basis from the index channel, Deribit's from its own ticker, a future,
    # a liquidation-only instrument; no option, no index
    assert {k[0] for k in got} == {*INSTRUMENTS, "IOST-USDT-SWAP"}
    assert any(v["basis"] is not None for k, v in got.items() if k[0] == "BTC-USDT-261225")
    assert got and all(v["market"] in ("swap", "future") for v in got.values())
    assert report.written["silver/derivative_bars"] == len(want)

    # twice = once: nothing written, nothing updated
    again = run_silver(lake, now_ms=NOW, lateness_secs=30)
    assert again.ok and again.written.get("silver/derivative_bars", 0) == 0 and _table(lake) == got

    # late rows, minutes behind the horizon: an index row of BTC-USDT (the swap's and the future's bars of
    # its minute), a liquidation of ETH-USDT-SWAP, a Deribit index row (no change: the ticker's index wins)
    m3, m5, m7 = (T0_MS + k * MIN_MS for k in (3, 5, 7))
    late_d = [
        derivative_row("okx", "index", "BTC-USDT", "index-tickers", m3 + 59_999, (m3 + 59_999) * 1000 + 9, "ws",
                       index_price=77.0),
        derivative_row("deribit", "index", "eth_usd", "deribit_price_index.eth_usd", m7 + 59_999,
                       (m7 + 59_999) * 1000 + 9, "ws", index_price=1.0),
    ]  # fmt: skip
    late_l = [liquidation_row("okx", "swap", "ETH-USDT-SWAP", "sell", 120.0, 4.0, m5 + 1, (m5 + 1) * 1000, "ws", None)]
    _put(lake, late_d, late_l)
    late = run_silver(lake, now_ms=NOW, lateness_secs=30)
    after = _table(lake)
    changed = {k for k in after if k not in got or after[k] != got[k]}
    want2 = _expected(deriv + late_d, liq + late_l, horizon)
    _assert_equal(after, want2)
    expect_changed = {k for k in want2 if want2[k] != want.get(k)}
    assert changed == expect_changed
    assert {("ETH-USDT-SWAP", m5)} <= changed <= {("ETH-USDT-SWAP", m5), ("BTC-USDT-SWAP", m3), ("BTC-USDT-261225", m3)}
    assert late.written["silver/derivative_bars"] == len(changed)


def test_a_liquidation_received_on_two_connections_counts_once(lake) -> None:
    """OKX pushes liquidation-orders per instType: two connections carrying swaps both store each one."""
    m2 = T0_MS + 2 * MIN_MS
    one = liquidation_row("okx", "swap", "BTC-USDT-SWAP", "buy", 101.0, 3.0, m2 + 5, (m2 + 5) * 1000 + 40, "ws", None)
    copy = (*one[:7], one[7] + 900, *one[8:])  # the same push, received later on the other connection
    other = liquidation_row("okx", "swap", "BTC-USDT-SWAP", "buy", 101.0, 2.0, m2 + 5, (m2 + 5) * 1000 + 40, "ws", None)
    _put(lake, [], [one, copy, other])
    assert run_silver(lake, now_ms=NOW, lateness_secs=30).ok
    bar = _table(lake)[("BTC-USDT-SWAP", m2)]
    assert (bar["liq_buy_count"], bar["liq_buy_volume"]) == (2, 5.0)
    assert bar == {**bar, **_expected([], [one, copy, other], NOW)[("BTC-USDT-SWAP", m2)]}


def test_bad_bronze_rows_are_quarantined_with_their_rule_and_left_out(lake) -> None:
    deriv, liq = _rows(4, n=80)
    bad = derivative_row("okx", "swap", "BTC-USDT-SWAP", "mark-price", T0_MS + 1, (T0_MS + 1) * 1000, "ws",
                         mark_price=-5.0)  # fmt: skip
    _put(lake, [*deriv, bad], liq)
    report = run_silver(lake, now_ms=NOW, lateness_secs=30, fail_share=1.0)
    assert report.ok
    _assert_equal(_table(lake), _expected(deriv, liq, (NOW - 30_000) // MIN_MS * MIN_MS))
    q = writer.read(lake, SILVER_QUARANTINE).filter(pl.col("table") == "bronze/derivatives")
    assert sorted(q["rule"].to_list()) == ["mark_positive", "mark_price:greater_than_or_equal_to(0)"]


@LAKE_PROPERTY
@given(seed=st.integers(0, 10_000), cuts=st.lists(st.integers(0, MINUTES - 1), min_size=1, max_size=3))
def test_incremental_runs_over_any_commit_boundaries_equal_one_run(tmp_path_factory, seed, cuts) -> None:
    """Rows arrive in commits, each row at a random run after its time (so some land behind a horizon
    already published: late data); a run after each commit, the clock moving forward, gives the same table
    as one run over everything."""
    root = tmp_path_factory.mktemp("dbars")
    steps, whole = resolve_lake(str(root / "steps")), resolve_lake(str(root / "whole"))
    deriv, liq = _rows(seed, n=150)
    rng = random.Random(seed)
    clocks = [T0_MS + m * MIN_MS + 30_000 for m in sorted(cuts)] + [NOW]

    def arrival(ts: int) -> int:  # a random run among those whose clock is past the row's time
        return rng.choice([k for k, c in enumerate(clocks) if c >= ts])

    d_at = [arrival(r[4]) for r in deriv]
    l_at = [arrival(r[6]) for r in liq]
    for k, clock in enumerate(clocks):
        _put(
            steps,
            [r for r, a in zip(deriv, d_at, strict=True) if a == k],
            [r for r, a in zip(liq, l_at, strict=True) if a == k],
        )
        assert run_silver(steps, now_ms=clock, lateness_secs=30).ok
    _put(whole, deriv, liq)
    assert run_silver(whole, now_ms=NOW, lateness_secs=30).ok
    assert _table(steps) == _table(whole)


@pytest.mark.parametrize(
    "column,value,rule",
    [
        ("mark_close", -1.0, "mark_close:greater_than(0)"),
        ("index_close", 0.0, "index_close:greater_than(0)"),
        ("liq_buy_count", -1, "liq_buy_count:greater_than_or_equal_to(0)"),
        ("liq_sell_volume", -0.5, "liq_sell_volume:greater_than_or_equal_to(0)"),
        ("basis", float("inf"), "basis_finite"),
        ("mark_high", 1.0, "mark_range_consistent"),
        ("market", "option", "market:isin(('swap', 'future'))"),
    ],
)
def test_each_contract_rule_fails_under_its_name(column, value, rule) -> None:
    import datetime as dt

    from contracts.silver import SilverDerivativeBars
    from pipeline.silver.derivative_bars import bars_1m
    from pipeline.silver.validate import check

    deriv, liq = _rows(8, n=120)
    assert BRONZE_DERIVATIVES.from_rows is not None and BRONZE_LIQUIDATIONS.from_rows is not None
    d, lq = pl.DataFrame(BRONZE_DERIVATIVES.from_rows(deriv)), pl.DataFrame(BRONZE_LIQUIDATIONS.from_rows(liq))
    good = bars_1m(d, lq)
    now = dt.datetime.now(dt.UTC)
    assert not check(SilverDerivativeBars.to_schema(), good, "t", run_id="r", detected=now, fail_share=1.0).failures
    target = good.filter(pl.col("mark_close").is_not_null() & pl.col("basis").is_not_null()).head(1)
    bad = target.with_columns(pl.lit(value, dtype=good.schema[column]).alias(column))
    res = check(SilverDerivativeBars.to_schema(), bad, "t", run_id="r", detected=now, fail_share=1.0)
    assert rule in [f.rule for f in res.failures] and res.good.height == 0
