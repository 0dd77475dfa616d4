"""Errors of the gold layer (all under ``pipeline.errors.CryptolakeError``)."""

from __future__ import annotations

from typing import Any

from pipeline.errors import CryptolakeError


class GoldContractError(CryptolakeError):
    """Bars bound for (or read back from) the Qlib dataset broke a rule; nothing was published.

    ``rules`` maps each failed rule to its number of failing rows; ``sample`` holds a few of them, the
    shape ``flows.alerts.emit_contract_failure`` sends on."""

    def __init__(self, table: str, rules: dict[str, int], total_rows: int, sample: list[dict[str, Any]]) -> None:
        self.table = table
        self.rules = rules
        self.total_rows = total_rows
        self.sample = sample
        listed = ", ".join(f"{rule} ({n} rows)" for rule, n in rules.items())
        super().__init__(f"{table}: contract failed: {listed} of {total_rows} rows")
