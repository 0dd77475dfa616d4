"""One WebSocket connection to one venue endpoint: connect, subscribe, read, keep alive, reconnect.

The connection knows nothing about a venue beyond the venue module's hooks (subscribe frames, the frames to
send on open, when idle, and in reply to a control frame), and nothing about the collector beyond the
``FrameSink`` protocol (``pipeline.ingest.sink``): trade pushes go to the sink raw, for the flush to decode
columnar; every other frame goes to the sink to be parsed (failures to rejects verbatim). A watchdog closes a
connection that went silent; the run loop reconnects with exponential backoff and jitter (reset once a
connection stayed up ``healthy_after_secs``), then subscribes again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import websockets
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidHandshake, InvalidURI

from pipeline.ingest.sink import FrameSink, Recorder
from pipeline.ingest.trade_decoder import columnar_for
from pipeline.stream_settings import StreamSettings
from pipeline.venues.base import Control, Subscription, Venue

log = logging.getLogger(__name__)


class StaleConnection(Exception):
    """No frame arrived for ``stale_after_secs``."""


class BookSubscriber(Protocol):
    """Told when a connection (re)subscribes, so each book starts a new session (``book_sync.BookSync``)."""

    def opened(self, conn: Any, subs: Sequence[Subscription]) -> None: ...


def backoff_delay(attempt: int, initial: float, maximum: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: attempt 0 waits about ``initial``, doubling up to ``maximum``.

    The jitter (50-100 % of the step) keeps many connections that dropped together from reconnecting in
    lock step, which is what trips a venue's connection-rate limit.
    """
    step = min(maximum, initial * (2 ** min(attempt, 30)))
    return step * (0.5 + 0.5 * rng.random())


class LoginRefused(Exception):
    """The venue refused the connection's login (wrong key, passphrase, signature or clock)."""


class Connection:
    def __init__(
        self,
        sink: FrameSink,
        venue: Venue,
        url: str,
        subs: Sequence[Subscription],
        name: str,
        settings: StreamSettings,
        books: BookSubscriber | None = None,
    ) -> None:
        self.sink = sink
        self.books = books
        self.venue = venue
        self.venue_name: str = venue.NAME
        self.url = url
        self.subs = list(subs)
        self.name = name
        self.settings = settings
        self._rng = random.Random(hash(name))
        self._next_id = 1
        self.last_frame_mono = time.monotonic()
        self.last_sent_mono = time.monotonic()
        self.last_frame_wall_ms = time.time_ns() // 1_000_000
        self.connected = False
        self.connects = 0
        self.frames = 0
        self.errors: list[str] = []
        self.trade_instruments = sorted({s.instrument for s in self.subs if s.channel == "trades"})
        self._ws: Any = None
        self._recorder: Recorder | None = None

    async def unsubscribe(self, instruments: set[str]) -> int:
        """Stop streaming ``instruments`` on this connection without reconnecting; returns streams dropped.

        The subscriptions leave ``self.subs`` first, so a reconnect in between never subscribes them again.
        """
        gone = [s for s in self.subs if s.instrument in instruments]
        if not gone:
            return 0
        self.subs = [s for s in self.subs if s.instrument not in instruments]
        self.trade_instruments = sorted({s.instrument for s in self.subs if s.channel == "trades"})
        ws = self._ws
        if ws is not None and self.connected:
            try:
                for frame in self.venue.unsubscribe_frames(gone, self._id()):
                    await self._send(ws, frame)
            except ConnectionClosed:
                pass  # the reconnect subscribes only what is left
        return len(gone)

    async def resubscribe(self, sub: Subscription) -> bool:
        """Unsubscribe and subscribe ``sub`` again on this live connection (a broken order book's resync);
        False when it is not connected (the reconnect subscribes everything anyway)."""
        ws = self._ws
        if ws is None or not self.connected or sub not in self.subs:
            return False
        try:
            for frame in self.venue.unsubscribe_frames([sub], self._id()):
                await self._send(ws, frame)
            for frame in self.venue.subscribe_frames([sub], self._id()):
                await self._send(ws, frame)
        except ConnectionClosed:
            return False
        return True

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def run(self) -> None:
        """Connect and read until cancelled; every failure leads to a reconnect."""
        attempt = 0
        down_since_ms: int | None = None
        while True:
            await self.sink.connect_gate(self.venue_name)
            opened = time.monotonic()
            try:
                async with websockets.connect(
                    self.url,
                    max_size=2**24,
                    ping_interval=None,  # the venues want their own keepalive, not WebSocket pings
                    open_timeout=self.settings.open_timeout_secs,
                    close_timeout=2,
                    compression=None,
                ) as ws:
                    self._ws = ws
                    self.connected = True
                    self.connects += 1
                    if self.connects > 1:
                        self.sink.stats.reconnects += 1
                    await self._open(ws)
                    if down_since_ms is not None:
                        self.sink.reconnected(
                            self.venue_name,
                            self.name,
                            self.trade_instruments,
                            down_since_ms,
                            time.time_ns() // 1_000_000,
                        )
                        down_since_ms = None
                    await self._read(ws)
            except asyncio.CancelledError:
                raise
            except (
                ConnectionClosed, OSError, StaleConnection, InvalidHandshake, TimeoutError, EOFError, LoginRefused
            ) as exc:  # fmt: skip
                self._note_error(f"{type(exc).__name__}: {exc}")
            except InvalidURI as exc:
                self._note_error(f"invalid URL {self.url}: {exc}")
            finally:
                self.connected = False
                self._ws = None
                if self._recorder is not None:
                    self._recorder.close()
                    self._recorder = None
            if down_since_ms is None:
                down_since_ms = self.last_frame_wall_ms
            attempt = 0 if time.monotonic() - opened >= self.settings.healthy_after_secs else attempt + 1
            delay = backoff_delay(
                attempt, self.settings.backoff_initial_secs, self.settings.backoff_max_secs, self._rng
            )
            await asyncio.sleep(delay)

    def _note_error(self, message: str) -> None:
        log.warning("%s: connection lost (%s); reconnecting", self.name, message)
        self.errors.append(message)
        del self.errors[:-20]

    async def _open(self, ws: Any) -> None:
        self._recorder = self.sink.open_recorder(self.name, self.connects)
        for frame in self.venue.on_open_frames(self.settings.heartbeat_secs, self._id()):
            await self._send(ws, frame)
        login = self.venue.login_frame(self.subs)
        if login is not None:
            await self._log_in(ws, login)
        if self.books is not None:
            self.books.opened(self, self.subs)  # before subscribing: the first answers belong to the new sessions
        for frame in self.venue.subscribe_frames(self.subs, self._id()):
            await self._send(ws, frame)
        self.last_frame_mono = time.monotonic()

    async def _log_in(self, ws: Any, frame: str) -> None:
        """Send the login and read until the venue answers it (frames read meanwhile are accounted as usual);
        a refusal or no answer within open_timeout_secs ends the connection, which then backs off."""
        await ws.send(frame)  # not recorded: it carries the API key
        self.last_sent_mono = time.monotonic()
        async with asyncio.timeout(self.settings.open_timeout_secs):
            if not await self._read(ws, until=self._login_answered):
                raise LoginRefused(f"{self.venue_name} closed the connection before answering the login")

    def _login_answered(self, control: Control) -> bool:
        outcome = self.venue.login_outcome(control)
        if outcome:
            log.info("%s: logged in", self.name)
            return True
        if outcome is False:
            log.error("%s: %s refused the login: %s %s", self.name, self.venue_name, control.code,
                      control.message)  # fmt: skip
            raise LoginRefused(f"{self.venue_name} login refused: {control.code} {control.message}")
        return False

    async def _send(self, ws: Any, frame: str) -> None:
        await ws.send(frame)
        self.last_sent_mono = time.monotonic()
        if self._recorder is not None:
            self._recorder.write(self.url, "sent", frame, time.time_ns() // 1000)

    async def _read(self, ws: Any, until: Callable[[Control], bool] | None = None) -> bool:
        """Read and account every frame until the venue closes the connection (False) or ``until`` accepts a
        control frame (True: the login waits for its answer this way)."""
        watchdog = asyncio.create_task(self._watchdog(ws), name=f"{self.name}-watchdog")
        sink = self.sink
        venue = self.venue
        stats = sink.stats
        add_trade_frame, add_frame, wants_flush = sink.add_trade_frame, sink.add_frame, sink.wants_flush
        columnar = columnar_for(venue)
        # Trade pushes stay raw until the flush decodes them columnar (pipeline.ingest.trade_decoder): the
        # per-frame cost here is a prefix test and a copy. Everything else is parsed right away.
        prefix = columnar.TRADES_PREFIX if columnar is not None else None
        name = self.venue_name
        recv = ws.recv
        try:
            while True:
                try:
                    message = await recv(decode=False)  # bytes: valid UTF-8 is checked where it is decoded
                except ConnectionClosedOK:
                    return False
                receive_ts_us = time.time_ns() // 1000
                self.last_frame_mono = time.monotonic()
                self.frames += 1
                stats.frames += 1
                if self._recorder is not None:
                    self._recorder.write(self.url, "recv", message, receive_ts_us)
                if prefix is not None and message.startswith(prefix):
                    if add_trade_frame(name, message, receive_ts_us):
                        await sink.backpressure()
                    continue
                control = add_frame(venue, message, receive_ts_us)
                if control is not None:
                    await self._on_control(ws, control)
                    if until is not None and until(control):
                        return True
                if wants_flush():
                    await sink.backpressure()
        finally:
            watchdog.cancel()
            self.last_frame_wall_ms = time.time_ns() // 1_000_000

    async def _on_control(self, ws: Any, control: Control) -> None:
        stats = self.sink.stats
        if control.kind == "error":
            stats.venue_errors += 1
            log.warning("%s: venue error %s: %s", self.name, control.code, control.message)
            self.errors.append(f"venue error {control.code}: {control.message}")
            del self.errors[:-20]
        elif control.kind == "ack":
            stats.acks += 1
        reply = self.venue.reply_to(control, self._id())
        if reply is not None:
            await self._send(ws, reply)

    async def _watchdog(self, ws: Any) -> None:
        """Close the connection when it went stale; send the venue's ping when we have been quiet.

        OKX may close a connection after 30 s without client traffic even while it is pushing data, and
        wants a ping when the client heard nothing for < 30 s. Pinging whenever we sent nothing for
        ``idle_ping_secs`` satisfies both (as ccxt's timer-based keepalive does).
        """
        settings = self.settings
        tick = min(1.0, settings.idle_ping_secs / 4, settings.stale_after_secs / 4)
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            silent = now - self.last_frame_mono
            if silent >= settings.stale_after_secs:
                log.warning("%s: no frame for %.1f s, reconnecting", self.name, silent)
                self.sink.stats.stale += 1
                ws.transport.abort() if hasattr(ws, "transport") else await ws.close()
                return
            if now - self.last_sent_mono >= settings.idle_ping_secs:
                frame = self.venue.idle_frame()
                if frame is None:
                    continue
                try:
                    await self._send(ws, frame)
                except ConnectionClosed:
                    return
