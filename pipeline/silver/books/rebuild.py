"""Books rebuilt from ``bronze/book_deltas`` rows: columns in, one compiled pass, columns out.

``rebuild(deltas, states, gaps)`` replays every chain (venue, instrument, channel, session) of a batch in
order of exchange time, then sequence, then arrival (OKX 2022 sent no sequence: arrival order), continuing
each chain from its state of the previous run where there is one (``states``, the silver/book_state rows),
and gives back:
- ``messages``: one row per message (its outcome, segment, the best levels after it: the tape the book
  features are computed from; ``msg_depth`` > 0 adds the top levels per message as arrays);
- ``samples``: the state at every grid instant inside verified segments (``kernel`` says when an instant
  counts as verified);
- ``states``: each chain's end state (the full book while its segment is open), for the next run.
Bronze's own ``kind = book`` gaps end a segment at the message they name (the checksum is verified where
the strings were still at hand; silver only has floats), and silver finds chain breaks and crossed books
itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import polars as pl
import pyarrow as pa

from pipeline.silver.books import kernel

CHAIN = ["venue", "instrument", "channel", "session"]
_INT_NONE = np.iinfo(np.int64).min  # a missing prev_seq never equals a sequence number
TS_US = pl.Datetime("us", "UTC")
LIST = pl.List(pl.Float64)

_STATE_COLUMNS: dict[str, pl.DataType] = {
    "venue": pl.String(), "instrument": pl.String(), "channel": pl.String(), "session": pl.String(),
    "valid": pl.Boolean(),  # a segment is open: the book below is the venue's
    "segment_no": pl.Int64(),  # segments started in this session so far
    "first_ts": TS_US,  # the session's first message (a late message inside it replays it from there)
    "last_ts": TS_US,  # the last message applied (exchange time)
    "last_seq": pl.Int64(),
    "position_ts": TS_US,  # the last message seen, applied or not: (exchange ts, seq, receive ts)
    "position_seq": pl.Int64(),
    "position_receive_ts": TS_US,
    "rest_floor": pl.Int64(),  # REST snapshot seq while no update applied after it
    "bid_px": LIST, "bid_sz": LIST, "ask_px": LIST, "ask_sz": LIST,  # the full book, best first
}  # fmt: skip
STATE_SCHEMA = pl.Schema(_STATE_COLUMNS)

_GAP_DETAIL = re.compile(r"^(?P<kind>\w+): (?P<channel>\S+) session (?P<session>\S+): ")


@dataclass
class Replay:
    messages: pl.DataFrame
    samples: pl.DataFrame
    states: pl.DataFrame
    level_updates: int = 0
    top: dict[str, np.ndarray] = field(default_factory=dict)  # msg_depth > 0: bid_px, bid_sz, ask_px, ask_sz


def empty_states() -> pl.DataFrame:
    return pl.DataFrame(schema=STATE_SCHEMA)


def forced_breaks(gaps: pl.DataFrame | None) -> pl.DataFrame:
    """bronze/gaps rows of kind ``book`` as (session, to_ts, to_seq, gap_id, gap_kind): the message each names."""
    schema: dict[str, pl.DataType] = {
        "session": pl.String(),
        "to_ts": TS_US,
        "to_seq": pl.Int64(),
        "gap_id": pl.String(),
        "gap_kind": pl.String(),
    }
    if gaps is None or gaps.height == 0:
        return pl.DataFrame(schema=schema)
    parsed = gaps.filter(pl.col("kind") == "book").with_columns(
        pl.col("detail").str.extract_groups(_GAP_DETAIL.pattern).alias("__d")
    )
    return parsed.select(
        session=pl.col("__d").struct.field("session"),
        to_ts="to_ts",
        to_seq="to_seq",
        gap_id="gap_id",
        gap_kind=pl.col("__d").struct.field("kind"),
    ).filter(pl.col("session").is_not_null())


def _list_column(values: np.ndarray) -> pa.Array:
    """A 2-D array padded with NaN -> a list column of each row's leading values."""
    ok = ~np.isnan(values)
    counts = ok.sum(axis=1)
    offsets = np.zeros(len(values) + 1, np.int32)
    np.cumsum(counts, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values[ok], pa.float64()))


def _in_order(df: pl.DataFrame) -> bool:
    """Whether the rows are already in replay order (chain, exchange ts, seq with nulls first, receive ts)."""
    if df.height < 2:
        return True
    g = df["g"].to_numpy()
    ts = df["exchange_ts"].dt.epoch("us").to_numpy()
    seq = df["seq"].fill_null(_INT_NONE).to_numpy()
    rcv = df["receive_ts"].dt.epoch("us").fill_null(0).to_numpy()
    a, b = slice(None, -1), slice(1, None)
    ok = (g[b] > g[a]) | (
        (g[b] == g[a])
        & ((ts[b] > ts[a]) | ((ts[b] == ts[a]) & ((seq[b] > seq[a]) | ((seq[b] == seq[a]) & (rcv[b] >= rcv[a])))))
    )
    return bool(ok.all())


def _message_starts(*keys: np.ndarray) -> np.ndarray:
    """Row indices where a message starts: any message field differs from the row before (rows sorted)."""
    n = len(keys[0])
    if n == 0:
        return np.zeros(0, np.int64)
    new = np.zeros(n, np.bool_)
    new[0] = True
    for k in keys:
        new[1:] |= k[1:] != k[:-1]
    return np.flatnonzero(new)


def _price_ranks(
    g: np.ndarray, price: np.ndarray, st_g: np.ndarray, st_price: np.ndarray, n_grp: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(each chain's distinct prices ascending, concatenated; where each chain's start; the rank of every
    row's price among its chain's prices (0 without a price); the same for the state's levels). Rows and
    state levels come grouped by chain, so each chain is one slice: a hash unique, a sort of the few distinct
    prices, and a binary search of every row."""
    lo = np.searchsorted(g, np.arange(n_grp + 1))
    st_lo = np.searchsorted(st_g, np.arange(n_grp + 1))
    ranks, st_ranks = np.zeros(len(g), np.int64), np.zeros(len(st_g), np.int64)
    tables: list[np.ndarray] = []
    grp_px_lo = np.zeros(n_grp + 1, np.int64)
    for k in range(n_grp):
        rows, levels = price[lo[k] : lo[k + 1]], st_price[st_lo[k] : st_lo[k + 1]]
        both = pl.Series(np.concatenate([rows, levels]), dtype=pl.Float64)
        uniq = both.filter(both.is_not_nan()).unique().sort().to_numpy()
        ranks[lo[k] : lo[k + 1]] = np.searchsorted(uniq, rows)
        st_ranks[st_lo[k] : st_lo[k + 1]] = np.searchsorted(uniq, levels)
        tables.append(uniq)
        grp_px_lo[k + 1] = grp_px_lo[k] + len(uniq)
    ranks[np.isnan(price)] = 0
    prices = np.concatenate(tables) if tables else np.zeros(0)
    return prices.astype(np.float64), grp_px_lo, ranks, st_ranks


def rebuild(
    deltas: pl.DataFrame,
    states: pl.DataFrame | None = None,
    gaps: pl.DataFrame | None = None,
    *,
    interval_ms: int = 1000,
    depth: int = 25,
    msg_depth: int = 0,
) -> Replay:
    """Replay ``deltas`` (bronze/book_deltas rows, any order) from ``states`` (see the module doc).
    ``interval_ms`` 0 takes no samples."""
    states = states if states is not None else empty_states()
    deltas = deltas.with_columns(pl.col("session").fill_null(""))
    # chains: hashed once per run of equal chains (rows come in runs: a message's levels at least)
    run = deltas.select(pl.struct(CHAIN).rle_id())["venue"].to_numpy() if deltas.height else np.zeros(0, np.int64)
    firsts = deltas.select(CHAIN).filter(pl.Series(np.diff(run, prepend=-1) != 0))
    groups = pl.concat([firsts, states.select(CHAIN)]).unique().sort(CHAIN).with_row_index("g")
    n_grp = groups.height
    g_of_run = firsts.join(groups, on=CHAIN, how="left", maintain_order="left")["g"].to_numpy()
    df = deltas.with_columns(g=pl.Series(g_of_run[run] if len(run) else np.zeros(0, np.uint32), dtype=pl.UInt32))
    df = df.rechunk()  # a scan's row groups are chunks: every column is read whole below, copy once
    if not _in_order(df):
        df = df.sort("g", "exchange_ts", "seq", "receive_ts", nulls_last=False, maintain_order=True)
    g_row = df["g"].to_numpy()
    ts_row = df["exchange_ts"].dt.epoch("us").to_numpy()
    seq_row = df["seq"].fill_null(_INT_NONE).to_numpy()
    prev_row = df["prev_seq"].fill_null(_INT_NONE).to_numpy()
    rcv_row = df["receive_ts"].dt.epoch("us").fill_null(0).to_numpy()
    snap_row = df["is_snapshot"].fill_null(False).to_numpy()
    rest_row = (df["source"] == "rest").fill_null(False).to_numpy()
    starts = _message_starts(g_row, ts_row, seq_row, prev_row, rcv_row, snap_row, rest_row)
    n_rows = df.height
    msg_row_lo = np.append(starts, n_rows).astype(np.int64)
    rows_per_msg = np.diff(msg_row_lo)
    msgs = df.select("g", *CHAIN, "exchange_ts", "receive_ts", "source", "seq", "prev_seq", "is_snapshot")[starts]
    msgs = msgs.with_row_index("__msg")
    grp_msg_lo = np.searchsorted(g_row[starts], np.arange(n_grp + 1)).astype(np.int64)

    # price ranks per chain over the batch's and the states' prices
    st = states.join(groups, on=CHAIN, how="left").sort("g")
    st_levels = (
        pl.concat(
            [
                st.select("g", side=pl.lit(kernel.BID, pl.Int8), price="bid_px", size="bid_sz"),
                st.select("g", side=pl.lit(kernel.ASK, pl.Int8), price="ask_px", size="ask_sz"),
            ]
        )
        .explode("price", "size")
        .drop_nulls("price")
        .sort("g", maintain_order=True)  # each chain's levels one slice
    )
    price_row = df["price"].fill_null(np.nan).to_numpy()
    st_g = st_levels["g"].to_numpy().astype(np.int64)
    st_price = st_levels["price"].to_numpy().astype(np.float64)
    prices, grp_px_lo, pidx_row, st_pidx = _price_ranks(g_row.astype(np.int64), price_row, st_g, st_price, n_grp)

    brk = forced_breaks(gaps)
    if brk.height and msgs.height:
        hit = (
            msgs.select("__msg", "session", "exchange_ts", "seq")
            .join(brk, left_on=["session", "exchange_ts"], right_on=["session", "to_ts"], how="inner")
            .filter(pl.col("to_seq").is_null() | (pl.col("seq") == pl.col("to_seq")))
            .sort("__msg")
            .unique("gap_id", keep="first")
            .unique("__msg", keep="first")
            .select("__msg", "gap_id", "gap_kind")
        )
        msgs = msgs.join(hit, on="__msg", how="left").sort("__msg")
    else:
        msgs = msgs.with_columns(gap_id=pl.lit(None, pl.String), gap_kind=pl.lit(None, pl.String))

    side = df["side"]
    side_codes = np.where(side.is_null().to_numpy(), 2, (side == "ask").fill_null(False).to_numpy()).astype(np.int8)
    init_lv_lo = np.zeros(n_grp + 1, np.int64)
    if st_levels.height:
        np.cumsum(np.bincount(st_g, minlength=n_grp), out=init_lv_lo[1:])
    init = groups.join(st.drop(CHAIN), on="g", how="left").sort("g")
    out = kernel.replay(
        ts_row[starts].astype(np.int64),
        np.where(seq_row[starts] == _INT_NONE, 0, seq_row[starts]).astype(np.int64),
        seq_row[starts] != _INT_NONE,
        prev_row[starts].astype(np.int64),
        snap_row[starts],
        rest_row[starts],
        msgs["gap_id"].is_not_null().to_numpy(),
        msg_row_lo,
        side_codes,
        pidx_row,
        df["size"].fill_null(0.0).to_numpy().astype(np.float64),
        grp_msg_lo,
        grp_px_lo,
        prices,
        init["valid"].fill_null(False).to_numpy(),
        init["last_seq"].fill_null(0).to_numpy().astype(np.int64),
        init["last_seq"].is_not_null().to_numpy(),
        init["last_ts"].dt.epoch("us").fill_null(0).to_numpy().astype(np.int64),
        init["rest_floor"].fill_null(-1).to_numpy().astype(np.int64),
        init["segment_no"].fill_null(0).to_numpy().astype(np.int64),
        init_lv_lo,
        st_levels["side"].to_numpy().astype(np.int8),
        st_pidx,
        st_levels["size"].to_numpy().astype(np.float64),
        int(interval_ms) * 1000,
        int(depth),
        int(msg_depth),
    )
    (status, seg_of, best, m_bpx, m_bsz, m_apx, m_asz, s_grp, s_t, s_last_ts, s_last_seq, s_has_seq, s_seg,
     s_bpx, s_bsz, s_apx, s_asz, e_valid, e_seq, e_has_seq, e_ts, e_floor, e_seg, e_lv_lo, e_side, e_pidx,
     e_size) = out  # fmt: skip

    messages = msgs.drop("__msg").with_columns(
        status=pl.Series(status).cast(pl.Int8),
        segment_no=pl.Series(seg_of),
        best_bid_px=pl.Series(best[:, 0]).fill_nan(None),
        best_bid_sz=pl.Series(best[:, 1]).fill_nan(None),
        best_ask_px=pl.Series(best[:, 2]).fill_nan(None),
        best_ask_sz=pl.Series(best[:, 3]).fill_nan(None),
        levels=pl.Series(rows_per_msg, dtype=pl.Int64),
    )
    samples = _samples(groups, s_grp, s_t, s_last_ts, s_last_seq, s_has_seq, s_seg, s_bpx, s_bsz, s_apx, s_asz)
    ends = _end_states(
        groups, st, msgs, prices, grp_px_lo, (e_valid, e_seq, e_has_seq, e_ts, e_floor, e_seg), e_lv_lo,
        e_side, e_pidx, e_size,
    )  # fmt: skip
    top = {"bid_px": m_bpx, "bid_sz": m_bsz, "ask_px": m_apx, "ask_sz": m_asz} if msg_depth > 0 else {}
    updates = int(df.filter(pl.col("side").is_not_null()).height)
    return Replay(messages, samples, ends, updates, top)


def _samples(groups: pl.DataFrame, *arrays: np.ndarray) -> pl.DataFrame:
    s_grp, s_t, s_last_ts, s_last_seq, s_has_seq, s_seg, s_bpx, s_bsz, s_apx, s_asz = arrays
    keys = groups.select(CHAIN)[s_grp] if len(s_grp) else groups.select(CHAIN).head(0)
    lists = pa.table(
        {
            "bid_px": _list_column(s_bpx),
            "bid_sz": _list_column(s_bsz),
            "ask_px": _list_column(s_apx),
            "ask_sz": _list_column(s_asz),
        }
    )
    return pl.concat(
        [
            keys,
            pl.DataFrame(
                {
                    "ts": pl.Series(s_t, dtype=pl.Int64).cast(TS_US),
                    "segment_no": pl.Series(s_seg, dtype=pl.Int64),
                    "last_ts": pl.Series(s_last_ts, dtype=pl.Int64).cast(TS_US),
                    "last_seq": pl.Series(s_last_seq, dtype=pl.Int64).zip_with(
                        pl.Series(s_has_seq, dtype=pl.Boolean), pl.Series([None] * len(s_t), dtype=pl.Int64)
                    ),
                    "age_ms": pl.Series((s_t - s_last_ts) // 1000, dtype=pl.Int64),
                }
            ),
            cast(pl.DataFrame, pl.from_arrow(lists)),
        ],
        how="horizontal",
    )


def _end_states(
    groups: pl.DataFrame,
    st: pl.DataFrame,
    msgs: pl.DataFrame,
    prices: np.ndarray,
    grp_px_lo: np.ndarray,
    ends: tuple[np.ndarray, ...],
    e_lv_lo: np.ndarray,
    e_side: np.ndarray,
    e_pidx: np.ndarray,
    e_size: np.ndarray,
) -> pl.DataFrame:
    e_valid, e_seq, e_has_seq, e_ts, e_floor, e_seg = ends
    g_of = np.repeat(np.arange(groups.height), np.diff(e_lv_lo))
    levels = pl.DataFrame(
        {"g": g_of, "side": e_side, "price": prices[grp_px_lo[g_of] + e_pidx], "size": e_size},
        schema={"g": pl.UInt32, "side": pl.Int8, "price": pl.Float64, "size": pl.Float64},
    )
    bids = (
        levels.filter(pl.col("side") == kernel.BID)
        .sort("g", "price", descending=[False, True])
        .group_by("g", maintain_order=True)
        .agg(bid_px="price", bid_sz="size")
    )
    asks = (
        levels.filter(pl.col("side") == kernel.ASK)
        .sort("g", "price")
        .group_by("g", maintain_order=True)
        .agg(ask_px="price", ask_sz="size")
    )
    last = (
        msgs.group_by("g")
        .agg(
            first_ts=pl.col("exchange_ts").min(),
            position_ts=pl.col("exchange_ts").last(),
            position_seq=pl.col("seq").last(),
            position_receive_ts=pl.col("receive_ts").last(),
        )
        .with_columns(pl.col("g").cast(pl.UInt32))
    )
    old = st.select(
        pl.col("g").cast(pl.UInt32), old_first="first_ts", old_pos_ts="position_ts", old_pos_seq="position_seq",
        old_pos_rcv="position_receive_ts",
    )  # fmt: skip
    valid = pl.Series(e_valid)
    out = (
        groups.with_columns(
            valid=valid,
            segment_no=pl.Series(e_seg, dtype=pl.Int64),
            last_ts=pl.Series(e_ts, dtype=pl.Int64).cast(TS_US),
            last_seq=pl.Series(e_seq, dtype=pl.Int64).zip_with(
                pl.Series(e_has_seq), pl.Series([None] * len(e_seq), dtype=pl.Int64)
            ),
            rest_floor=pl.Series(e_floor, dtype=pl.Int64).zip_with(
                pl.Series(e_floor >= 0), pl.Series([None] * len(e_floor), dtype=pl.Int64)
            ),
        )
        .join(last, on="g", how="left")
        .join(old, on="g", how="left")
        .join(bids, on="g", how="left")
        .join(asks, on="g", how="left")
        .sort("g")
        .with_columns(
            first_ts=pl.min_horizontal("first_ts", "old_first"),
            position_ts=pl.coalesce("position_ts", "old_pos_ts"),
            position_seq=pl.when(pl.col("position_ts").is_not_null()).then("position_seq").otherwise("old_pos_seq"),
            position_receive_ts=pl.coalesce("position_receive_ts", "old_pos_rcv"),
            bid_px=pl.col("bid_px").fill_null([]),
            bid_sz=pl.col("bid_sz").fill_null([]),
            ask_px=pl.col("ask_px").fill_null([]),
            ask_sz=pl.col("ask_sz").fill_null([]),
        )
    )
    return out.select(STATE_SCHEMA.names()).cast(STATE_SCHEMA)
