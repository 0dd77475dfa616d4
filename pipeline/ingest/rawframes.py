"""Trade frames kept as received until the flush decodes them together (``pipeline.ingest.trade_decoder``).

Per frame the hot path keeps a reference to the bytes the socket gave it and notes the receive clock in a
flat array: one object per frame (not the ten a parsed trade row costs), no copy, no decoding. The flush
hands the venue's columnar decoders the frames (pyarrow's JSON reader reads them joined by newlines). A frame that is not one line of JSON (a line
break inside it) cannot shift the frames after it: its pieces either fail to parse or add rows, and the
decoder checks that a chunk gave exactly one row per frame before it trusts the chunk (else that chunk
goes frame by frame).
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray


class RawFrames:
    __slots__ = ("frames", "limit", "receive_ts")

    def __init__(self, limit: float = float("inf")) -> None:
        self.frames: list[bytes] = []
        self.receive_ts = array("q")  # collector clock per frame, in us
        self.limit = limit  # frames at which the owner wants a flush (checked by the reader, not here)

    def add(self, frame: bytes, receive_ts_us: int) -> bool:
        """Keep ``frame``; True once the buffer holds ``limit`` frames."""
        frames = self.frames
        frames.append(frame)
        self.receive_ts.append(receive_ts_us)
        return len(frames) >= self.limit

    def __len__(self) -> int:
        return len(self.frames)

    def select(self, indices: Sequence[int] | NDArray[np.int64]) -> list[bytes]:
        """The frames at ``indices`` (ascending), as received."""
        if len(indices) and indices[-1] - indices[0] == len(indices) - 1:  # a run: one slice
            return self.frames[indices[0] : indices[-1] + 1]
        return [self.frames[i] for i in indices]

    def frame(self, i: int) -> bytes:
        """Frame ``i`` exactly as received."""
        return self.frames[i]
