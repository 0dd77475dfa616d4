"""1-minute quote bars against a plain-Python recomputation; late quotes restate their minute only."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest

from pipeline.lake import writer
from pipeline.lake.tables import BRONZE_QUOTES, SILVER_QUOTE_BARS
from pipeline.silver import run_silver
from tests.silver_rows import MIN_MS, T0_MS, quote


def _expected(rows: list[tuple], horizon_ms: int) -> dict[tuple[str, int], dict]:
    by = defaultdict(list)
    for r in rows:
        by[(r[2], r[4] // MIN_MS * MIN_MS)].append(r)
    out = {}
    for (inst, m), rs in by.items():
        if m + MIN_MS > horizon_ms:
            continue
        rs.sort(key=lambda r: (r[4], r[5]))
        mids = [(r[8] + r[10]) / 2 for r in rs]
        marks = [r[15] for r in rs if r[15] is not None]
        out[(inst, m)] = {
            "mid_open": mids[0],
            "mid_close": mids[-1],
            "mid_high": max(mids),
            "mid_low": min(mids),
            "spread_mean": sum(r[10] - r[8] for r in rs) / len(rs),
            "mark_price": marks[-1] if marks else None,
            "quote_count": len(rs),
        }
    return out


def _table(lake) -> dict[tuple[str, int], dict]:
    return {
        (r["instrument"], int(r["open_time"].timestamp() * 1000)): r
        for r in writer.read(lake, SILVER_QUOTE_BARS).iter_rows(named=True)
    }


def test_quote_bars_match_a_plain_recomputation_and_late_quotes_restate_one_minute(lake) -> None:
    rng = random.Random(5)
    rows = []
    for inst in ("ETH-27DEC26-3000-C", "ETH-27DEC26-2500-P"):
        for i in range(300):
            bid = round(50 + rng.random() * 5, 2)
            rows.append(
                quote(
                    inst,
                    T0_MS + rng.randrange(20 * MIN_MS),
                    bid,
                    bid + round(rng.random() + 0.01, 2),
                    mark=bid + 0.3 if i % 3 else None,
                    mark_iv=55.0,
                    delta=0.3,
                )
            )
    writer.append_rows(lake, BRONZE_QUOTES, rows)
    now = T0_MS + 15 * MIN_MS + 30_000
    assert run_silver(lake, now_ms=now, lateness_secs=30).ok
    horizon = (now - 30_000) // MIN_MS * MIN_MS
    got, want = _table(lake), _expected(rows, horizon)
    assert set(got) == set(want) and len(want) == 30
    for k, w in want.items():
        for col, v in w.items():
            assert got[k][col] == (pytest.approx(v, rel=1e-12) if isinstance(v, float) else v), (k, col)

    late = quote("ETH-27DEC26-3000-C", T0_MS + 3 * MIN_MS + 1, 10.0, 200.0)  # a wide quote, 12 minutes late
    writer.append_rows(lake, BRONZE_QUOTES, [late])
    report = run_silver(lake, now_ms=now, lateness_secs=30)
    after = _table(lake)
    changed = {k for k in after if after[k] != got[k]}
    assert changed == {("ETH-27DEC26-3000-C", T0_MS + 3 * MIN_MS)} and report.updated["silver/quote_bars"] == 1
    assert after[("ETH-27DEC26-3000-C", T0_MS + 3 * MIN_MS)]["mid_low"] == pytest.approx(
        min(105.0, got[("ETH-27DEC26-3000-C", T0_MS + 3 * MIN_MS)]["mid_low"])
    )


def test_a_quote_stored_twice_counts_once_in_one_run_or_two(tmp_path) -> None:
    """The same quote rows committed twice (byte for byte: an import repeated) give the bars of one copy,
    whether one run reads both copies or a later run finds the second one late."""
    from pipeline.lake.location import resolve_lake

    rows = [quote("BTC-1SEP26-60000-C", T0_MS + 7_000 * i, 0.05 + 0.001 * i, 0.06 + 0.001 * i) for i in range(20)]
    one, two = resolve_lake(str(tmp_path / "one")), resolve_lake(str(tmp_path / "two"))
    now = T0_MS + 5 * MIN_MS
    writer.append_rows(one, BRONZE_QUOTES, rows)
    writer.append_rows(one, BRONZE_QUOTES, rows)
    assert run_silver(one, now_ms=now).ok
    writer.append_rows(two, BRONZE_QUOTES, rows)
    assert run_silver(two, now_ms=now).ok
    writer.append_rows(two, BRONZE_QUOTES, rows)
    assert run_silver(two, now_ms=now + MIN_MS).ok
    want = _expected(rows, now - 60_000)
    for lake in (one, two):
        got = _table(lake)
        assert {k: v["quote_count"] for k, v in got.items()} == {k: v["quote_count"] for k, v in want.items()}
        assert all(got[k]["spread_mean"] == pytest.approx(v["spread_mean"], rel=1e-12) for k, v in want.items())
