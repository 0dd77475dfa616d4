"""Trade frames kept as received until the flush decodes them together (``pipeline.ingest.trade_decoder``).

Per frame the hot path copies the bytes into one growing buffer and notes the receive clock: no Python
object per frame outlives the frame, so a burst leaves no heap of small objects behind, and the flush hands
pyarrow's JSON reader newline-delimited frames without joining anything. The offsets kept here give every
frame back exactly as received. A frame that is not one line of JSON (a line break inside it) cannot shift
the frames after it: its pieces either fail to parse or add rows, and the decoder checks that a chunk gave
exactly one row per frame before it trusts the chunk (else that chunk goes frame by frame).
"""

from __future__ import annotations

from array import array


class RawFrames:
    __slots__ = ("buf", "ends", "receive_ts")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.ends = array("q")  # end offset of each frame's line (after its newline)
        self.receive_ts = array("q")  # collector clock per frame, in us

    def add(self, frame: bytes, receive_ts_us: int) -> None:
        buf = self.buf
        buf += frame
        buf += b"\n"
        self.ends.append(len(buf))
        self.receive_ts.append(receive_ts_us)

    def __len__(self) -> int:
        return len(self.ends)

    def start(self, i: int) -> int:
        return self.ends[i - 1] if i else 0

    def lines(self, lo: int, hi: int) -> memoryview:
        """Frames ``lo``..``hi``-1 as newline-delimited bytes (a view, no copy)."""
        return memoryview(self.buf)[self.start(lo) : self.ends[hi - 1]]

    def frame(self, i: int) -> bytes:
        """Frame ``i`` exactly as received."""
        return bytes(self.buf[self.start(i) : self.ends[i] - 1])
