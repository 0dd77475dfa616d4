"""OKX trade frames decoded many at a time: the flush's fast path for what ``okx._parse_trades`` does one
frame at a time (same rows; anything unusual is handed back to it, see ``pipeline.venues._columnar``)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.venues import _columnar as col
from pipeline.venues import okx

# What a trade push starts with on the wire ({"arg":{"channel":"trades","instId":...},"data":[...]}); the
# connection keeps such frames raw. Frames in another key order still parse (per frame, then kept raw too).
TRADES_PREFIX = b'{"arg":{"channel":"trades",'
CHANNELS = pa.array(sorted(name for name, handler in okx._HANDLERS.items() if handler is okx._parse_trades))

_ITEM = pa.struct(
    [(name, pa.string()) for name in ("instId", "tradeId", "px", "sz", "side", "ts", "count")] + [("seqId", pa.int64())]
)
SCHEMA = pa.schema([("arg", pa.struct([("channel", pa.string())])), ("data", pa.list_(_ITEM))])


def decode(lines: Any, frames: int) -> col.Decoded:
    """``frames`` newline-delimited frames -> the trade rows of the frames accepted here."""
    table = col.read_lines(lines, frames, SCHEMA)
    channel = pc.struct_field(table.column("arg"), "channel")
    data = table.column("data")
    frame_ok = col.mask(pc.and_(pc.is_in(channel, value_set=CHANNELS), pc.is_valid(data.combine_chunks())))
    items, frame_of_row = col.list_items(data)
    f = {name: pc.struct_field(items, name) for name in _ITEM.names}
    ids_ok, ts_ok = col.digits(f["tradeId"]), col.digits(f["ts"])
    count_ok = col.mask(pc.is_null(f["count"])) | col.digits(f["count"])
    price, price_ok = col.positive_decimals(f["px"])
    size, size_ok = col.positive_decimals(f["sz"])
    ts = col.to_int(f["ts"], ts_ok)
    market, market_ok = col.markets(f["instId"], okx._MEMO)
    row_ok = (
        col.mask(items.is_valid()) & ids_ok & ts_ok & count_ok & price_ok & size_ok & market_ok
        & col.sides(f["side"]) & col.mask(pc.greater(ts, 0))
    )  # fmt: skip
    n = len(items)
    nulls = pa.nulls(n, pa.float64())
    columns = {
        "market": market,
        "instrument": f["instId"],
        "trade_id": f["tradeId"],
        "price": price,
        "size": size,
        "side": f["side"],
        "exchange_ts_ms": ts,
        "seq": f["seqId"],
        "trade_count": _counts(f["count"]),
        "index_price": nulls,
        "mark_price": nulls,
        "iv": nulls,
        "liquidation": pa.nulls(n, pa.string()),
    }
    return col.finish(frame_ok, frame_of_row, row_ok, columns)


def _counts(values: pa.Array) -> pa.Array:
    """``count`` as int64 where it is digits, null where absent (2022 frames)."""
    ok = col.digits(values)
    return pc.if_else(pa.array(ok), values, pa.scalar(None, pa.string())).cast(pa.int64())
