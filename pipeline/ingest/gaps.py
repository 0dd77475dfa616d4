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

import polars as pl
import pyarrow as pa

from pipeline.lake.schemas import TRADE_FIELDS

_I = {name: i for i, name in enumerate(TRADE_FIELDS)}
I_INSTRUMENT, I_TRADE_ID, I_TS, I_SEQ, I_COUNT = (
    _I["instrument"],
    _I["trade_id"],
    _I["exchange_ts_ms"],
    _I["seq"],
    _I["trade_count"],
)


OKX_COUNTER_PATTERN = r"^[0-9]{1,18}$"  # trade ids that count fills: plain digits (int64 holds 18 of them)


def okx_counter(trade_id: Any) -> int | None:
    """The continuity counter of an OKX trade id, None for an id that is not plain digits."""
    if trade_id.__class__ is str and trade_id.isascii() and trade_id.isdigit() and len(trade_id) <= 18:
        return int(trade_id)
    return None


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
        """Check ``trades[start:]`` (rows just parsed) against each instrument's continuity."""
        # Hot path (runs for every trade): locals, and the venue branch hoisted out of the loop.
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
                    self.pending.append(_Pending(inst, kind, prev.seq, counter, prev.ts_ms, ts, missing, time.time_ns() // 1000))
                prev.seq = counter
                prev.ts_ms = row[I_TS]
            else:
                self._late(inst, counter, step or 1)

    def check_table(self, trades: pa.Table) -> None:
        """``check`` for a whole bronze/trades table in arrival order, vectorised: the running maximum per
        instrument decides what advances; only gaps and late trades (rare) are handled one by one, in order."""
        if trades.num_rows == 0:
            return
        df = pl.from_arrow(trades.select(["instrument", "trade_id", "seq", "trade_count", "exchange_ts"]))
        assert isinstance(df, pl.DataFrame)
        if self.venue == "deribit":
            counter, step, kind = pl.col("seq"), pl.lit(1, pl.Int64), "seq"
        else:
            digits = pl.col("trade_id").str.contains(OKX_COUNTER_PATTERN)
            counter = pl.when(digits).then(pl.col("trade_id").cast(pl.Int64, strict=False))
            step, kind = pl.col("trade_count"), "trade_id"
        df = df.select(
            inst=pl.col("instrument"), c=counter, step=step, ts=pl.col("exchange_ts").dt.epoch("ms")
        ).with_row_index("i").filter(pl.col("c").is_not_null())
        names = df["inst"].unique().to_list()
        known = [n for n in names if n in self.last]
        before = pl.DataFrame(
            {"inst": known, "c0": [self.last[n].seq for n in known], "ts0": [self.last[n].ts_ms for n in known]},
            schema={"inst": pl.String, "c0": pl.Int64, "ts0": pl.Int64},
        )
        df = df.join(before, on="inst", how="left").sort("i")
        prev = pl.max_horizontal(pl.col("c").cum_max().shift(1).over("inst"), pl.col("c0"))
        df = df.with_columns(prev=prev).with_columns(adv=pl.col("prev").is_null() | (pl.col("c") > pl.col("prev")))
        prev_ts = pl.when(pl.col("adv")).then(pl.col("ts")).shift(1).forward_fill().over("inst").fill_null(pl.col("ts0"))
        df = df.with_columns(
            prev_ts=prev_ts,
            gap=pl.col("adv") & pl.col("prev").is_not_null() & (pl.col("c") - pl.col("prev") > pl.col("step")),
        )
        events = df.filter(pl.col("gap") | ~pl.col("adv")).select("inst", "c", "step", "prev", "ts", "prev_ts", "gap")
        for inst, c, step, prev_c, ts, from_ts, is_gap in events.iter_rows():
            if is_gap:
                self.pending.append(_Pending(inst, kind, prev_c, c, from_ts, ts, c - prev_c - step, time.time_ns() // 1000))
            else:
                self._late(inst, c, step or 1)
        ends = df.filter(pl.col("adv")).group_by("inst").agg(pl.col("c").last(), pl.col("ts").last())
        for inst, c, ts in ends.iter_rows():
            kept = self.last.get(inst)
            if kept is None:
                self.last[inst] = _Last(c, ts)
            else:
                kept.seq, kept.ts_ms = c, ts

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
