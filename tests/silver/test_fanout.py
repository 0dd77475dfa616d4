"""Silver's backlog cut into partitions (venue x instrument group x day) equals one single-process run, table
for table: a multi-day first run, then more days with late trades restating published bars, REST copies,
bad rows and exchange candles; and ``--restate-candles``. Through the Prefect flow on a Dask LocalCluster
with two workers too; a failed partition commits nothing."""

from __future__ import annotations

import asyncio
import datetime as dt

import polars as pl
import pytest

from pipeline.errors import CryptolakeError
from pipeline.lake import writer
from pipeline.lake.location import Lake, resolve_lake
from pipeline.lake.tables import (
    BRONZE_CANDLES,
    BRONZE_QUOTES,
    BRONZE_TRADES,
    SILVER_CANDLES,
    SILVER_QUARANTINE,
    SILVER_QUOTE_BARS,
    SILVER_TRADES,
    SILVER_WATERMARKS,
)
from pipeline.silver import partitions, run_silver
from pipeline.silver.report import SilverReport
from tests.silver_rows import MIN_MS, T0_MS, candle, quote, trade, trades, without_seq

DAY_MS = 86_400_000
INSTRUMENTS = ("BTC-USDT-SWAP", "ETH-USDT-SWAP", "SOL-USDT-SWAP")
NOW1_MS = T0_MS + 2 * DAY_MS + 13 * 3_600_000  # day 2 is not over: its first 12 hours are in
NOW2_MS = T0_MS + 5 * DAY_MS + 7 * MIN_MS


def _day(lake: Lake, k: int, *, late: tuple[tuple, ...] = (), hours: int = 24) -> None:
    """``hours`` of bronze from T0 + k days: trades of three instruments (and one bad one), option quotes, an
    exchange candle of an instrument without trades; ``late`` trades in the same commit."""
    start = T0_MS + k * DAY_MS
    rows = trades(
        600, instruments=INSTRUMENTS, start_ms=start, span_ms=hours * 3_600_000, first_id=100_000 * (k + 1), seed=k
    )
    rows.append(without_seq(trade("BTC-USDT-SWAP", 9_000_000 + k, start + 5, -1.0, 1.0)))  # price rule: quarantine
    writer.append_rows(lake, BRONZE_TRADES, rows + list(late))
    quotes = [quote("BTC-1SEP26-60000-C", start + 3_600_000 * i + 7, 0.05, 0.06 + i / 1000) for i in range(hours - 4)]
    quotes.append(quote("BTC-1SEP26-60000-C", start + 11, 0.07, 0.06))  # crossed: quarantine
    writer.append_rows(lake, BRONZE_QUOTES, quotes)
    writer.append_rows(lake, BRONZE_CANDLES, [candle("XRP-USDT-SWAP", start, 10.0, 11.0, 9.0, 10.5, 5.0, 0.5, 5.2)])


def _late(k: int) -> list[tuple]:
    """Trades of day ``k`` arriving later: new ids (no venue sequence, as REST brings them) and REST copies
    of trades already stored (received later: the stored copies stay)."""
    start = T0_MS + k * DAY_MS
    new = [without_seq(trade("ETH-USDT-SWAP", 7_000_000 + i, start + 3_600_000 * i + 17, 99.5, 0.5)) for i in range(8)]
    stored = trades(600, instruments=INSTRUMENTS, start_ms=start, span_ms=DAY_MS, first_id=100_000 * (k + 1), seed=k)
    copies = [r[:8] + (r[8] + 2 * DAY_MS * 1000, "rest") + r[10:] for r in stored[:6]]
    return new + copies


def _fanout(lake: Lake, now_ms: int, *, restate: bool = False, group_size: int = 2) -> SilverReport:
    """The fan-out in this process: plan, every partition, the rewrites, one commit (what the flow runs)."""
    now = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC)
    p = partitions.plan(lake, now=now, run_id="r", fail_share=0.5, restate_candles=restate, group_size=group_size)
    results = [partitions.compute(p.job(x)) for x in p.partitions]
    rewritten: dict = {}
    for w in partitions.rewrites(p.lake, p.listed, results):
        rewritten.setdefault(w.spec.key, []).extend(partitions.rewrite(w))
    return partitions.commit(p, results, rewritten)


def _same(a: Lake, b: Lake) -> None:
    keys = {
        SILVER_TRADES: ["venue", "instrument", "trade_id"],
        SILVER_CANDLES: ["venue", "instrument", "timeframe", "open_time"],
        SILVER_QUOTE_BARS: ["venue", "instrument", "open_time"],
        SILVER_QUARANTINE: ["table", "rule", "column", "row"],
        SILVER_WATERMARKS: ["name"],
    }
    for spec, key in keys.items():
        x, y = (writer.read(lake, spec).drop("updated_ts", strict=False).sort(key) for lake in (a, b))
        assert x.height == y.height > 0, spec.key
        assert x.select(key).n_unique() == x.height, spec.key  # no key twice (an update left no old copy)
        floats = [c for c, t in x.schema.items() if t.is_float()]
        assert x.drop(floats).equals(y.drop(floats)), spec.key
        for c in floats:  # sums of the same rows in another order differ in the last bits at most
            near = ((x[c] - y[c]).abs() <= y[c].abs() * 1e-12).fill_null(x[c].is_null() & y[c].is_null())
            assert near.all(), (spec.key, c)


def test_a_multi_day_backlog_with_late_data_equals_the_single_process_run(tmp_path) -> None:
    single, fan = resolve_lake(str(tmp_path / "single")), resolve_lake(str(tmp_path / "fan"))
    for lake in (single, fan):
        for k in range(3):
            _day(lake, k, hours=12 if k == 2 else 24)
    one = run_silver(single, now_ms=NOW1_MS, fail_share=0.5, run_id="r")
    cut = _fanout(fan, NOW1_MS)
    assert one.ok and cut.ok
    _same(single, fan)
    assert cut.written == one.written and cut.duplicates == one.duplicates
    assert cut.quarantined == one.quarantined and cut.watermarks == one.watermarks

    # The rest of day 2, two more days; day 0 gets late trades (bars published by the first run restated)
    # and REST copies.
    for lake in (single, fan):
        writer.append_rows(
            lake,
            BRONZE_TRADES,
            trades(
                90,
                instruments=INSTRUMENTS,
                start_ms=T0_MS + 2 * DAY_MS + 13 * 3_600_000,
                span_ms=10 * 3_600_000,
                first_id=350_000,
            ),
        )
        _day(lake, 3, late=tuple(_late(0)))
        _day(lake, 4)
    one = run_silver(single, now_ms=NOW2_MS, fail_share=0.5, run_id="r")
    cut = _fanout(fan, NOW2_MS)
    assert one.ok and cut.ok
    assert one.updated["silver/candles"] > 0 and cut.updated["silver/candles"] == one.updated["silver/candles"]
    assert cut.duplicates == one.duplicates == 6
    _same(single, fan)

    # Nothing new: nothing written; then a restatement rewrites nothing (the bars are right already).
    assert sum(_fanout(fan, NOW2_MS).written.values()) == 0
    assert sum(_fanout(fan, NOW2_MS, restate=True).written.values()) == 0
    _same(single, fan)


def test_restating_candles_replaces_wrong_bars_as_the_single_process_does(tmp_path) -> None:
    single, fan = resolve_lake(str(tmp_path / "single")), resolve_lake(str(tmp_path / "fan"))
    for lake in (single, fan):
        for k in range(2):
            _day(lake, k)
        run_silver(lake, now_ms=NOW1_MS, fail_share=0.5, run_id="r")
        # A bug fix to undo: some stored 1m and 1h bars made wrong (as an older version might have written them).
        table = writer.open_table(lake, SILVER_CANDLES)
        assert table is not None
        table.update(predicate="timeframe IN ('1m', '1h') AND volume > 2", updates={"close": "close + 1"})
    one = run_silver(single, now_ms=NOW1_MS, fail_share=0.5, run_id="r", restate_candles=True)
    cut = _fanout(fan, NOW1_MS, restate=True)
    assert cut.updated["silver/candles"] == one.updated["silver/candles"] > 0
    _same(single, fan)


def test_a_failed_partition_commits_nothing_and_a_rerun_is_exact(tmp_path, monkeypatch) -> None:
    single, fan = resolve_lake(str(tmp_path / "single")), resolve_lake(str(tmp_path / "fan"))
    for lake in (single, fan):
        for k in range(3):
            _day(lake, k, hours=12 if k == 2 else 24)
    real = partitions.candle_step
    calls: list[int] = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("worker lost")
        return real(*args, **kwargs)

    monkeypatch.setattr(partitions, "candle_step", failing)
    with pytest.raises(RuntimeError, match="worker lost"):
        _fanout(fan, NOW1_MS)
    for spec in (SILVER_TRADES, SILVER_CANDLES, SILVER_WATERMARKS):
        assert writer.open_table(fan, spec) is None, spec.key  # no commit at all
    monkeypatch.setattr(partitions, "candle_step", real)
    assert _fanout(fan, NOW1_MS).ok
    run_silver(single, now_ms=NOW1_MS, fail_share=0.5, run_id="r")
    _same(single, fan)


def test_a_retried_commit_is_not_applied_twice(lake) -> None:
    for k in range(2):
        _day(lake, k)
    now = dt.datetime.fromtimestamp(NOW1_MS / 1000, dt.UTC)
    p = partitions.plan(lake, now=now, run_id="r", fail_share=0.5)
    results = [partitions.compute(p.job(x)) for x in p.partitions]
    partitions.commit(p, results, {})
    table = writer.open_table(lake, SILVER_TRADES)
    assert table is not None and table.transaction_version(partitions.APP_ID) == p.txn_version
    rows, version = writer.read(lake, SILVER_TRADES).height, table.version()
    partitions.commit(p, results, {})  # the commit step run again (a retried task): the log says it landed
    table = writer.open_table(lake, SILVER_TRADES)
    assert table is not None and (writer.read(lake, SILVER_TRADES).height, table.version()) == (rows, version)


def test_partitions_group_each_venues_instruments_by_day() -> None:
    cover = pl.DataFrame(
        {
            "venue": ["okx", "okx", "okx", "deribit", None],
            "instrument": ["B", "A", "C", "X", "A"],
            "day": [dt.date(2026, 1, 1), dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 1), None],
        }
    )
    names = [p.name for p in partitions.partitions(cover, 2)]
    assert names == ["unplaced-rows", "deribit-g0-2026-01-01", "okx-g0-2026-01-01", "okx-g1-2026-01-02"]
    assert partitions.partitions(cover, 2)[2].instruments == ("A", "B")
    with pytest.raises(CryptolakeError, match="group_size"):
        partitions.plan(resolve_lake("/tmp/x"), now=dt.datetime.now(dt.UTC), run_id="r", group_size=0)


async def _task_runs_and_progress() -> tuple[dict[str, str], list[float]]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async with get_client() as client:
        runs = await client.read_task_runs()
        progress = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["silver-fanout-progress"]))
        )
    return {r.name: r.state_name or "" for r in runs}, [float(a.data) for a in progress]  # type: ignore[arg-type]


def test_the_flow_on_a_two_worker_dask_cluster_equals_the_single_process_run(tmp_path, prefect_harness) -> None:
    from distributed import LocalCluster

    from flows.silver_fanout import silver_fanout_flow

    single, fan = resolve_lake(str(tmp_path / "single")), resolve_lake(str(tmp_path / "fan"))
    for lake in (single, fan):
        for k in range(3):
            _day(lake, k, hours=12 if k == 2 else 24)
        _day(lake, 3, late=tuple(_late(0)))
    run_silver(single, now_ms=NOW2_MS, fail_share=0.5, run_id="r")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        written = silver_fanout_flow(
            lake=fan.root,
            now_ms=NOW2_MS,
            fail_share=0.5,
            run_id="r",
            group_size=2,
            dask_address=cluster.scheduler_address,
        )
    assert written["silver/trades"] > 0
    _same(single, fan)
    runs, progress = asyncio.run(_task_runs_and_progress())
    # One task run per partition, named after it: okx's three instruments in groups of two, four days;
    # deribit's option and okx's candle-only instrument alone.
    days = [f"2026-08-{12 + d}" for d in range(4)]
    assert {f"okx-g{g}-{d}" for g in (0, 1) for d in days} <= set(runs)
    assert all(runs[f"okx-g0-{d}"] == "Completed" for d in days)
    assert progress and progress[-1] == 100.0
