"""Shared pieces of the columnar trade decoders (``okx_columnar``, ``deribit_columnar``).

A columnar decoder reads many trade frames at once with pyarrow's JSON reader and must give exactly the
rows the venue's per-frame parser gives. It therefore accepts a frame only when every value is in a form
both agree on (ids and timestamps as plain ASCII digits, prices as plain decimals, finite numbers the
per-frame JSON decoder would also accept); any other frame is handed back to the per-frame parser, which
either parses it or rejects it with its reason. "Handed back" is the safe direction: the fast path may
refuse a good frame, never accept a bad one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from pipeline.venues._parsing import MarketMemo

_READ = pj.ReadOptions(use_threads=False, block_size=1 << 30)  # one block: the flush thread is the parallelism
# A plain decimal: what Python's float() and Arrow's cast read to the same correctly rounded double. Python
# also reads " 1", "1_0", "١" and Arrow "0x10"-like forms the other does not: those frames go per-frame.
_DECIMAL = r"^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]{1,3})?$"
MAX_DIGITS = 18  # int64 holds every 18-digit number
# orjson reads integers up to 64 bits only and rejects NaN/Infinity literals, which Arrow accepts: numbers
# near or beyond that range go per-frame, where orjson decides.
_MAX_NUMBER = 1e18


class NotColumnar(Exception):
    """The chunk as a whole cannot be read columnar (invalid JSON somewhere, a type that changed, ...)."""


@dataclass(slots=True)
class Decoded:
    """The rows of the frames a decoder accepted, and which frames it handed back."""

    columns: dict[str, pa.Array]  # TRADE_FIELDS names except venue, receive_ts_us and source
    frame_of_row: np.ndarray  # int64: the chunk-local frame index of each accepted row, ascending
    per_frame: np.ndarray  # bool per frame of the chunk: not accepted here, hand it to the next tier


def read_lines(lines: Any, frames: int, schema: pa.Schema) -> pa.Table:
    """Newline-delimited frames -> one row per frame in ``schema`` (unknown fields ignored)."""
    try:
        check_utf8(lines)
        table = pj.read_json(
            pa.py_buffer(lines),
            read_options=_READ,
            parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
        )
    except (pa.ArrowException, ValueError) as exc:  # invalid UTF-8 may also surface as UnicodeDecodeError
        raise NotColumnar(str(exc)) from None
    if table.num_rows != frames:
        raise NotColumnar(f"{table.num_rows} rows for {frames} frames")
    return table


def check_utf8(lines: Any) -> None:
    """Raise ``NotColumnar`` unless ``lines`` is valid UTF-8. The JSON reader checks only the strings it
    keeps, while the per-frame parser refuses a frame with a bad byte anywhere (an ignored field too); Arrow's
    binary -> string cast validates the whole buffer at memory speed, without a copy."""
    data = pa.py_buffer(lines)
    offsets = pa.py_buffer(np.array([0, data.size], dtype=np.int64))
    try:
        pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, data]).cast(pa.large_string())
    except (pa.ArrowException, ValueError) as exc:
        raise NotColumnar(f"not UTF-8: {exc}") from None


def list_items(column: pa.ChunkedArray) -> tuple[pa.StructArray, np.ndarray]:
    """The items of a list-of-struct column, and the frame index each came from."""
    lists = column.combine_chunks()
    return lists.flatten(), pc.list_parent_indices(lists).to_numpy()


def mask(condition: pa.Array) -> np.ndarray:
    """A boolean Arrow array as numpy, null counting as False."""
    return pc.fill_null(condition, False).to_numpy(zero_copy_only=False)


def digits(values: pa.Array) -> np.ndarray:
    """Plain ASCII digit strings short enough for int64."""
    ok = pc.and_(pc.ascii_is_decimal(values), pc.less_equal(pc.utf8_length(values), MAX_DIGITS))
    return mask(ok)


def json_ints(values: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Bare JSON integers cut out as strings (``_layout``) -> int64, and where they are such integers that
    fit (JSON has no leading zeros: "007" is invalid JSON, which the per-frame parser rejects)."""
    ok = digits(values) & ~(mask(pc.starts_with(values, "0")) & mask(pc.greater(pc.binary_length(values), 1)))
    return to_int(values, ok), ok


def where(ok: np.ndarray, values: pa.Array, other: Any) -> pa.Array:
    """``values`` where ``ok``, else ``other`` (usually every row is ok: no copy then)."""
    return values if ok.all() else pc.if_else(pa.array(ok), values, other)


def to_int(values: pa.Array, ok: np.ndarray) -> pa.Array:
    """Cast the rows where ``ok`` to int64 (others become 0; the caller drops them)."""
    return where(ok, values, "0").cast(pa.int64())


def positive_decimals(values: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Plain decimal strings as float64, and where they are positive and finite (as ``_positive`` wants)."""
    plain = mask(pc.match_substring_regex(values, _DECIMAL))
    numbers = where(plain, values, "1").cast(pa.float64())
    return numbers, plain & positive_finite(numbers)


def positive_finite(numbers: pa.Array) -> np.ndarray:
    return mask(pc.and_(pc.greater(numbers, 0.0), pc.less(numbers, _MAX_NUMBER)))


def plain_numbers(numbers: pa.Array) -> np.ndarray:
    """Null, or a finite number orjson would have read the same way (for optional numeric fields)."""
    inside = pc.less(pc.abs(numbers), _MAX_NUMBER)  # NaN compares false
    return mask(pc.or_kleene(pc.is_null(numbers), inside))


def sides(values: pa.Array) -> np.ndarray:
    return mask(pc.is_in(values, value_set=pa.array(["buy", "sell"])))


def markets(instruments: pa.Array, memo: MarketMemo) -> tuple[pa.Array, np.ndarray]:
    """instrument -> market through the venue's memo, once per distinct name; unrecognised names -> not ok."""
    encoded = pc.dictionary_encode(instruments)
    found: list[str | None] = []
    for name in encoded.dictionary.to_pylist():  # the distinct names (nulls are not in a dictionary)
        market = memo.cache.get(name)
        if market is None:
            try:
                market = memo.slow(name)
            except ValueError:  # BadField: not a name of this venue
                market = None
        found.append(market)
    table = pa.array(found, pa.string())
    values = table.take(encoded.indices)
    return values, mask(pc.is_valid(values))


def finish(frame_ok: np.ndarray, frame_of_row: np.ndarray, row_ok: np.ndarray, columns: dict[str, pa.Array]) -> Decoded:
    """Hand back every frame with a refused row or a refused frame-level field; keep the rows of the rest."""
    per_frame = ~frame_ok
    per_frame[frame_of_row[~row_ok]] = True
    keep = ~per_frame[frame_of_row]
    if keep.all():
        return Decoded(columns, frame_of_row, per_frame)
    take = pa.array(np.flatnonzero(keep))
    return Decoded({k: v.take(take) for k, v in columns.items()}, frame_of_row[keep], per_frame)
