"""Book frames as the simulator serves them (``pipeline/simulator/okx_books.py``, ``deribit_books.py``), made in
process without a server: OKX ``books`` (a 400-level snapshot per instrument, then an update of a few to tens
of levels per 100 ms slot, chained by seqId/prevSeqId) and Deribit ``book.{inst}.100ms`` (snapshot, then
changes). The books step through simulated time driven by the simulator's market (its trades take liquidity).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.simulator.books import BookSet
from pipeline.simulator.config import SimConfig
from pipeline.simulator.deribit import subscription_frame
from pipeline.simulator.deribit_books import DeribitBooks
from pipeline.simulator.faults import Counters, Faults, FaultSettings
from pipeline.simulator.market import Market
from pipeline.simulator.okx_books import OkxBooks

START_MS = 1_786_540_440_000


@dataclass
class BookFrames:
    okx: list[bytes]  # OKX books frames in arrival order
    deribit: list[bytes]  # Deribit book.*.100ms frames in arrival order
    okx_levels: int  # level updates the OKX frames carry (snapshot levels included)
    deribit_levels: int


def book_frames(
    seconds: float,
    *,
    okx_instruments: int = 50,
    deribit_options: int = 120,
    checksum: str = "zero",
    updates_per_s: float = 40.0,
    seed: int = 7,
) -> BookFrames:
    """``seconds`` of simulated book traffic: every OKX instrument's ``books`` and every Deribit instrument's
    ``book.{inst}.100ms`` (the options and the perpetual), one snapshot each first. ``checksum``: "crc32"
    (pre-2026 data) or "zero" (since 2026-06)."""
    market = Market(
        SimConfig(
            seed=seed,
            start_ms=START_MS,
            okx_instruments=okx_instruments,
            deribit_options=deribit_options,
            history_days=1,
        )
    )
    books = BookSet(market, updates_per_s, seed)
    faults = Faults(FaultSettings(), Counters(), seed)
    okx_books = OkxBooks(books, faults, checksum, True)
    deribit_books = DeribitBooks(books, faults)
    okx_ids = [inst.inst_id for inst in market.instruments("okx")]
    deribit_channels = [(f"book.{inst.inst_id}.100ms", inst.inst_id) for inst in market.instruments("deribit")]
    okx: list[bytes] = []
    deribit: list[bytes] = []
    for inst_id in okx_ids:
        frame = okx_books.subscribed("books", inst_id, True)
        assert frame is not None
        okx.append(frame)
    for channel, inst_id in deribit_channels:
        deribit.append(subscription_frame(channel, deribit_books.snapshot(channel, inst_id, True)))
    now = START_MS
    for _ in range(int(seconds * 10)):
        now += 100
        books.advance(now, market.advance(now))
        for inst_id in okx_ids:
            okx += okx_books.publish("books", inst_id)
        for channel, inst_id in deribit_channels:
            deribit += [subscription_frame(channel, data) for data in deribit_books.changes(channel, inst_id)]
    return BookFrames(okx, deribit, _okx_levels(okx), _deribit_levels(deribit))


def _okx_levels(frames: list[bytes]) -> int:
    import orjson

    n = 0
    for frame in frames:
        for item in orjson.loads(frame)["data"]:
            n += len(item["bids"]) + len(item["asks"])
    return n


def _deribit_levels(frames: list[bytes]) -> int:
    import orjson

    n = 0
    for frame in frames:
        data = orjson.loads(frame)["params"]["data"]
        n += len(data["bids"]) + len(data["asks"])
    return n
