"""The universe: top N per venue from the simulator's tickers into silver/instruments, end-dating what
dropped out; and the on-demand refresh."""

from __future__ import annotations

import time

import polars as pl

from pipeline.lake import writer
from pipeline.lake.tables import BRONZE_CANDLES, SILVER_INSTRUMENTS, SILVER_TRADES
from pipeline.universe import UniverseFilters, apply_selection, current_universe, rank, refresh_universe
from tests.backfill.backfillkit import FAST_RETRY, bronze, truth


def _candidate(name: str, volume: float, oi: float | None = None, expiry_ms: int | None = None) -> dict:
    return {"venue": "okx", "instrument": name, "market": "spot", "base": name.split("-")[0], "quote": "USDT",
            "settle": None, "tick_size": 0.1, "lot_size": 0.001, "contract_value": None, "listing_time_ms": 1,
            "expiry_time_ms": expiry_ms, "strike": None, "option_type": None, "volume_24h_quote": volume, "open_interest": oi}  # fmt: skip


def test_refresh_selects_top_n_by_quote_volume_from_the_venues(sim, lake) -> None:
    filters = UniverseFilters(top_n=4, quote_currencies=("USDT",))
    okx, deribit = refresh_universe(lake, filters=filters, rest_url=sim.base_http_url, retry=FAST_RETRY)
    table = writer.read(lake, SILVER_INSTRUMENTS).sort("venue", "rank")
    for change in (okx, deribit):
        rows = table.filter(pl.col("venue") == change.venue)
        assert rows["rank"].to_list() == [1, 2, 3, 4] and rows["active"].all() and rows["valid_to"].is_null().all()
        vols = rows["volume_24h_quote"].to_list()
        assert vols == sorted(vols, reverse=True) and vols[0] > 0
        assert current_universe(lake, change.venue) == rows["instrument"].to_list() == change.selected
    okx_rows = table.filter(pl.col("venue") == "okx")
    assert set(okx_rows["market"]) <= {"spot", "swap"} and okx_rows["tick_size"].is_not_null().all()
    der = table.filter(pl.col("venue") == "deribit")
    assert (
        set(der["market"]) == {"option"}
        and der["strike"].is_not_null().all()
        and set(der["option_type"]) <= {"call", "put"}
    )
    assert der["expiry_time"].is_not_null().all()
    # every selected OKX instrument out-trades every OKX instrument left out
    left_out = {i.inst_id for i in sim.call(lambda: sim.market.instruments("okx"))} - set(okx.selected)
    assert left_out and len(okx.selected) == 4

    strict = refresh_universe(
        lake,
        ["okx"],
        filters=UniverseFilters(top_n=4, min_volume_24h_quote=1e30),
        rest_url=sim.base_http_url,
        retry=FAST_RETRY,
    )
    assert strict[0].selected == [] and sorted(strict[0].dropped) == sorted(okx.selected)
    assert current_universe(lake, "okx") == [] and current_universe(lake, "deribit") == deribit.selected


def test_refresh_adds_new_end_dates_dropped_and_expired_and_is_idempotent(lake) -> None:
    filters = UniverseFilters(top_n=3)
    t1, t2 = 1_790_000_000_000, 1_790_086_400_000
    apply_selection(
        lake,
        "okx",
        rank([_candidate("A-USDT", 30), _candidate("B-USDT", 20), _candidate("C-USDT", 10)], filters),
        filters,
        t1,
    )
    apply_selection(
        lake,
        "okx",
        rank([_candidate("B-USDT", 50), _candidate("C-USDT", 5), _candidate("D-USDT", 7)], filters),
        filters,
        t2,
    )
    change = apply_selection(
        lake,
        "okx",
        rank([_candidate("B-USDT", 50), _candidate("C-USDT", 5), _candidate("D-USDT", 7)], filters),
        filters,
        t2,
    )
    assert change.added == [] and change.dropped == []
    rows = {r["instrument"]: r for r in writer.read(lake, SILVER_INSTRUMENTS).to_dicts()}
    assert len(rows) == 4
    ms = lambda v: None if v is None else int(v.timestamp() * 1000)  # noqa: E731
    assert (
        not rows["A-USDT"]["active"] and ms(rows["A-USDT"]["valid_to"]) == t2 and ms(rows["A-USDT"]["valid_from"]) == t1
    )
    assert rows["B-USDT"]["active"] and ms(rows["B-USDT"]["valid_from"]) == t1 and rows["B-USDT"]["rank"] == 1
    assert ms(rows["D-USDT"]["valid_from"]) == t2 and rows["D-USDT"]["rank"] == 2
    assert current_universe(lake, "okx", now_ms=t2) == ["B-USDT", "D-USDT", "C-USDT"]
    # an option that expired since the last refresh is no longer streamed, even before the next refresh
    apply_selection(
        lake, "okx", rank([_candidate("E-USDT", 99, expiry_ms=t2 + 1000)], UniverseFilters(top_n=1)), filters, t2
    )
    assert (
        current_universe(lake, "okx", now_ms=t2) == ["E-USDT"] and current_universe(lake, "okx", now_ms=t2 + 2000) == []
    )


def test_refresh_brings_trades_and_candles_up_to_date_since_the_last_row(sim, lake) -> None:
    from pipeline import refresh

    now1 = int(time.time() * 1000) - 20_000
    first = refresh(["BTC-USDT"], venue="okx", lake=lake, rest_url=sim.base_http_url, lookback_secs=300,
                    silver=False, gold=False, now_ms=now1, retry=FAST_RETRY)  # fmt: skip
    assert first.layers == {"silver": "skipped", "gold": "skipped"} and first.rows > 0
    time.sleep(1.0)
    now2 = int(time.time() * 1000) - 500
    second = refresh(["BTC-USDT"], venue="okx", lake=lake, rest_url=sim.base_http_url, lookback_secs=300,
                     silver=False, gold=False, now_ms=now2, retry=FAST_RETRY)  # fmt: skip
    trades = second.backfills[0]
    want = truth(sim, "okx", "BTC-USDT", now1 - 300_000, now2)
    got = bronze(lake, "okx", "BTC-USDT")
    assert got["trade_id"].to_list() == [str(t.trade_id) for t in want]  # nothing missing, nothing twice
    assert 0 < trades.rows < len(want)  # the second run fetched only the new part
    bars = writer.read(lake, BRONZE_CANDLES).filter(pl.col("instrument") == "BTC-USDT")
    assert (
        bars["open_time"].is_unique().all() and bars.height >= 5 and bars["timeframe"].to_list() == ["1m"] * bars.height
    )


def test_refresh_runs_silver_after_the_backfill(sim, lake) -> None:
    """``from pipeline import refresh`` is the function, and with silver on, the trades it fetched reach silver."""
    from pipeline import refresh

    now = int(time.time() * 1000) - 5_000
    result = refresh(["BTC-USDT"], venue="okx", lake=lake, rest_url=sim.base_http_url, lookback_secs=120,
                     candles=False, gold=False, now_ms=now, retry=FAST_RETRY)  # fmt: skip
    assert result.layers == {"silver": "ran", "gold": "skipped"} and result.rows > 0
    assert writer.count_rows(lake, SILVER_TRADES) == bronze(lake, "okx", "BTC-USDT").height
