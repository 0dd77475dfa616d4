"""`cryptolake status`: completeness per instrument, open gaps, commit age, and the health verdict."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from pipeline.lake import writer
from pipeline.lake.tables import BRONZE_GAPS, BRONZE_TRADES, TableSpec
from pipeline.status import Thresholds, lake_status


def _table(spec: TableSpec, rows: list[dict[str, Any]]) -> pa.Table:
    return pa.table({f.name: pa.array([r.get(f.name) for r in rows], type=f.type) for f in spec.schema}, schema=spec.schema)


def _trade(instrument: str, ts: datetime, n: int) -> dict[str, Any]:
    return {"venue": "okx", "market": "spot", "instrument": instrument, "trade_id": f"{instrument}-{n}", "price": 1.0, "size": 1.0,
            "side": "buy", "exchange_ts": ts, "receive_ts": ts, "source": "ws", "date": ts.date()}  # fmt: skip


def _build(lake) -> datetime:  # noqa: ANN001
    now = datetime.now(UTC).replace(second=30, microsecond=0)
    rows = []
    for m in range(1, 61):  # FULL: a trade in each of the last 60 minutes (whole minutes, inside the window)
        rows.append(_trade("FULL", now - timedelta(minutes=m), m))
    for m in range(1, 61, 2):  # HALF: every other minute
        rows.append(_trade("HALF", now - timedelta(minutes=m), m))
    rows.append(_trade("GONE", now - timedelta(hours=3), 1))  # traded before the window only
    writer.append(lake, BRONZE_TRADES, _table(BRONZE_TRADES, rows))
    gap = {"venue": "okx", "instrument": "HALF", "kind": "reconnect", "from_ts": now - timedelta(minutes=5), "to_ts": now,
           "status": "open", "detected_ts": now, "date": now.date()}  # fmt: skip
    filled = {**gap, "gap_id": "g2", "status": "filled"}
    writer.append(lake, BRONZE_GAPS, _table(BRONZE_GAPS, [{**gap, "gap_id": "g1"}, filled]))
    return now


def test_completeness_gaps_and_thresholds(lake) -> None:
    now = _build(lake)
    status = lake_status(lake, window_minutes=60, now_s=now.timestamp())
    by_name = {i.instrument: i for i in status.instruments}
    assert by_name["FULL"].completeness == 1.0 and by_name["FULL"].trades == 60
    assert by_name["HALF"].completeness == 0.5
    assert by_name["GONE"].completeness == 0.0 and by_name["GONE"].last_trade_age_s == 3 * 3600
    assert status.open_gaps == {"okx/HALF": 1}
    trades = status.table("bronze/trades")
    assert trades is not None and trades.rows == 91 and trades.size_bytes > 0 and trades.last_commit_age_s < 120

    assert status.problems(Thresholds()) == []
    problems = status.problems(Thresholds(min_completeness=0.9, max_open_gaps=0))
    assert len(problems) == 3 and any("HALF" in p for p in problems) and any("GONE" in p for p in problems)
    later = lake_status(lake, now_s=time.time() + 20 * 60)
    assert any(p.startswith("stale:") for p in later.problems(Thresholds(max_commit_age_min=15)))


def test_empty_lake_is_unhealthy(lake) -> None:
    assert lake_status(lake).problems(Thresholds()) == ["bronze/trades does not exist: nothing was ever captured"]


def test_cli_exit_code_is_a_health_check(lake) -> None:
    _build(lake)
    cli = [sys.executable, "-m", "pipeline.cli", "--lake", lake.root, "status"]
    ok = subprocess.run([*cli, "--json"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert report["healthy"] and {i["instrument"] for i in report["instruments"]} == {"FULL", "HALF", "GONE"}
    bad = subprocess.run([*cli, "--min-completeness", "0.9"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "UNHEALTHY" in bad.stdout and "okx/HALF" in bad.stdout


def test_a_compaction_does_not_make_a_stalled_stream_look_fresh(lake) -> None:
    """Freshness is judged by data commits: after the stream stalls, the nightly maintenance compacts
    bronze/trades; its OPTIMIZE commit is new, but the health check must still say stale."""
    from pipeline.lake.maintenance import maintain_table

    t0 = datetime.now(UTC)
    for n in range(4):  # four small appends, as a stream's flushes leave them
        writer.append(lake, BRONZE_TRADES, _table(BRONZE_TRADES, [_trade("BTC-USDT", t0, n)]))
    time.sleep(4.0)  # the stream stalls
    report = maintain_table(lake, BRONZE_TRADES, min_files=2, retention_hours=168)
    assert report is not None and report.partitions_compacted >= 1  # a real compaction commit landed
    newest = writer.open_table(lake, BRONZE_TRADES).history(1)[0]
    assert newest["operation"] == "OPTIMIZE"
    now_s = time.time()
    assert now_s - newest["timestamp"] / 1000 < 3.0  # by the newest commit alone, the table looks fresh
    status = lake_status(lake, now_s=now_s)
    age = status.table(BRONZE_TRADES.key).last_commit_age_s
    assert age is not None and age >= 4.0
    problems = status.problems(Thresholds(max_commit_age_min=3.0 / 60))
    assert any(p.startswith("stale: last bronze/trades data commit") for p in problems), problems
