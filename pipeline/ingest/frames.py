"""One received frame through the venue's per-frame parser, with the rejects policy in one place: the
connection's hot path and the flush's fallback for frames the columnar decoders hand back both use it."""

from __future__ import annotations

import logging
from typing import Any

from pipeline.errors import FrameError
from pipeline.venues.base import Control, ParsedBatch, Venue

log = logging.getLogger(__name__)


def parse_frame(
    venue: Venue,
    message: bytes | str,
    receive_ts_us: int,
    batch: ParsedBatch,
    rejects: list[tuple[Any, ...]],
    source: str = "ws",
) -> Control | None:
    """Parse ``message`` into ``batch``; a frame that cannot be parsed goes to ``rejects`` verbatim with the
    reason (a parser bug costs that frame only, never the connection)."""
    if not isinstance(message, str):
        try:
            text = bytes(message).decode("utf-8")
        except UnicodeDecodeError:
            rejects.append((venue.NAME, receive_ts_us, source, "frame is not UTF-8", bytes(message).hex()))
            return None
    else:
        text = message
    start = len(batch.trades)
    try:
        return venue.parse(text, receive_ts_us, batch, source)
    except FrameError as exc:
        rejects.append((venue.NAME, receive_ts_us, source, exc.reason, text))
    except Exception as exc:  # noqa: BLE001 - e.g. a Deribit "data": null once ended a connection's task for good
        del batch.trades[start:]  # quotes/candles parsers extend only after a whole frame parsed
        log.error("%s: parser failed on a frame: %s: %s", venue.NAME, type(exc).__name__, exc)
        rejects.append((venue.NAME, receive_ts_us, source, f"parser error {type(exc).__name__}: {exc}", text))
    return None
