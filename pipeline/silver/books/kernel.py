"""The compiled book replay: every message of many chains in one loop over flat arrays (numba).

A book side is a dense array of sizes indexed by the rank of the price among the prices its chain ever
shows (``prices[grp_px_lo[g]:grp_px_lo[g + 1]]``, ascending), so applying a level is one store, the best
level moves by a short scan when it is deleted, and the top N is read by walking from the best. Chains are
independent: the loop resets the arrays between them.

Rules (the verifier's, ``pipeline.ingest.book_chain``, on messages sorted by exchange time then seq):
- a snapshot starts a new segment (ending the open one) from an empty book;
- an update applies while a segment is open: its ``prev`` must equal the last applied ``seq`` where the
  chain carries sequence numbers; after a REST snapshot (seq S) updates with seq <= S are skipped and the
  first applied one needs prev <= S < seq;
- a break (chain, a crossed book after applying, a break bronze recorded at that message) ends the
  segment; messages are ignored until the next snapshot.

Samples: the grid instants t = k * interval. The state after the last message at or before t is emitted
once a later message of the same segment applies cleanly (at exchange time > t): the chain proved that no
message is missing up to it. Instants between the last good message and a break are never sampled.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _plain(*args: Any, **kwargs: Any) -> Any:
    """Stands in for ``numba.njit`` where numba is missing: the same code, run by Python (slow, same results)."""
    if args and callable(args[0]):
        return args[0]
    return lambda f: f


try:  # numba compiles the loop
    from numba import njit as _njit

    njit: Any = _njit
except ImportError:  # pragma: no cover - numba is a declared dependency
    njit = _plain


# Message outcomes (``status``).
APPLIED, STARTED, IGNORED, BROKE_CHAIN, BROKE_CROSSED, BROKE_GAP, BROKE_REST, SKIPPED_REST = 0, 1, 2, 3, 4, 5, 6, 7
STATUS_NAMES = ("applied", "started", "ignored", "chain", "crossed", "gap", "rest_chain", "before_rest_snapshot")
BID, ASK = 0, 1


@njit(cache=True, nogil=True)
def _top(sizes, best, step, limit, prices, px_lo, depth, out_px, out_sz, row):
    """Copy the best ``depth`` levels from ``best`` walking by ``step`` into row ``row`` of the outputs."""
    n = 0
    i = best
    while n < depth and 0 <= i < limit:
        if sizes[i] > 0.0:
            out_px[row, n] = prices[px_lo + i]
            out_sz[row, n] = sizes[i]
            n += 1
        i += step
    return n


@njit(cache=True, nogil=True)
def _grow2(a, n):
    out = np.full((max(2 * a.shape[0], n), a.shape[1]), np.nan, a.dtype)
    out[: a.shape[0]] = a
    return out


@njit(cache=True, nogil=True)
def _grow1(a, n):
    out = np.zeros(max(2 * a.shape[0], n), a.dtype)
    out[: a.shape[0]] = a
    return out


@njit(cache=True, nogil=True)
def replay(  # noqa: PLR0913, PLR0915, C901
    msg_ts, msg_seq, msg_has_seq, msg_prev, msg_snap, msg_rest, msg_forced, msg_row_lo,
    row_side, row_pidx, row_size,
    grp_msg_lo, grp_px_lo, prices,
    init_valid, init_seq, init_has_seq, init_ts, init_floor, init_seg, init_lv_lo, init_side, init_pidx, init_size,
    interval_us, depth, msg_depth,
):  # fmt: skip
    n_msg = msg_ts.shape[0]
    n_grp = grp_msg_lo.shape[0] - 1
    max_p = 1
    for g in range(n_grp):
        max_p = max(max_p, grp_px_lo[g + 1] - grp_px_lo[g])
    bid = np.zeros(max_p)
    ask = np.zeros(max_p)
    status = np.full(n_msg, IGNORED, np.int8)
    seg_of = np.full(n_msg, -1, np.int64)
    best = np.full((n_msg, 4), np.nan)  # bid px, bid sz, ask px, ask sz after each applied message
    m_bpx = np.full((n_msg if msg_depth > 0 else 0, max(msg_depth, 1)), np.nan)
    m_bsz = np.full_like(m_bpx, np.nan)
    m_apx = np.full_like(m_bpx, np.nan)
    m_asz = np.full_like(m_bpx, np.nan)
    # samples, grown on demand
    cap = 1024
    s_grp = np.zeros(cap, np.int64)
    s_t = np.zeros(cap, np.int64)
    s_last_ts = np.zeros(cap, np.int64)
    s_last_seq = np.zeros(cap, np.int64)
    s_has_seq = np.zeros(cap, np.bool_)
    s_seg = np.zeros(cap, np.int64)
    s_bpx = np.full((cap, depth), np.nan)
    s_bsz = np.full((cap, depth), np.nan)
    s_apx = np.full((cap, depth), np.nan)
    s_asz = np.full((cap, depth), np.nan)
    n_s = 0
    tmp_bpx = np.full((1, depth), np.nan)
    tmp_bsz = np.full((1, depth), np.nan)
    tmp_apx = np.full((1, depth), np.nan)
    tmp_asz = np.full((1, depth), np.nan)
    # end state per group
    e_valid = np.zeros(n_grp, np.bool_)
    e_seq = np.zeros(n_grp, np.int64)
    e_has_seq = np.zeros(n_grp, np.bool_)
    e_ts = np.zeros(n_grp, np.int64)
    e_floor = np.full(n_grp, -1, np.int64)
    e_seg = np.zeros(n_grp, np.int64)
    e_lv_lo = np.zeros(n_grp + 1, np.int64)
    lv_cap = 1024
    e_side = np.zeros(lv_cap, np.int8)
    e_pidx = np.zeros(lv_cap, np.int64)
    e_size = np.zeros(lv_cap)
    n_lv = 0

    for g in range(n_grp):
        px_lo = grp_px_lo[g]
        n_p = grp_px_lo[g + 1] - px_lo
        bid[:n_p] = 0.0
        ask[:n_p] = 0.0
        best_b = -1
        best_a = n_p  # none
        valid = init_valid[g]
        last_seq = init_seq[g]
        has_seq = init_has_seq[g]
        last_ts = init_ts[g]
        floor = init_floor[g]  # REST snapshot seq while no update has applied after it (-1: none)
        seg = init_seg[g]
        for k in range(init_lv_lo[g], init_lv_lo[g + 1]):
            i = init_pidx[k]
            if init_side[k] == BID:
                bid[i] = init_size[k]
                best_b = max(best_b, i)
            else:
                ask[i] = init_size[k]
                best_a = min(best_a, i)
        for m in range(grp_msg_lo[g], grp_msg_lo[g + 1]):
            ts = msg_ts[m]
            pending = 0  # grid instants this message confirms, sampled before applying it
            if msg_snap[m]:
                bid[:n_p] = 0.0
                ask[:n_p] = 0.0
                best_b = -1
                best_a = n_p
                seg += 1
                valid = True
                floor = msg_seq[m] if (msg_rest[m] and msg_has_seq[m]) else -1
                status[m] = STARTED
            elif not valid:
                continue
            else:
                if floor >= 0:
                    if msg_has_seq[m] and msg_seq[m] <= floor:
                        status[m] = SKIPPED_REST
                        seg_of[m] = seg
                        continue
                    if not (msg_has_seq[m] and msg_prev[m] <= floor < msg_seq[m]):
                        status[m] = BROKE_REST
                        seg_of[m] = seg
                        valid = False
                        continue
                    floor = -1
                elif has_seq and msg_prev[m] != last_seq:
                    status[m] = BROKE_CHAIN
                    seg_of[m] = seg
                    valid = False
                    continue
                status[m] = APPLIED
                if interval_us > 0:
                    first = -((-last_ts) // interval_us) * interval_us  # ceil to the grid
                    if first < ts:
                        pending = (ts - 1 - first) // interval_us + 1
                        tmp_bpx[0, :] = np.nan
                        tmp_bsz[0, :] = np.nan
                        tmp_apx[0, :] = np.nan
                        tmp_asz[0, :] = np.nan
                        _top(bid, best_b, -1, n_p, prices, px_lo, depth, tmp_bpx, tmp_bsz, 0)
                        _top(ask, best_a, 1, n_p, prices, px_lo, depth, tmp_apx, tmp_asz, 0)
            seg_of[m] = seg
            for r in range(msg_row_lo[m], msg_row_lo[m + 1]):
                side = row_side[r]
                i = row_pidx[r]
                size = row_size[r]
                if side == BID:
                    if size > 0.0:
                        bid[i] = size
                        if i > best_b:
                            best_b = i
                    elif bid[i] > 0.0:
                        bid[i] = 0.0
                        if i == best_b:
                            j = i - 1
                            while j >= 0 and bid[j] == 0.0:
                                j -= 1
                            best_b = j
                elif side == ASK:
                    if size > 0.0:
                        ask[i] = size
                        if i < best_a:
                            best_a = i
                    elif ask[i] > 0.0:
                        ask[i] = 0.0
                        if i == best_a:
                            j = i + 1
                            while j < n_p and ask[j] == 0.0:
                                j += 1
                            best_a = j
            if best_b >= 0 and best_a < n_p and best_b >= best_a:
                status[m] = BROKE_CROSSED
                valid = False
                continue
            if msg_forced[m]:
                status[m] = BROKE_GAP
                valid = False
                continue
            if pending > 0:
                if n_s + pending > s_t.shape[0]:
                    need = n_s + pending
                    s_grp = _grow1(s_grp, need)
                    s_t = _grow1(s_t, need)
                    s_last_ts = _grow1(s_last_ts, need)
                    s_last_seq = _grow1(s_last_seq, need)
                    s_has_seq = _grow1(s_has_seq, need)
                    s_seg = _grow1(s_seg, need)
                    s_bpx = _grow2(s_bpx, need)
                    s_bsz = _grow2(s_bsz, need)
                    s_apx = _grow2(s_apx, need)
                    s_asz = _grow2(s_asz, need)
                first = -((-last_ts) // interval_us) * interval_us
                for k in range(pending):
                    s_grp[n_s] = g
                    s_t[n_s] = first + k * interval_us
                    s_last_ts[n_s] = last_ts
                    s_last_seq[n_s] = last_seq
                    s_has_seq[n_s] = has_seq
                    s_seg[n_s] = seg
                    s_bpx[n_s] = tmp_bpx[0]
                    s_bsz[n_s] = tmp_bsz[0]
                    s_apx[n_s] = tmp_apx[0]
                    s_asz[n_s] = tmp_asz[0]
                    n_s += 1
            last_ts = ts
            last_seq = msg_seq[m]
            has_seq = msg_has_seq[m]
            if best_b >= 0:
                best[m, 0] = prices[px_lo + best_b]
                best[m, 1] = bid[best_b]
            if best_a < n_p:
                best[m, 2] = prices[px_lo + best_a]
                best[m, 3] = ask[best_a]
            if msg_depth > 0:
                _top(bid, best_b, -1, n_p, prices, px_lo, msg_depth, m_bpx, m_bsz, m)
                _top(ask, best_a, 1, n_p, prices, px_lo, msg_depth, m_apx, m_asz, m)
        e_valid[g] = valid
        e_seq[g] = last_seq
        e_has_seq[g] = has_seq
        e_ts[g] = last_ts
        e_floor[g] = floor
        e_seg[g] = seg
        if valid:
            for i in range(n_p):
                for side in range(2):
                    size = bid[i] if side == BID else ask[i]
                    if size > 0.0:
                        if n_lv >= e_side.shape[0]:
                            e_side = _grow1(e_side, n_lv + 1)
                            e_pidx = _grow1(e_pidx, n_lv + 1)
                            e_size = _grow1(e_size, n_lv + 1)
                        e_side[n_lv] = side
                        e_pidx[n_lv] = i
                        e_size[n_lv] = size
                        n_lv += 1
        e_lv_lo[g + 1] = n_lv
    return (
        status, seg_of, best, m_bpx, m_bsz, m_apx, m_asz,
        s_grp[:n_s], s_t[:n_s], s_last_ts[:n_s], s_last_seq[:n_s], s_has_seq[:n_s], s_seg[:n_s],
        s_bpx[:n_s], s_bsz[:n_s], s_apx[:n_s], s_asz[:n_s],
        e_valid, e_seq, e_has_seq, e_ts, e_floor, e_seg, e_lv_lo, e_side[:n_lv], e_pidx[:n_lv], e_size[:n_lv],
    )  # fmt: skip
