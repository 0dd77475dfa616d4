"""OKX trade frames decoded many at a time: the flush's fast path for what ``okx._parse_trades`` does one
frame at a time (same rows; anything unusual is handed back to it, see ``pipeline.venues._columnar``).

Two tiers: frames in the exact byte layout OKX sends today are cut apart without a JSON parser
(``pipeline.venues._layout``); the rest (2022 frames without count, reordered or extra keys, ...) go to
pyarrow's JSON reader; whatever either refuses goes to the per-frame parser."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.venues import _columnar as col
from pipeline.venues import _layout, okx
from pipeline.venues._layout import NUMBER, STRING

# What a trade push starts with on the wire ({"arg":{"channel":"trades","instId":...},"data":[...]}); the
# connection keeps such frames raw. Frames in another key order still parse (per frame, then kept raw too).
TRADES_PREFIX = b'{"arg":{"channel":"trades",'
CHANNELS = pa.array(sorted(name for name, handler in okx._HANDLERS.items() if handler is okx._parse_trades))

# The 2026 wire layout (see okx._parse_trades); "source" is not kept, as the per-frame parser ignores it.
LAYOUT = _layout.Layout(
    head=f'{{"arg":{{"channel":"trades","instId":"{STRING}"}},"data":[',
    item=(
        f'{{"instId":"{STRING}","tradeId":"{STRING}","px":"{STRING}","sz":"{STRING}","side":"{STRING}",'
        f'"ts":"{STRING}","count":"{STRING}","source":"{STRING}","seqId":{NUMBER}}}'
    ),
    joiner=",",
    tail="]}",
    names=("instId", "tradeId", "px", "sz", "side", "ts", "count", "", "seqId"),
)

_ITEM = pa.struct(
    [(name, pa.string()) for name in ("instId", "tradeId", "px", "sz", "side", "ts", "count")] + [("seqId", pa.int64())]
)
SCHEMA = pa.schema([("arg", pa.struct([("channel", pa.string())])), ("data", pa.list_(_ITEM))])


def decode_layout(frames: Sequence[bytes]) -> col.Decoded:
    """Tier 1: the rows of the frames in OKX's exact layout."""
    read = _layout.read(LAYOUT, frames)
    f = read.values
    seq, seq_ok = col.json_ints(f["seqId"])
    return _rows({**f, "seqId": seq}, read.frame_of_row, ~read.per_frame, seq_ok)


def decode_json(frames: Sequence[bytes]) -> col.Decoded:
    """Tier 2: the rows of the frames pyarrow's JSON reader can take."""
    table = col.read_lines(b"\n".join(frames), len(frames), SCHEMA)
    channel = pc.struct_field(table.column("arg"), "channel")
    data = table.column("data")
    frame_ok = col.mask(pc.and_(pc.is_in(channel, value_set=CHANNELS), pc.is_valid(data.combine_chunks())))
    items, frame_of_row = col.list_items(data)
    f = {name: pc.struct_field(items, name) for name in _ITEM.names}
    return _rows(f, frame_of_row, frame_ok, col.mask(items.is_valid()))


DECODERS = (decode_layout, decode_json)


def _rows(f: dict[str, pa.Array], frame_of_row: np.ndarray, frame_ok: np.ndarray, item_ok: np.ndarray) -> col.Decoded:
    """The per-trade checks and the bronze/trades columns, whichever tier cut the values out."""
    ids_ok, ts_ok = col.digits(f["tradeId"]), col.digits(f["ts"])
    count_ok = col.mask(pc.is_null(f["count"])) | col.digits(f["count"])
    price, price_ok = col.positive_decimals(f["px"])
    size, size_ok = col.positive_decimals(f["sz"])
    ts = col.to_int(f["ts"], ts_ok)
    market, market_ok = col.markets(f["instId"], okx._MEMO)
    row_ok = (
        item_ok & ids_ok & ts_ok & count_ok & price_ok & size_ok & market_ok
        & col.sides(f["side"]) & col.mask(pc.greater(ts, 0))
    )  # fmt: skip
    n = len(frame_of_row)
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
    return col.where(ok, values, pa.scalar(None, pa.string())).cast(pa.int64())
