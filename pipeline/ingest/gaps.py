"""Gap detection on the trade stream, per instrument.

Rules (from the venues' own data):
- Deribit ``trade_seq`` is contiguous per instrument: seq > last + 1 is a gap.
- OKX trade ids count fills: consecutive trades satisfy ``id[n] - id[n-1] == count[n]`` (seen in the 2026
  captures), so id - last > count is a gap. Frames without ``count`` (2022 captures) only detect ids
  going backwards. OKX ``seqId`` on trades is not contiguous, so it is not used.
- A late trade that falls inside an open gap (out-of-order delivery) shrinks it; a gap whose missing
  trades all arrived within ``settle_ms`` is never written.
- Reconnect windows and restarts are gaps too: nothing was listening.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.lake.schemas import TRADE_FIELDS
from pipeline.venues import _columnar as columnar

_I = {name: i for i, name in enumerate(TRADE_FIELDS)}
I_INSTRUMENT, I_TRADE_ID, I_TS, I_SEQ, I_COUNT = (
    _I["instrument"],
    _I["trade_id"],
    _I["exchange_ts_ms"],
    _I["seq"],
    _I["trade_count"],
)


def okx_counter(trade_id: Any) -> int | None:
    """The continuity counter of an OKX trade id, None for an id that is not plain digits."""
    if trade_id.__class__ is str and trade_id.isascii() and trade_id.isdigit() and len(trade_id) <= 18:
        return int(trade_id)
    return None


NONE = np.iinfo(np.int64).min  # "no counter yet" in the vectorised check


def _counters(venue: str, trades: pa.Table) -> tuple[np.ma.MaskedArray, np.ma.MaskedArray | None]:
    """The continuity counter of each trade (masked where it has none) and the step it should advance by
    (None: always 1)."""
    if venue == "deribit":
        return _masked(trades.column("seq")), None
    ids = trades.column("trade_id").combine_chunks()
    # Trade ids that count fills, as okx_counter has them: plain ASCII digits, 18 at most (int64); others null
    ids = columnar.where(columnar.digits(ids), ids, pa.scalar(None, pa.string())).cast(pa.int64())
    return _masked(ids), _masked(trades.column("trade_count"))


def _masked(column: pa.ChunkedArray | pa.Array) -> np.ma.MaskedArray:
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    missing = array.is_null().to_numpy(zero_copy_only=False)
    return np.ma.MaskedArray(array.fill_null(0).to_numpy(zero_copy_only=False), mask=missing)


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    encoded = pc.dictionary_encode(column.combine_chunks())
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), encoded.dictionary.to_pylist()


@dataclass
class _Pending:
    instrument: str
    kind: str
    from_seq: int
    to_seq: int
    from_ts_ms: int
    to_ts_ms: int
    missing: int
    detected_us: int


@dataclass
class _Last:
    seq: int  # the continuity counter: Deribit trade_seq, OKX trade id
    ts_ms: int


def gap_row(
    venue: str,
    instrument: str,
    kind: str,
    from_ts_ms: int,
    to_ts_ms: int,
    from_seq: int | None,
    to_seq: int | None,
    detail: str,
    detected_us: int | None = None,
) -> tuple[Any, ...]:
    anchor = from_seq if from_seq is not None else from_ts_ms
    return (
        f"{venue}|{instrument}|{kind}|{anchor}",
        venue,
        instrument,
        kind,
        from_ts_ms,
        to_ts_ms,
        from_seq,
        to_seq,
        "open",
        detected_us if detected_us is not None else time.time_ns() // 1000,
        detail,
    )


@dataclass
class GapDetector:
    venue: str
    settle_ms: int = 3_000
    last: dict[str, _Last] = field(default_factory=dict)
    pending: list[_Pending] = field(default_factory=list)
    out_of_order: int = 0
    duplicates: int = 0

    def check(self, trades: list[tuple[Any, ...]], start: int) -> None:
        """Check ``trades[start:]`` (row tuples) against each instrument's continuity: the row-by-row
        definition of the check; the stream runs ``check_table``, which tests hold equal to this."""
        last = self.last
        deribit = self.venue == "deribit"
        kind = "seq" if deribit else "trade_id"
        for i in range(start, len(trades)):
            row = trades[i]
            if deribit:
                counter, step = row[I_SEQ], 1
                if counter is None:
                    continue
            else:
                step = row[I_COUNT]
                counter = okx_counter(row[I_TRADE_ID])
                if counter is None:
                    continue
            inst = row[I_INSTRUMENT]
            prev = last.get(inst)
            if prev is None:
                last[inst] = _Last(counter, row[I_TS])
            elif counter > prev.seq:
                if step is not None and counter - prev.seq > step:
                    missing = counter - prev.seq - step
                    ts = row[I_TS]
                    self.pending.append(
                        _Pending(inst, kind, prev.seq, counter, prev.ts_ms, ts, missing, time.time_ns() // 1000)
                    )
                prev.seq = counter
                prev.ts_ms = row[I_TS]
            else:
                self._late(inst, counter, step or 1)

    def check_table(self, trades: pa.Table) -> None:
        """``check`` for a whole bronze/trades table in arrival order, vectorised (numpy): per instrument, the
        running maximum of the counter decides which trades advance; only gaps and late trades (rare) are
        then handled one by one, in arrival order, exactly as ``check`` handles them."""
        if trades.num_rows == 0:
            return
        counter, step = _counters(self.venue, trades)
        keep = np.flatnonzero(~np.ma.getmaskarray(counter))
        if not keep.size:
            return
        codes, names = _codes(trades.column("instrument"))
        c = counter.data[keep]
        code = codes[keep]
        ts = trades.column("exchange_ts").cast(pa.int64()).to_numpy()[keep] // 1000
        st = step[keep] if step is not None else None
        order = np.argsort(code, kind="stable")  # by instrument, arrival order within each
        c, code, ts, keep = c[order], code[order], ts[order], keep[order]
        st = st[order] if st is not None else None
        n = len(c)
        first = np.ones(n, dtype=bool)
        first[1:] = code[1:] != code[:-1]
        group_start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
        # Running maximum of the earlier counters in the same instrument: ranks offset by instrument make one
        # global accumulate respect the instrument boundaries (every rank of a later instrument is larger).
        values, rank = np.unique(c, return_inverse=True)
        keyed = code.astype(np.int64) * n + rank
        running = np.maximum.accumulate(keyed)
        prev = np.full(n, NONE, dtype=np.int64)
        inner = ~first
        prev[inner] = values[running[:-1][inner[1:]] - code[inner] * n]
        # ...and the counter the detector already held for the instrument (from earlier flushes).
        held = np.array([self.last[nm].seq if nm in self.last else NONE for nm in names], dtype=np.int64)
        held_ts = np.array([self.last[nm].ts_ms if nm in self.last else 0 for nm in names], dtype=np.int64)
        prev = np.maximum(prev, held[code])
        has_prev = prev != NONE
        adv = ~has_prev | (c > prev)
        # The timestamp of the trade that set ``prev``: the last advancing trade before this one, or the held one.
        idx_adv = np.where(adv, np.arange(n), -1)
        last_adv = np.empty(n, dtype=np.int64)
        last_adv[0] = -1
        last_adv[1:] = np.maximum.accumulate(idx_adv)[:-1]
        from_ts = np.where(last_adv >= group_start, ts[np.maximum(last_adv, 0)], held_ts[code])
        if st is not None:
            step_ok = ~np.ma.getmaskarray(st)
            gap = adv & has_prev & step_ok & (c - prev > st.data)
        else:
            step_ok = np.ones(n, dtype=bool)
            gap = adv & has_prev & (c - prev > 1)
        events = np.flatnonzero(gap | ~adv)
        kind = "seq" if self.venue == "deribit" else "trade_id"
        for k in events[np.argsort(keep[events], kind="stable")]:
            inst, ck = names[code[k]], int(c[k])
            sk = 1 if st is None else (int(st.data[k]) if step_ok[k] else None)
            if gap[k]:
                pk = int(prev[k])
                assert sk is not None  # a gap needs a known step (step_ok)
                self.pending.append(
                    _Pending(inst, kind, pk, ck, int(from_ts[k]), int(ts[k]), ck - pk - sk, time.time_ns() // 1000)
                )
            else:
                self._late(inst, ck, sk or 1)
        last_in_group = np.maximum.accumulate(idx_adv)  # the last advancing trade so far, per position
        ends = np.flatnonzero(np.append(first[1:], True))  # last position of each instrument
        for k in ends:
            j = last_in_group[k]
            if j < group_start[k]:
                continue  # nothing advanced for this instrument in this table
            inst = names[code[k]]
            kept = self.last.get(inst)
            if kept is None:
                self.last[inst] = _Last(int(c[j]), int(ts[j]))
            else:
                kept.seq, kept.ts_ms = int(c[j]), int(ts[j])

    def _late(self, inst: str, counter: int, step: int) -> None:
        for gap in self.pending:
            if gap.instrument == inst and gap.from_seq < counter < gap.to_seq:
                gap.missing -= step
                self.out_of_order += 1
                return
        self.duplicates += 1

    def settled(self, now_us: int | None = None, *, force: bool = False) -> list[tuple[Any, ...]]:
        """Gap rows whose settle time passed (all of them with ``force``); filled ones are dropped."""
        now_us = time.time_ns() // 1000 if now_us is None else now_us
        out: list[tuple[Any, ...]] = []
        keep: list[_Pending] = []
        for gap in self.pending:
            if gap.missing <= 0:
                continue
            if force or now_us - gap.detected_us >= self.settle_ms * 1000:
                out.append(
                    gap_row(
                        self.venue,
                        gap.instrument,
                        gap.kind,
                        gap.from_ts_ms,
                        gap.to_ts_ms,
                        gap.from_seq,
                        gap.to_seq,
                        f"{gap.missing} missing between {gap.from_seq} and {gap.to_seq}",
                        gap.detected_us,
                    )
                )
            else:
                keep.append(gap)
        self.pending = keep
        return out

    def snapshot(self) -> dict[str, list[int]]:
        """Continuity state to persist with a flush, so a restart continues the check."""
        return {inst: [v.seq, v.ts_ms] for inst, v in self.last.items()}

    def restore(self, state: dict[str, list[int]]) -> None:
        for inst, (seq, ts) in state.items():
            self.last.setdefault(inst, _Last(int(seq), int(ts)))
