"""Row tuples (as parsers emit them) to Arrow tables in the bronze schemas.

The hot path appends one tuple per row; this module does the columnar work once per flush, with
``zip(*rows)`` and vectorised Arrow casts, so the per-row cost stays a single ``list.append``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.lake import schemas as s


def _ts_from_ms(values: Any) -> pa.Array:
    # Checked: a hostile ms value near the int64 limit would otherwise wrap around silently into a
    # wrong timestamp; raising sends the row to rejects (Flusher / importer) instead.
    return pc.multiply_checked(_array(values, pa.int64()), 1000).cast(s.TS)


def _ts_from_us(values: Any) -> pa.Array:
    return _array(values, pa.int64()).cast(s.TS)


def _utc_date(ts: pa.Array) -> pa.Array:
    # Casting a tz-aware timestamp to date32 uses its UTC value, which is the partition we want.
    return pc.cast(ts.cast(pa.timestamp("us")), pa.date32())


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[tuple[Any, ...]]:
    if not rows:
        return [()] * width
    return list(zip(*rows, strict=True))


def _array(values: Any, type_: pa.DataType) -> pa.Array:
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values if values.type == type_ else values.cast(type_)
    return pa.array(values, type_)


def trades_table(rows: Sequence[tuple[Any, ...]]) -> pa.Table:
    """bronze/trades rows (``TRADE_FIELDS`` order) as an Arrow table in ``TRADES_SCHEMA``."""
    return trades_table_from_columns(dict(zip(s.TRADE_FIELDS, _columns(rows, len(s.TRADE_FIELDS)), strict=True)))


def trades_table_from_columns(c: dict[str, Any]) -> pa.Table:
    """bronze/trades from one column per ``TRADE_FIELDS`` name (Python sequences or Arrow arrays): the
    row path above and the columnar trade decoders (``pipeline.venues.*_columnar``) build it the same way."""
    exchange_ts = _ts_from_ms(c["exchange_ts_ms"])
    arrays = {
        "venue": _array(c["venue"], pa.string()),
        "market": _array(c["market"], pa.string()),
        "instrument": _array(c["instrument"], pa.string()),
        "trade_id": _array(c["trade_id"], pa.string()),
        "price": _array(c["price"], pa.float64()),
        "size": _array(c["size"], pa.float64()),
        "side": _array(c["side"], pa.string()),
        "exchange_ts": exchange_ts,
        "receive_ts": _ts_from_us(c["receive_ts_us"]),
        "source": _array(c["source"], pa.string()),
        "seq": _array(c["seq"], pa.int64()),
        "trade_count": _array(c["trade_count"], pa.int64()),
        "index_price": _array(c["index_price"], pa.float64()),
        "mark_price": _array(c["mark_price"], pa.float64()),
        "iv": _array(c["iv"], pa.float64()),
        "liquidation": _array(c["liquidation"], pa.string()),
        "date": _utc_date(exchange_ts),
    }
    return pa.Table.from_pydict(arrays, schema=s.TRADES_SCHEMA)


_LEVEL_NAMES = [name for name in s.QUOTES_SCHEMA.names if name[-2:] in ("_2", "_3", "_4", "_5")]


def _level_columns(bids: Sequence[Any], asks: Sequence[Any]) -> dict[str, list[float | None]]:
    """Levels 2..5 from the (px, sz) tuples that follow level 1."""
    out: dict[str, list[float | None]] = {name: [] for name in _LEVEL_NAMES}
    for side_name, side_rows in (("bid", bids), ("ask", asks)):
        for level in range(4):
            px_col = out[f"{side_name}_px_{level + 2}"]
            sz_col = out[f"{side_name}_sz_{level + 2}"]
            for levels in side_rows:
                if levels is not None and len(levels) > level:
                    px, sz = levels[level]
                    px_col.append(px)
                    sz_col.append(sz)
                else:
                    px_col.append(None)
                    sz_col.append(None)
    return out


def quotes_table(rows: Sequence[tuple[Any, ...]]) -> pa.Table:
    """bronze/quotes rows (``QUOTE_FIELDS`` order) as an Arrow table in ``QUOTES_SCHEMA``."""
    c = dict(zip(s.QUOTE_FIELDS, _columns(rows, len(s.QUOTE_FIELDS)), strict=True))
    exchange_ts = _ts_from_ms(c["exchange_ts_ms"])
    arrays: dict[str, Any] = {
        "exchange_ts": exchange_ts,
        "receive_ts": _ts_from_us(c["receive_ts_us"]),
        "date": _utc_date(exchange_ts),
    }
    arrays.update(_level_columns(c["bids"], c["asks"]))
    for name in s.QUOTES_SCHEMA.names:
        if name not in arrays:
            arrays[name] = pa.array(c[name], s.QUOTES_SCHEMA.field(name).type)
    return pa.Table.from_pydict({n: arrays[n] for n in s.QUOTES_SCHEMA.names}, schema=s.QUOTES_SCHEMA)


def rejects_table(rows: Sequence[tuple[Any, ...]]) -> pa.Table:
    """bronze/rejects rows (``REJECT_FIELDS`` order)."""
    c = dict(zip(s.REJECT_FIELDS, _columns(rows, len(s.REJECT_FIELDS)), strict=True))
    receive_ts = _ts_from_us(c["receive_ts_us"])
    return pa.Table.from_pydict(
        {
            "venue": pa.array(c["venue"], pa.string()),
            "receive_ts": receive_ts,
            "source": pa.array(c["source"], pa.string()),
            "reason": pa.array(c["reason"], pa.string()),
            "frame": pa.array(c["frame"], pa.string()),
            "date": _utc_date(receive_ts),
        },
        schema=s.REJECTS_SCHEMA,
    )


def gaps_table(rows: Sequence[tuple[Any, ...]]) -> pa.Table:
    """bronze/gaps rows (``GAP_FIELDS`` order)."""
    c = dict(zip(s.GAP_FIELDS, _columns(rows, len(s.GAP_FIELDS)), strict=True))
    from_ts = _ts_from_ms(c["from_ts_ms"])
    return pa.Table.from_pydict(
        {
            "gap_id": pa.array(c["gap_id"], pa.string()),
            "venue": pa.array(c["venue"], pa.string()),
            "instrument": pa.array(c["instrument"], pa.string()),
            "kind": pa.array(c["kind"], pa.string()),
            "from_ts": from_ts,
            "to_ts": _ts_from_ms(c["to_ts_ms"]),
            "from_seq": pa.array(c["from_seq"], pa.int64()),
            "to_seq": pa.array(c["to_seq"], pa.int64()),
            "status": pa.array(c["status"], pa.string()),
            "detected_ts": _ts_from_us(c["detected_ts_us"]),
            "detail": pa.array(c["detail"], pa.string()),
            "date": _utc_date(from_ts),
        },
        schema=s.GAPS_SCHEMA,
    )


# Venue bar names -> ours. OKX "1D" bars open at 00:00 UTC+8 unless "1Dutc"; both are kept apart.
TIMEFRAME_ALIASES = {
    "1H": "1h",
    "4H": "4h",
    "1Dutc": "1d",
    "1D": "1d+8",
    "1": "1m",
    "5": "5m",
    "15": "15m",
    "60": "1h",
    "240": "4h",
}


def candles_table(rows: Sequence[tuple[Any, ...]]) -> pa.Table:
    """bronze/candles rows (``CANDLE_FIELDS`` order)."""
    c = dict(zip(s.CANDLE_FIELDS, _columns(rows, len(s.CANDLE_FIELDS)), strict=True))
    open_time = _ts_from_ms(c["open_ts_ms"])
    arrays: dict[str, Any] = {
        "venue": pa.array(c["venue"], pa.string()),
        "market": pa.array(c["market"], pa.string()),
        "instrument": pa.array(c["instrument"], pa.string()),
        "timeframe": pa.array([TIMEFRAME_ALIASES.get(t, t) for t in c["timeframe"]], pa.string()),
        "open_time": open_time,
        "confirm": pa.array(c["confirm"], pa.bool_()),
        "receive_ts": _ts_from_us(c["receive_ts_us"]),
        "source": pa.array(c["source"], pa.string()),
        "date": _utc_date(open_time),
    }
    for name in ("open", "high", "low", "close", "vol", "vol_ccy", "vol_ccy_quote"):
        arrays[name] = pa.array(c[name], pa.float64())
    return pa.Table.from_pydict({n: arrays[n] for n in s.BRONZE_CANDLES_SCHEMA.names}, schema=s.BRONZE_CANDLES_SCHEMA)


def _table_from_rows(
    rows: Sequence[tuple[Any, ...]], fields: tuple[str, ...], schema: pa.Schema, date_from: str | None
) -> pa.Table:
    """Rows whose ``*_ms`` / ``*_us`` fields are integer clocks and the rest already in the schema's types."""
    columns = dict(zip(fields, _columns(rows, len(fields)), strict=True))
    arrays: dict[str, Any] = {}
    for name, values in columns.items():
        if name.endswith("_ms"):
            arrays[name[:-3]] = _ts_from_ms(values)
        elif name.endswith("_us"):
            arrays[name[:-3]] = _ts_from_us(values)
        else:
            arrays[name] = _array(values, schema.field(name).type)
    if date_from is not None:
        arrays["date"] = _utc_date(arrays[date_from])
    return pa.Table.from_pydict({n: arrays[n] for n in schema.names}, schema=schema)


def derivatives_table(rows: Sequence[tuple[Any, ...]]) -> pa.Table:
    return _table_from_rows(rows, s.DERIVATIVE_FIELDS, s.DERIVATIVES_SCHEMA, "exchange_ts")


def liquidations_table(rows: Sequence[tuple[Any, ...]]) -> pa.Table:
    return _table_from_rows(rows, s.LIQUIDATION_FIELDS, s.LIQUIDATIONS_SCHEMA, "exchange_ts")


def funding_table(rows: Sequence[tuple[Any, ...]]) -> pa.Table:
    return _table_from_rows(rows, s.FUNDING_FIELDS, s.FUNDING_SCHEMA, None)
