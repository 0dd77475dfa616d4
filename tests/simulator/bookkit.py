"""What the book wire tests share: an independent CRC32 and OKX checksum, a bounded loopback WebSocket
recorder, and local books rebuilt from the frames as a client would."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import websockets

from pipeline.simulator import okx_login as sim_login
from pipeline.venues.okx_login import Credentials, login_request


def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc_table()


def crc32(data: bytes) -> int:
    """CRC-32 (IEEE 802.3, reflected), written out here so the test does not trust zlib as the simulator does."""
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def okx_checksum(bids: list[list[str]], asks: list[list[str]]) -> int:
    """OKX's rule (field notes): top 25, bid/ask alternating, ``px:sz`` joined by ``:``, signed 32-bit."""
    parts: list[str] = []
    for i in range(25):
        if i < len(bids):
            parts += [bids[i][0], bids[i][1]]
        if i < len(asks):
            parts += [asks[i][0], asks[i][1]]
    c = crc32(":".join(parts).encode())
    return c - (1 << 32) if c >= 1 << 31 else c


class LocalBook:
    """A book rebuilt from frames: price (float) -> the level as sent."""

    def __init__(self) -> None:
        self.bids: dict[float, list[Any]] = {}
        self.asks: dict[float, list[Any]] = {}
        self.seq: int | None = None

    def load(self, bids: list[list[Any]], asks: list[list[Any]]) -> None:
        self.bids = {float(lv[0]): lv for lv in bids}
        self.asks = {float(lv[0]): lv for lv in asks}

    def load_truth(self, view: Any) -> None:
        self.bids = {px: [px, sz] for px, sz in view.bids}
        self.asks = {px: [px, sz] for px, sz in view.asks}

    def top(self, n: int = 400) -> tuple[list[list[Any]], list[list[Any]]]:
        bids = [self.bids[p] for p in sorted(self.bids, reverse=True)[:n]]
        asks = [self.asks[p] for p in sorted(self.asks)[:n]]
        return bids, asks

    def floats(self, n: int = 400) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        bids, asks = self.top(n)
        return [(float(b[0]), float(b[1])) for b in bids], [(float(a[0]), float(a[1])) for a in asks]

    def crossed(self) -> bool:
        return bool(self.bids and self.asks and max(self.bids) >= min(self.asks))

    def apply_okx(self, data: dict[str, Any]) -> None:
        for side, levels in ((self.bids, data["bids"]), (self.asks, data["asks"])):
            for lv in levels:
                if float(lv[1]) == 0:
                    side.pop(float(lv[0]), None)
                else:
                    side[float(lv[0])] = lv

    def apply_deribit(self, data: dict[str, Any]) -> list[str]:
        """Apply ``[action, price, amount]`` changes; returns what did not fit the local book."""
        problems = []
        for side, levels in ((self.bids, data["bids"]), (self.asks, data["asks"])):
            for action, px, amount in levels:
                if (px in side) != (action != "new"):
                    problems.append(f"{action} {px}")
                if action == "delete":
                    side.pop(px, None)
                else:
                    side[px] = [px, amount]
        return problems


SIM_CREDENTIALS = Credentials(sim_login.API_KEY, sim_login.SECRET, sim_login.PASSPHRASE)


async def record(
    url: str,
    subscribe: Any,
    unsubscribe: Any,
    is_done: Callable[[Any], bool],
    seconds: float,
    during: Callable[[float], Awaitable[None]] | None = None,
    log_in: bool = False,
) -> list[Any]:
    """Every frame (parsed) of one connection: send ``subscribe``, read for ``seconds`` (calling ``during(t)``
    between frames), send ``unsubscribe``, read until ``is_done(frame)`` -- so nothing pushed before the
    unsubscribe is missed. Bounded by a timeout. ``log_in``: first log in to the simulator's OKX with its key
    (the tick-by-tick books need it)."""
    frames: list[Any] = []
    async with websockets.connect(url, max_size=None, ping_interval=None) as ws:
        if log_in:
            await ws.send(login_request(SIM_CREDENTIALS))
            async with asyncio.timeout(15):
                answer = json.loads(await ws.recv())
            assert answer.get("event") == "login" and answer.get("code") == "0", answer
        await ws.send(json.dumps(subscribe))
        start = time.monotonic()
        async with asyncio.timeout(seconds + 15):
            while time.monotonic() - start < seconds:
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.2)
                except TimeoutError:
                    raw = None
                if raw is not None:
                    frames.append(json.loads(raw))
                if during is not None:
                    await during(time.monotonic() - start)
            await ws.send(json.dumps(unsubscribe))
            while True:
                frame = json.loads(await ws.recv())
                frames.append(frame)
                if is_done(frame):
                    return frames
