"""What a connection hands its frames to: the ``FrameSink`` protocol (the collector implements it).

A connection knows the sink only through these members, as cryptofeed's connection handler knows only its
callbacks: it never sees the sink's buffers, which the sink swaps at each flush. Every member is called on
the sink's event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from pipeline.ingest.stats import StreamStats
from pipeline.venues.base import Control, Venue


class Recorder(Protocol):
    """Writes one connection's frames as they pass (``pipeline.ingest.capture.CaptureWriter``)."""

    def write(self, url: str, direction: Literal["recv", "sent"], text: str | bytes, ts_us: int) -> None: ...

    def close(self) -> None: ...


class FrameSink(Protocol):
    stats: StreamStats  # the connection counts frames, reconnects, stale connections, acks and venue errors

    def add_trade_frame(self, venue: str, frame: bytes, receive_ts_us: int) -> bool:
        """Keep a trade push raw (decoded at the flush); True when the buffers want a flush."""
        ...

    def add_frame(self, venue: Venue, frame: bytes, receive_ts_us: int) -> Control | None:
        """Parse any other frame into the buffers (rejects included); the control frame it was, if any."""
        ...

    def wants_flush(self) -> bool:
        """The buffers hold at least a flush's worth of rows."""
        ...

    async def backpressure(self) -> None:
        """Ask for a flush; returns once the reader may go on (at once unless the buffers are full)."""
        ...

    async def connect_gate(self, venue: str) -> None:
        """Returns when the connection may open (the venue's connection-rate limit)."""
        ...

    def reconnected(
        self, venue: str, connection: str, trade_instruments: Sequence[str], down_ms: int, up_ms: int
    ) -> None:
        """``connection`` was down from ``down_ms`` to ``up_ms`` (wall clock): its trades there are missing."""
        ...

    def open_recorder(self, connection: str, connects: int) -> Recorder | None:
        """A recorder for the ``connects``-th session of ``connection``, or None when not recording."""
        ...
