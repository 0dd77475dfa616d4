"""The maintenance and health flows under the shared Prefect test server."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from pipeline.lake import writer
from pipeline.lake.tables import BRONZE_TRADES


def _append_small_files(lake, n: int) -> None:  # noqa: ANN001
    ts = datetime.now(UTC)
    schema = BRONZE_TRADES.schema
    for i in range(n):
        cols = {f.name: pa.nulls(5, type=f.type) for f in schema}
        cols.update(venue=pa.array(["okx"] * 5), instrument=pa.array(["X"] * 5), trade_id=pa.array([f"{i}-{j}" for j in range(5)]),
                    exchange_ts=pa.array([ts] * 5, type=schema.field("exchange_ts").type), date=pa.array([ts.date()] * 5))  # fmt: skip
        writer.append(lake, BRONZE_TRADES, pa.table(cols))


def test_maintenance_flow_compacts_and_health_flow_reports(prefect_harness, lake) -> None:
    from flows.health import health_flow
    from flows.maintenance import maintenance_flow

    before = health_flow(lake=lake.root, stale_after_min=10)
    assert before["healthy"] is False and "nothing was ever captured" in before["problems"][0]

    _append_small_files(lake, 5)
    result = maintenance_flow(lake=lake.root, min_files=4, retention_hours=1)
    assert result["files_removed"] == 5 and result["tables"] == 1
    table = writer.open_table(lake, BRONZE_TRADES)
    assert table is not None and len(table.file_uris()) == 1 and writer.count_rows(lake, BRONZE_TRADES) == 25

    after = health_flow(lake=lake.root, stale_after_min=10)
    assert after["healthy"] is True
    unhealthy = health_flow(lake=lake.root, stale_after_min=10, min_completeness=0.5)
    assert unhealthy["healthy"] is False and "okx/X" in unhealthy["problems"][0]
