"""Candles of the simulated market: 1-minute rows, and bars of any length built from them.

Minutes before ``t0`` come from the synthetic 1-minute path of the instrument's base; minutes from ``t0`` on
are the aggregation of the stored trades, so REST candles and REST trades agree. The synthetic path ends
exactly at the index price at ``t0`` where the trades begin.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from pipeline.simulator.history import MINUTE_MS, synthetic_volume_base
from pipeline.simulator.instrument_state import MEAN_NOTIONAL_USD, InstState
from pipeline.simulator.records import SimInstrument

# (open_ts, o, h, l, c, vol, vol_ccy, vol_ccy_quote, confirmed)
Bar = tuple[int, float, float, float, float, float, float, float, bool]


class MarketTimes(Protocol):
    """The market's clock as candles see it (``Market`` is one)."""

    @property
    def seed(self) -> int: ...
    @property
    def t0_ms(self) -> int: ...  # first trade-built minute
    @property
    def history_start_ms(self) -> int: ...  # first synthetic minute
    @property
    def now_ms(self) -> int: ...


def open_at(times: MarketTimes, st: InstState, ts_ms: int) -> float:
    """Open of the 1-minute candle containing ``ts_ms`` (OKX ``sodUtc0``/``sodUtc8``)."""
    m = (ts_ms // MINUTE_MS) * MINUTE_MS
    rows = minute_rows(times, st, m, m)
    return float(rows["o"][0]) if len(rows["o"]) else st.inst.initial_price


def bars(times: MarketTimes, st: InstState, bar_ms: int, start_ms: int, end_ms: int, offset_ms: int = 0) -> list[Bar]:
    """Bars whose open time is in [start_ms, end_ms], oldest first:
    ``(open_ts, o, h, l, c, vol, vol_ccy, vol_ccy_quote, confirmed)``. Bars are aligned to
    ``offset_ms`` modulo ``bar_ms`` (OKX 6H..1D bars are UTC+8 aligned: offset -8 h). Options: none."""
    if st.inst.market == "option" or bar_ms < MINUTE_MS or bar_ms % MINUTE_MS:
        return []
    first_bar = -((offset_ms - start_ms) // bar_ms) * bar_ms + offset_ms  # ceil to the grid
    last_bar = ((end_ms - offset_ms) // bar_ms) * bar_ms + offset_ms
    if last_bar < first_bar:
        return []
    rows = minute_rows(times, st, first_bar, last_bar + bar_ms - MINUTE_MS)
    if not len(rows["ts"]):
        return []
    bar = (rows["ts"] - offset_ms) // bar_ms * bar_ms + offset_ms
    if bar_ms == MINUTE_MS:
        opens, highs, lows, closes, vol, vccy, vq = (
            rows["o"],
            rows["h"],
            rows["l"],
            rows["c"],
            rows["vol"],
            rows["vccy"],
            rows["vq"],
        )
        starts = bar
    else:
        cut = np.flatnonzero(np.diff(bar)) + 1
        idx = np.concatenate(([0], cut))
        ends = np.concatenate((cut, [len(bar)])) - 1
        starts = bar[idx]
        opens, closes = rows["o"][idx], rows["c"][ends]
        highs, lows = np.maximum.reduceat(rows["h"], idx), np.minimum.reduceat(rows["l"], idx)
        vol, vccy, vq = (np.add.reduceat(rows[k], idx) for k in ("vol", "vccy", "vq"))
    confirmed = (starts + bar_ms) <= times.now_ms
    return list(
        zip(
            starts.tolist(),
            opens.tolist(),
            highs.tolist(),
            lows.tolist(),
            closes.tolist(),
            vol.tolist(),
            vccy.tolist(),
            vq.tolist(),
            confirmed.tolist(),
            strict=True,
        )
    )


def minute_rows(times: MarketTimes, st: InstState, first_ms: int, last_ms: int) -> dict[str, np.ndarray]:
    """1-minute rows (ts, o, h, l, c, vol, vccy, vq) for minutes first..last that exist (listing..now)."""
    first = max((first_ms // MINUTE_MS) * MINUTE_MS, times.history_start_ms)
    last = min((last_ms // MINUTE_MS) * MINUTE_MS, (times.now_ms // MINUTE_MS) * MINUTE_MS)
    parts = []
    if first < times.t0_ms and first <= last:
        parts.append(_synthetic(times, st, first, min(last, times.t0_ms - MINUTE_MS)))
    if last >= times.t0_ms and first <= last:
        parts.append(_from_trades(st, max(first, times.t0_ms), last))
    if not parts:
        e = np.empty(0)
        return {"ts": e.astype(np.int64), "o": e, "h": e, "l": e, "c": e, "vol": e, "vccy": e, "vq": e}
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _synthetic(times: MarketTimes, st: InstState, first: int, last: int) -> dict[str, np.ndarray]:
    inst = st.inst
    a, b = (first - times.t0_ms) // MINUTE_MS, (last - times.t0_ms) // MINUTE_MS
    lo_, lc, lh, ll = st.path.minutes(a, b)
    mult = 1.0 + st.basis
    tick = inst.tick_size

    def rnd(x: np.ndarray) -> np.ndarray:
        return np.round(np.maximum(np.round(np.exp(x) * mult / tick), 1.0) * tick, st.px_dec)

    o, c, h, low = rnd(lo_), rnd(lc), rnd(lh), rnd(ll)
    per_min_base = st.rate * 60.0 * MEAN_NOTIONAL_USD * 2.05 / inst.initial_price
    base_vol = synthetic_volume_base(times.seed, st.key, a, b, per_min_base)
    vol, vccy, vq = _candle_volumes(inst, base_vol, c, st.sz_dec)
    ts = times.t0_ms + np.arange(a, b + 1, dtype=np.int64) * MINUTE_MS
    return {"ts": ts, "o": o, "h": h, "l": low, "c": c, "vol": vol, "vccy": vccy, "vq": vq}


def _from_trades(st: InstState, first: int, last: int) -> dict[str, np.ndarray]:
    n = (last - first) // MINUTE_MS + 1
    edges = first + np.arange(n + 1, dtype=np.int64) * MINUTE_MS
    ts_col = st.store.col("ts")
    cut = np.searchsorted(ts_col, edges, "left")
    lo, hi = int(cut[0]), int(cut[-1])
    px, sz = st.store.col("px")[lo:hi], st.store.col("sz")[lo:hi]
    seg = cut - lo
    filled = seg[1:] > seg[:-1]
    prev_close = float(st.store.col("px")[lo - 1]) if lo > 0 else st.inst.initial_price
    c = np.empty(n)
    o, h, low = np.empty(n), np.empty(n), np.empty(n)
    vol, notional = np.zeros(n), np.zeros(n)
    if filled.any():
        starts = seg[:-1][filled]
        ends = seg[1:][filled] - 1
        o[filled], c[filled] = px[starts], px[ends]
        h[filled], low[filled] = np.maximum.reduceat(px, starts), np.minimum.reduceat(px, starts)
        vol[filled] = np.add.reduceat(sz, starts)
        notional[filled] = np.add.reduceat(px * sz, starts)
    # empty minutes repeat the previous close with zero volume (as OKX does)
    last_idx = np.where(filled, np.arange(n), -1)
    last_idx = np.maximum.accumulate(last_idx)
    carry = np.where(last_idx >= 0, c[np.maximum(last_idx, 0)], prev_close)
    empty = ~filled
    o[empty] = h[empty] = low[empty] = c[empty] = carry[empty]
    vol, vccy, vq = _trade_volumes(st.inst, vol, notional, st.sz_dec)
    return {"ts": edges[:-1], "o": o, "h": h, "l": low, "c": c, "vol": vol, "vccy": vccy, "vq": vq}


def ccy_volume(inst: SimInstrument, px: np.ndarray, sz: np.ndarray) -> np.ndarray:
    """OKX ``volCcy`` units per trade: spot -> quote, swap -> base; Deribit perp -> ETH; options -> ETH."""
    if inst.market == "spot":
        return px * sz
    if inst.venue == "deribit" and inst.market == "swap":
        return sz / px
    return sz * (inst.contract_value or 1.0)


def _candle_volumes(
    inst: SimInstrument, base_vol: np.ndarray, close: np.ndarray, sz_dec: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vol, volCcy, volCcyQuote) of synthetic minutes from a base-currency volume."""
    if inst.market == "spot":
        vol = np.round(base_vol, sz_dec)
        return vol, vol * close, vol * close
    if inst.venue == "deribit":
        usd = np.round(base_vol * close / 10.0) * 10.0
        return usd, usd / close, usd
    cv = inst.contract_value or 1.0
    contracts = np.round(base_vol / cv / inst.lot_size) * inst.lot_size
    contracts = np.round(contracts, sz_dec)
    return contracts, contracts * cv, contracts * cv * close


def _trade_volumes(
    inst: SimInstrument, vol: np.ndarray, notional: np.ndarray, sz_dec: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vol, volCcy, volCcyQuote) of trade-built minutes from summed size and summed px*size."""
    vol = np.round(vol, sz_dec)
    if inst.market == "spot":
        return vol, notional, notional
    if inst.venue == "deribit":
        return vol, vol * vol / np.maximum(notional, 1e-12), vol  # USD amount -> ETH at the average price
    cv = inst.contract_value or 1.0
    return vol, vol * cv, notional * cv
