"""The silver layer: validated trades, exact multi-timeframe candles, quote bars, quarantine.

from pipeline.silver import run_silver
report = run_silver(lake, lateness_secs=60)   # incremental, idempotent
report.raise_for_fatal()                       # table-level contract failures -> ContractFailed
"""

from pipeline.silver.report import ContractFailed, SilverReport
from pipeline.silver.run import run_silver
from pipeline.silver.validate import RuleFailure

__all__ = ["ContractFailed", "RuleFailure", "SilverReport", "run_silver"]
