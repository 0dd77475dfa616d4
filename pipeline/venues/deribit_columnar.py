"""Deribit trade frames decoded many at a time: the flush's fast path for what ``deribit._parse_trades``
does one frame at a time (same rows; anything unusual is handed back to it, see ``pipeline.venues._columnar``)."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.venues import _columnar as col
from pipeline.venues import deribit

# {"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.ETH-PERPETUAL.100ms","data":[...]}}
TRADES_PREFIX = b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.'

_FLOATS = ("price", "amount", "index_price", "mark_price", "iv")
_ITEM = pa.struct(
    [("instrument_name", pa.string()), ("trade_id", pa.string()), ("direction", pa.string()), ("liquidation", pa.string()),
     ("timestamp", pa.int64()), ("trade_seq", pa.int64())]
    + [(name, pa.float64()) for name in _FLOATS]
)  # fmt: skip
SCHEMA = pa.schema([("params", pa.struct([("channel", pa.string()), ("data", pa.list_(_ITEM))]))])


def decode(frames: Sequence[bytes]) -> col.Decoded:
    """The trade rows of the frames pyarrow's JSON reader can take and the checks accept."""
    table = col.read_lines(b"\n".join(frames), len(frames), SCHEMA)
    params = table.column("params")
    data = pc.struct_field(params, "data")
    frame_ok = col.mask(pc.and_(pc.starts_with(pc.struct_field(params, "channel"), "trades."), pc.is_valid(data)))
    items, frame_of_row = col.list_items(data)
    f = {name: pc.struct_field(items, name) for name in _ITEM.names}
    market, market_ok = col.markets(f["instrument_name"], deribit._MEMO)
    row_ok = (
        col.mask(items.is_valid()) & market_ok & col.sides(f["direction"])
        & col.positive_finite(f["price"]) & col.positive_finite(f["amount"])
        & col.mask(pc.is_valid(f["trade_id"])) & col.mask(pc.is_valid(f["timestamp"]))
        & col.mask(pc.is_valid(f["trade_seq"]))
        & col.plain_numbers(f["index_price"]) & col.plain_numbers(f["mark_price"]) & col.plain_numbers(f["iv"])
    )  # fmt: skip
    columns = {
        "market": market,
        "instrument": f["instrument_name"],
        "trade_id": f["trade_id"],
        "price": f["price"],
        "size": f["amount"],
        "side": f["direction"],
        "exchange_ts_ms": f["timestamp"],
        "seq": f["trade_seq"],
        "trade_count": pa.nulls(len(items), pa.int64()),
        "index_price": f["index_price"],
        "mark_price": f["mark_price"],
        "iv": f["iv"],
        "liquidation": f["liquidation"],
    }
    return col.finish(frame_ok, frame_of_row, row_ok, columns)


DECODERS = (decode,)
