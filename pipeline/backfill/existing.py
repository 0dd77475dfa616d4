"""What bronze already holds, so backfill and gap filling write only what is missing.

Reads go through the Delta table's Arrow dataset with partition filters (venue, UTC date), so a chunk
reads only the files of its days.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.lake import writer
from pipeline.lake.location import Lake
from pipeline.lake.schemas import TS
from pipeline.lake.tables import BRONZE_CANDLES, BRONZE_DERIVATIVES, BRONZE_TRADES, TableSpec

_DAY_MS = 86_400_000


def _dates(start_ms: int, end_ms: int) -> list[dt.date]:
    first, last = start_ms // _DAY_MS, max(start_ms, end_ms - 1) // _DAY_MS
    return [dt.date(1970, 1, 1) + dt.timedelta(days=d) for d in range(first, last + 1)]


def _scan(
    lake: Lake,
    spec: TableSpec,
    venue: str,
    instrument: str | None,
    ts_col: str,
    start_ms: int,
    end_ms: int,
    columns: list[str],
    extra: Any = None,
) -> pa.Table | None:
    table = writer.open_table(lake, spec)
    if table is None:
        return None
    expr = (pc.field("venue") == venue) & pc.field("date").isin(pa.array(_dates(start_ms, end_ms), pa.date32()))
    expr = (
        expr & (pc.field(ts_col) >= pa.scalar(start_ms * 1000, TS)) & (pc.field(ts_col) < pa.scalar(end_ms * 1000, TS))
    )
    if instrument is not None:
        expr = expr & (pc.field("instrument") == instrument)
    if extra is not None:
        expr = expr & extra
    return table.to_pyarrow_dataset().to_table(columns=columns, filter=expr)


def trade_ids(lake: Lake, venue: str, instrument: str, start_ms: int, end_ms: int) -> set[str]:
    """Trade ids of ``instrument`` in bronze/trades with ``start_ms <= exchange_ts < end_ms`` (any source)."""
    data = _scan(lake, BRONZE_TRADES, venue, instrument, "exchange_ts", start_ms, end_ms, ["trade_id"])
    return set() if data is None else set(data.column("trade_id").to_pylist())


def trade_ids_by_instrument(lake: Lake, venue: str, start_ms: int, end_ms: int) -> dict[str, set[str]]:
    """Every trade id of ``venue`` in bronze/trades with ``start_ms <= exchange_ts < end_ms``, per instrument:
    one scan for many gaps instead of one per gap (each scan re-reads the Delta log and the day's files)."""
    data = _scan(lake, BRONZE_TRADES, venue, None, "exchange_ts", start_ms, end_ms, ["instrument", "trade_id"])
    out: dict[str, set[str]] = {}
    if data is None:
        return out
    for inst, tid in zip(data.column("instrument").to_pylist(), data.column("trade_id").to_pylist(), strict=True):
        out.setdefault(inst, set()).add(tid)
    return out


def candle_keys(lake: Lake, venue: str, instrument: str, timeframe: str, start_ms: int, end_ms: int) -> set[int]:
    """Open times (ms) of closed ``timeframe`` bars of ``instrument`` already in bronze/candles."""
    extra = (pc.field("timeframe") == timeframe) & (pc.field("confirm") == True)  # noqa: E712 - Arrow expression
    return _times_ms(
        _scan(lake, BRONZE_CANDLES, venue, instrument, "open_time", start_ms, end_ms, ["open_time"], extra)
    )


def derivative_times(lake: Lake, venue: str, instrument: str, channel: str, start_ms: int, end_ms: int) -> set[int]:
    """Exchange times (ms) of ``channel`` rows of ``instrument`` already in bronze/derivatives."""
    extra = pc.field("channel") == channel
    cols = ["exchange_ts"]
    return _times_ms(_scan(lake, BRONZE_DERIVATIVES, venue, instrument, "exchange_ts", start_ms, end_ms, cols, extra))


def _times_ms(data: pa.Table | None) -> set[int]:
    """The one timestamp column of ``data`` as epoch ms."""
    return set() if data is None else {int(v) // 1000 for v in data.column(0).cast(pa.int64()).to_pylist()}


def last_time_ms(
    lake: Lake,
    spec: TableSpec,
    venue: str,
    instrument: str,
    *,
    timeframe: str | None = None,
    lookback_ms: int = 7 * _DAY_MS,
    now_ms: int,
) -> int | None:
    """Latest ``exchange_ts`` (trades) / ``open_time`` (candles) of ``instrument`` within ``lookback_ms``."""
    ts_col = "open_time" if spec is BRONZE_CANDLES else "exchange_ts"
    extra = (pc.field("timeframe") == timeframe) if timeframe else None
    data = _scan(lake, spec, venue, instrument, ts_col, now_ms - lookback_ms, now_ms + 1, [ts_col], extra)
    if data is None or data.num_rows == 0:
        return None
    latest = pc.max(data.column(ts_col).cast(pa.int64())).as_py()
    return None if latest is None else int(latest) // 1000


def distinct_instruments(lake: Lake, venue: str, start_ms: int, end_ms: int) -> list[str]:
    """Instruments of ``venue`` with trades in bronze in the window (to expand whole-connection gaps)."""
    data = _scan(lake, BRONZE_TRADES, venue, None, "exchange_ts", start_ms, end_ms, ["instrument"])
    return [] if data is None else sorted(set(data.column("instrument").to_pylist()))
