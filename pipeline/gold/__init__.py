"""Gold layer: silver/candles published as Qlib provider directories (one per venue and market).

report = publish_qlib(lake)                      # full the first time, incremental afterwards
qlib.init(provider_uri=str(report.datasets[0].path), region="us")
"""

from pipeline.gold.errors import GoldContractError
from pipeline.gold.publish import DatasetResult, PublishReport, gold_root, publish_qlib
from pipeline.gold.verify import ReadBackResult, read_back

__all__ = [
    "DatasetResult",
    "GoldContractError",
    "PublishReport",
    "ReadBackResult",
    "gold_root",
    "publish_qlib",
    "read_back",
]
