"""Silver candles against independent recomputations (pandas), rollups, idempotence, late data."""

from __future__ import annotations

import pandas as pd
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipeline.lake import writer
from pipeline.lake.tables import BRONZE_CANDLES, BRONZE_TRADES, SILVER_CANDLES, SILVER_TRADES, SILVER_WATERMARKS
from pipeline.silver import run_silver
from tests.silver_rows import MIN_MS, T0_MS, candle, trade, trades, without_seq

HOUR_MS = 3_600_000
TF_MS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000, "4h": 14_400_000, "1d": 86_400_000}
VALUES = ["open", "high", "low", "close", "volume", "quote_volume", "trade_count", "vwap", "buy_volume", "sell_volume"]


def _pandas_1m(tr: pd.DataFrame) -> pd.DataFrame:
    """1m bars the plain way: sort by (time, seq, id), group by minute."""
    tr = tr.assign(
        ts_ms=tr["exchange_ts"].astype("int64") // 1000 if tr["exchange_ts"].dtype.kind == "M" else tr["exchange_ts"]
    )
    tr = tr.sort_values(["ts_ms", "seq", "trade_id"])
    tr["open_ms"] = tr["ts_ms"] // 60_000 * 60_000
    tr["qv"] = tr["price"] * tr["size"]
    tr["buy"] = tr["size"].where(tr["side"] == "buy", 0.0)
    tr["sell"] = tr["size"].where(tr["side"] == "sell", 0.0)
    g = tr.groupby(["instrument", "open_ms"])
    out = g.agg(
        open=("price", "first"),
        high=("price", "max"),
        low=("price", "min"),
        close=("price", "last"),
        volume=("size", "sum"),
        quote_volume=("qv", "sum"),
        trade_count=("price", "size"),
        buy_volume=("buy", "sum"),
        sell_volume=("sell", "sum"),
    ).reset_index()
    out["vwap"] = out["quote_volume"] / out["volume"]
    return out


def _table_bars(lake, tf: str) -> pd.DataFrame:
    df = writer.read(lake, SILVER_CANDLES).filter(pl.col("timeframe") == tf).to_pandas()
    df["open_ms"] = df["open_time"].astype("int64") // 1000
    return df.sort_values(["instrument", "open_ms"]).reset_index(drop=True)


def _silver_trades(lake) -> pd.DataFrame:
    df = writer.read(lake, SILVER_TRADES).with_columns(pl.col("exchange_ts").dt.epoch("ms")).to_pandas()
    return df


def _assert_bars_equal(got: pd.DataFrame, want: pd.DataFrame) -> None:
    want = want.sort_values(["instrument", "open_ms"]).reset_index(drop=True)
    assert list(got["instrument"]) == list(want["instrument"])
    assert list(got["open_ms"]) == list(want["open_ms"])
    for col in VALUES:
        assert got[col].astype(float).to_numpy() == pytest.approx(want[col].astype(float).to_numpy(), rel=1e-12), col


@pytest.fixture
def loaded(lake):
    rows = trades(3000, span_ms=5 * HOUR_MS)
    # The same trades again from the REST backfill: must be deduplicated, not counted twice.
    dupes = [r[:9] + ("rest",) + r[10:] for r in rows[::10]]
    writer.append_rows(lake, BRONZE_TRADES, rows)
    writer.append_rows(lake, BRONZE_TRADES, dupes)
    now = T0_MS + 5 * HOUR_MS + 2 * MIN_MS
    report = run_silver(lake, now_ms=now, lateness_secs=60)
    assert report.ok, report.lines()
    return lake, rows, now


def test_1m_candles_equal_an_independent_pandas_computation(loaded) -> None:
    lake, rows, now = loaded
    tr = _silver_trades(lake)
    assert len(tr) == len(rows)  # 300 REST duplicates dropped
    assert tr[["venue", "instrument", "trade_id"]].duplicated().sum() == 0
    want = _pandas_1m(tr)
    want = want[want["open_ms"] + 60_000 <= (now - 60_000) // 60_000 * 60_000]
    got = _table_bars(lake, "1m")
    _assert_bars_equal(got, want)
    assert (got["close_time"] - got["open_time"]).eq(pd.Timedelta(minutes=1)).all()
    assert set(got["source"]) == {"trades"}


def test_higher_timeframes_are_exact_rollups_of_1m(loaded) -> None:
    lake, _, now = loaded
    one = _table_bars(lake, "1m")
    horizon = (now - 60_000) // 60_000 * 60_000
    for tf in ("5m", "15m", "1h", "4h", "1d"):
        step = TF_MS[tf]
        one["b"] = one["open_ms"] // step * step
        g = one.sort_values("open_ms").groupby(["instrument", "b"])
        want = g.agg(
            open=("open", "first"),
            high=("high", "max"),
            low=("low", "min"),
            close=("close", "last"),
            volume=("volume", "sum"),
            quote_volume=("quote_volume", "sum"),
            trade_count=("trade_count", "sum"),
            buy_volume=("buy_volume", "sum"),
            sell_volume=("sell_volume", "sum"),
        ).reset_index()
        want = want.rename(columns={"b": "open_ms"})
        want["vwap"] = want["quote_volume"] / want["volume"]
        want = want[want["open_ms"] + step <= horizon]  # only closed bars
        got = _table_bars(lake, tf)
        assert len(got) > 0 or tf in ("4h", "1d")
        _assert_bars_equal(got, want)


def _snapshot(lake) -> dict[str, pl.DataFrame]:
    out = {}
    for spec in (SILVER_TRADES, SILVER_CANDLES):
        df = writer.read(lake, spec)
        out[spec.key] = df.sort(df.columns[:5])
    return out


def test_a_rerun_changes_nothing(loaded) -> None:
    lake, _, now = loaded
    before = _snapshot(lake)
    versions = {s.key: writer.open_table(lake, s).version() for s in (SILVER_TRADES, SILVER_CANDLES, SILVER_WATERMARKS)}
    report = run_silver(lake, now_ms=now, lateness_secs=60)
    assert report.written.get("silver/trades", 0) == 0 and report.written.get("silver/candles", 0) == 0
    after = _snapshot(lake)
    for key in before:
        assert before[key].equals(after[key]), key
    assert {
        s.key: writer.open_table(lake, s).version() for s in (SILVER_TRADES, SILVER_CANDLES, SILVER_WATERMARKS)
    } == versions


def test_incremental_runs_equal_one_run_over_everything(lake, tmp_path) -> None:
    from pipeline.lake.location import resolve_lake

    rows = trades(2000, span_ms=6 * HOUR_MS, seed=3)
    rows.sort(key=lambda r: r[7])
    one_shot = resolve_lake(str(tmp_path / "one"))
    end = T0_MS + 6 * HOUR_MS + 5 * MIN_MS
    writer.append_rows(one_shot, BRONZE_TRADES, rows)
    run_silver(one_shot, now_ms=end)
    # The same trades arriving in three pieces, each run seeing only the bars closed by its own clock.
    for k in range(1, 4):
        cut = T0_MS + 2 * k * HOUR_MS
        writer.append_rows(lake, BRONZE_TRADES, [r for r in rows if cut - 2 * HOUR_MS <= r[7] < cut])
        report = run_silver(lake, now_ms=cut + 30_000)
        bars = writer.read(lake, SILVER_CANDLES)
        assert bars["close_time"].max() <= pd.Timestamp(
            cut + 30_000 - 60_000, unit="ms", tz="UTC"
        )  # nothing still forming
        assert report.ok
    run_silver(lake, now_ms=end)
    # Equal up to float summation order (the trades of a minute were read in a different order).
    assert_frame_equal(
        _snapshot(lake)["silver/candles"], _snapshot(one_shot)["silver/candles"], rel_tol=1e-12, abs_tol=0
    )


def test_late_trades_restate_exactly_the_candles_they_touch(loaded) -> None:
    lake, _, now = loaded
    before = writer.read(lake, SILVER_CANDLES)
    late_ts = [T0_MS + 37 * MIN_MS + 5_000, T0_MS + 2 * HOUR_MS + 11 * MIN_MS + 1]
    late = [
        trade("ETH-USDT-SWAP", 9_000_000 + i, ts, 500.0, 2.0, "sell", source="rest") for i, ts in enumerate(late_ts)
    ]
    writer.append_rows(lake, BRONZE_TRADES, late)
    report = run_silver(lake, now_ms=now, lateness_secs=60)
    after = writer.read(lake, SILVER_CANDLES)
    key = ["venue", "instrument", "timeframe", "open_time"]
    changed = after.join(before, on=key, how="anti").height
    diff = after.join(before, on=after.columns, how="anti", nulls_equal=True).select(key)
    want = set()
    horizon = (now - 60_000) // 60_000 * 60_000
    for tf, step in TF_MS.items():
        for ts in late_ts:
            b = ts // step * step
            if b + step <= horizon:
                want.add((tf, b))
    got = {(r["timeframe"], r["open_time"].timestamp() * 1000) for r in diff.iter_rows(named=True)}
    assert got == {(tf, float(b)) for tf, b in want}
    assert set(diff["instrument"]) == {"ETH-USDT-SWAP"}
    assert changed == 0 and report.updated["silver/candles"] == len(want)
    # The restated bars equal a recomputation from all silver trades.
    tr = _silver_trades(lake)
    fresh = _pandas_1m(tr[tr["instrument"] == "ETH-USDT-SWAP"])
    got1m = _table_bars(lake, "1m")
    got1m = got1m[got1m["instrument"] == "ETH-USDT-SWAP"]
    fresh = fresh[fresh["open_ms"].isin(got1m["open_ms"])]
    _assert_bars_equal(got1m.reset_index(drop=True), fresh)


def test_exchange_candles_fill_minutes_without_trades_in_trade_units(lake) -> None:
    gap_ms, traded_ms = T0_MS + 3 * MIN_MS, T0_MS + MIN_MS
    writer.append_rows(
        lake,
        BRONZE_TRADES,
        [
            trade("BTC-USDT-SWAP", 1, traded_ms + 10, 100.0, 2.0),
            trade("BTC-USDT", 2, traded_ms, 50.0, 1.0, market="spot"),
        ],
    )
    writer.append_rows(
        lake,
        BRONZE_CANDLES,
        [
            candle("BTC-USDT-SWAP", gap_ms, 100, 104, 99, 103, vol=30, vol_ccy=0.3, vol_ccy_quote=30.6),
            candle("BTC-USDT-SWAP", traded_ms, 1, 1, 1, 1, vol=1, vol_ccy=1, vol_ccy_quote=1),  # loses to trades
            candle("BTC-USDT", gap_ms, 50, 52, 49, 51, vol=4, vol_ccy=201.0, vol_ccy_quote=None, market="spot"),
            candle(
                "BTC-USDT",
                gap_ms + MIN_MS,
                50,
                52,
                49,
                51,
                vol=4,
                vol_ccy=200,
                vol_ccy_quote=200,
                market="spot",
                confirm=False,
            ),
        ],
    )
    assert run_silver(lake, now_ms=T0_MS + 10 * MIN_MS).ok
    bars = writer.read(lake, SILVER_CANDLES).filter(pl.col("timeframe") == "1m").sort("instrument", "open_time")
    by = {(r["instrument"], int(r["open_time"].timestamp() * 1000)): r for r in bars.iter_rows(named=True)}
    swap_gap = by[("BTC-USDT-SWAP", gap_ms)]
    assert swap_gap["source"] == "exchange" and swap_gap["volume"] == 30
    assert swap_gap["quote_volume"] == pytest.approx(30 * 30.6 / 0.3)  # contracts x price
    assert swap_gap["vwap"] == pytest.approx(30.6 / 0.3) and swap_gap["trade_count"] is None
    assert by[("BTC-USDT-SWAP", traded_ms)]["source"] == "trades" and by[("BTC-USDT-SWAP", traded_ms)]["open"] == 100.0
    assert by[("BTC-USDT", gap_ms)]["quote_volume"] == 201.0  # spot: vol_ccy when volCcyQuote is missing
    assert ("BTC-USDT", gap_ms + MIN_MS) not in by  # not confirmed: not a closed bar
    five = writer.read(lake, SILVER_CANDLES).filter(
        (pl.col("timeframe") == "5m") & (pl.col("instrument") == "BTC-USDT-SWAP")
    )
    assert five["source"].to_list() == ["mixed"] and five["volume"].to_list() == [32.0]


def test_daily_exchange_candles_fill_days_without_minute_data_and_trades_win(lake) -> None:
    day_ms = 86_400_000
    d0 = T0_MS - T0_MS % day_ms - 3 * day_ms  # three whole UTC days before T0's day
    writer.append_rows(
        lake,
        BRONZE_CANDLES,
        [
            candle("BTC-USDT-SWAP", d0, 100, 110, 95, 105, vol=1000, vol_ccy=10, vol_ccy_quote=1020, tf="1d"),
            candle("BTC-USDT-SWAP", d0 + day_ms, 105, 120, 100, 118, vol=2000, vol_ccy=20, vol_ccy_quote=2200, tf="1d"),
            candle(
                "BTC-USDT-SWAP", d0 + 2 * day_ms, 1, 1, 1, 1, vol=1, vol_ccy=1, vol_ccy_quote=1, tf="1d"
            ),  # loses to trades
        ],
    )
    # Day 3 has trades: its 1d bar must be their rollup, not the exchange's.
    writer.append_rows(
        lake,
        BRONZE_TRADES,
        [
            trade("BTC-USDT-SWAP", 7, d0 + 2 * day_ms + 3600_000, 118.5, 3.0),
            trade("BTC-USDT-SWAP", 8, d0 + 2 * day_ms + 7200_000, 119.5, 1.0, side="sell"),
        ],
    )
    assert run_silver(lake, now_ms=T0_MS).ok
    daily = writer.read(lake, SILVER_CANDLES).filter(pl.col("timeframe") == "1d").sort("open_time")
    assert daily["source"].to_list() == ["exchange", "exchange", "trades"]
    first = daily.row(0, named=True)
    assert (first["open"], first["high"], first["low"], first["close"], first["volume"]) == (100, 110, 95, 105, 1000)
    assert first["quote_volume"] == pytest.approx(1000 * 1020 / 10)
    assert int(first["close_time"].timestamp() * 1000) == d0 + day_ms
    third = daily.row(2, named=True)
    assert (third["open"], third["close"], third["volume"], third["trade_count"]) == (118.5, 119.5, 4.0, 2)
    # A later run with the same exchange bar again (re-fetched) changes nothing.
    before = writer.read(lake, SILVER_CANDLES).sort("timeframe", "open_time")
    writer.append_rows(
        lake,
        BRONZE_CANDLES,
        [candle("BTC-USDT-SWAP", d0 + 2 * day_ms, 2, 2, 2, 2, vol=9, vol_ccy=9, vol_ccy_quote=18, tf="1d")],
    )
    assert run_silver(lake, now_ms=T0_MS + 60_000).ok
    after = writer.read(lake, SILVER_CANDLES).sort("timeframe", "open_time")
    assert after.filter(pl.col("timeframe") == "1d")["source"].to_list() == ["exchange", "exchange", "trades"]
    assert (
        after.filter(pl.col("timeframe") == "1d")["close"].to_list()
        == before.filter(pl.col("timeframe") == "1d")["close"].to_list()
    )


def test_a_run_with_late_trades_and_newly_closed_minutes_counts_each_trade_once(lake) -> None:
    """The previous run's silver/trades file holds trades on both sides of its horizon (minutes still forming
    were stored, not published); the next run recomputes late minutes before that horizon and the minutes
    closed since: a file meeting both ranges is read once, so every bar equals a recomputation from silver."""
    first = trades(400, instruments=("BTC-USDT-SWAP",), span_ms=22 * MIN_MS, first_id=1000)
    writer.append_rows(lake, BRONZE_TRADES, first)
    assert run_silver(lake, now_ms=T0_MS + 22 * MIN_MS).ok  # publishes up to 12:21, stores trades up to 12:22
    # (REST trades without a venue sequence: ids above the later ones' would break sequence_order)
    late = [
        without_seq(trade("BTC-USDT-SWAP", 5000 + i, T0_MS + 5 * MIN_MS + 100 * i, 101.0, 1.0, source="rest"))
        for i in range(3)
    ]
    later = trades(
        100, instruments=("BTC-USDT-SWAP",), start_ms=T0_MS + 30 * MIN_MS, span_ms=10 * MIN_MS, first_id=3000
    )
    writer.append_rows(lake, BRONZE_TRADES, late + later)
    report = run_silver(lake, now_ms=T0_MS + 41 * MIN_MS)
    assert report.ok and report.updated["silver/candles"] > 0  # the late minute was restated
    got = _table_bars(lake, "1m")
    stored = _silver_trades(lake)
    assert len(stored) == len(first) + len(late) + len(later)  # nothing quarantined, nothing lost
    fresh = _pandas_1m(stored)
    fresh = fresh[fresh["open_ms"] + 60_000 <= T0_MS + 40 * MIN_MS]
    assert got["trade_count"].sum() == (stored["exchange_ts"] < T0_MS + 40 * MIN_MS).sum()
    _assert_bars_equal(got, fresh)


def test_restating_candles_rewrites_exactly_the_bars_that_disagree_with_silver_trades(lake) -> None:
    """--restate-candles: bars a faulty version miscounted (here: three 1m bars with their trades counted
    twice) are recomputed from silver/trades and rewritten; a plain run leaves them, the others stay."""
    from pipeline.silver import writes
    from pipeline.silver.handles import Handles

    writer.append_rows(lake, BRONZE_TRADES, trades(600, span_ms=2 * HOUR_MS))
    now = T0_MS + 2 * HOUR_MS + 2 * MIN_MS
    assert run_silver(lake, now_ms=now).ok
    key = ["venue", "instrument", "timeframe", "open_time"]
    right = writer.read(lake, SILVER_CANDLES).sort(key)
    victims = right.filter(pl.col("timeframe") == "1m").head(3)
    doubled = victims.with_columns(pl.col("trade_count") * 2, pl.col("volume") * 2, pl.col("quote_volume") * 2)
    assert writes.upsert(Handles(lake), SILVER_CANDLES, doubled, victims, tuple(key)).updated == 3
    assert run_silver(lake, now_ms=now).updated.get("silver/candles", 0) == 0  # nothing new: left as they are
    report = run_silver(lake, now_ms=now, restate_candles=True)
    assert report.ok and report.updated["silver/candles"] == 3 and report.written["silver/candles"] == 3
    assert_frame_equal(writer.read(lake, SILVER_CANDLES).sort(key), right, rel_tol=1e-12, abs_tol=0)
