"""One WebSocket client connection on the server side: a frame buffer drained by its own writer task.

Why: the tick loop fans each frame out to many connections and must never wait on a slow client. It
appends pre-serialised frames (``bytes``, serialised once per frame for all subscribers) to each
connection's buffer; the writer task sends them. A client that falls behind by more than
``max_buffered`` frames is disconnected, as real venues do with slow consumers. Usable by any venue.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter

from aiohttp import WSMsgType, web

from pipeline.simulator.faults import MalformedFrame


class WsConn:
    """Server side of one connection. ``push`` is synchronous and cheap; ``close`` is idempotent."""

    __slots__ = (
        "_task",
        "_wake",
        "buf",
        "closed",
        "conn_id",
        "counters",
        "held",
        "held_since",
        "last_recv",
        "logged_in",
        "max_buffered",
        "on_overflow",
        "path",
        "sent",
        "sub_times",
        "subs",
        "venue",
        "ws",
    )

    def __init__(self, ws: web.WebSocketResponse, conn_id: str, venue: str, path: str, max_buffered: int) -> None:
        self.ws = ws
        self.conn_id = conn_id
        self.venue = venue
        self.path = path
        self.buf: list[bytes] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.last_recv = time.monotonic()
        self.logged_in = False  # OKX: a login channel (okx_login.LOGIN_CHANNELS) needs it
        self.subs: set[tuple[str, str]] = set()
        self.closed = False
        self.held: list[bytes] = []  # frames held back by the out-of-order fault
        self.held_since = 0.0
        self.max_buffered = max_buffered
        self.sent = 0
        self.on_overflow = None
        self.sub_times: list[float] = []
        self.counters: Counter[str] | None = None  # set by the hub: counts malformed frames actually written

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._writer(), name=f"ws-writer-{self.conn_id}")

    def push(self, frame: bytes) -> None:
        if self.closed:
            return
        buf = self.buf
        buf.append(frame)
        if len(buf) == 1:
            self._wake.set()
        elif len(buf) > self.max_buffered:
            # slow consumer: drop the connection instead of growing without bound
            self.buf = []
            self.closed = True
            asyncio.get_running_loop().create_task(self.ws.close(code=1008, message=b"slow consumer"))

    async def _writer(self) -> None:
        ws = self.ws
        text = WSMsgType.TEXT
        try:
            while not self.closed:
                await self._wake.wait()
                self._wake.clear()
                while self.buf and not self.closed:
                    frames, self.buf = self.buf, []
                    for frame in frames:
                        await ws.send_frame(frame, text)
                        if frame.__class__ is MalformedFrame and self.counters is not None:
                            self.counters["malformed_delivered"] += 1
                    self.sent += len(frames)
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass
        finally:
            self.closed = True

    async def close(self, code: int = 1000, message: bytes = b"") -> None:
        self.closed = True
        self._wake.set()
        if not self.ws.closed:
            with contextlib.suppress(Exception):
                await self.ws.close(code=code, message=message)

    async def stop_writer(self) -> None:
        self.closed = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
