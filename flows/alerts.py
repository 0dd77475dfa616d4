"""Events that Prefect automations turn into alerts. Every flow raises contract failures through here, so
the event name and payload shape are defined once."""

from __future__ import annotations

from typing import Any

from prefect.events import emit_event

CONTRACT_FAILED = "cryptolake.contract.failed"


def emit_contract_failure(
    *,
    table: str,
    rule: str,
    failed_rows: int,
    total_rows: int,
    sample: list[dict[str, Any]] | None = None,
    fatal: bool = False,
) -> None:
    """One event per (table, rule) that failed. ``fatal`` marks a table-level failure that failed the run."""
    emit_event(
        CONTRACT_FAILED,
        resource={"prefect.resource.id": f"cryptolake.table.{table.replace('/', '.')}", "cryptolake.table": table},
        payload={
            "table": table,
            "rule": rule,
            "failed_rows": failed_rows,
            "total_rows": total_rows,
            "fatal": fatal,
            "sample": (sample or [])[:5],
        },
    )
