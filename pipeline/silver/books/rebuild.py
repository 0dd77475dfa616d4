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
    df = deltas.select(
        pl.col("venue", "instrument", "channel"), pl.col("session").fill_null(""),
        "exchange_ts", "receive_ts", "source", "seq", "prev_seq", "is_snapshot", "side", "price", "size",
    ).with_row_index("__row")  # fmt: skip
    groups = pl.concat([df.select(CHAIN), states.select(CHAIN)]).unique().sort(CHAIN).with_row_index("g")
    n_grp = groups.height
    df = df.join(groups, on=CHAIN, how="left").sort("g", "exchange_ts", "seq", "receive_ts", "__row", nulls_last=False)
    msg_key = pl.struct("g", "exchange_ts", "seq", "prev_seq", "receive_ts", "is_snapshot", "source")
    df = df.with_columns(__msg=msg_key.rle_id().cast(pl.Int64) if df.height else pl.lit(0, pl.Int64))
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
    )
    px = (
        pl.concat([df.select("g", "price").drop_nulls(), st_levels.select("g", "price")])
        .unique()
        .sort("g", "price")
        .with_columns(pidx=pl.int_range(pl.len()).over("g").cast(pl.Int64))
    )
    per_group = px.group_by("g").len()
    counts = np.zeros(n_grp, np.int64)
    counts[per_group["g"].to_numpy()] = per_group["len"].to_numpy()
    grp_px_lo = np.zeros(n_grp + 1, np.int64)
    np.cumsum(counts, out=grp_px_lo[1:])
    prices = px["price"].to_numpy().astype(np.float64)
    df = df.join(px, on=["g", "price"], how="left").sort("__msg", "__row")
    st_levels = st_levels.join(px, on=["g", "price"], how="left").sort("g")

    msgs = df.filter(pl.col("__msg").is_first_distinct()).select(
        "g", "__msg", *CHAIN, "exchange_ts", "receive_ts", "source", "seq", "prev_seq", "is_snapshot"
    )
    rows_per_msg = df.group_by("__msg").len().sort("__msg")["len"].to_numpy()
    msg_row_lo = np.zeros(msgs.height + 1, np.int64)
    np.cumsum(rows_per_msg, out=msg_row_lo[1:])
    per_grp_msgs = np.bincount(msgs["g"].to_numpy(), minlength=n_grp) if msgs.height else np.zeros(n_grp, np.int64)
    grp_msg_lo = np.zeros(n_grp + 1, np.int64)
    np.cumsum(per_grp_msgs, out=grp_msg_lo[1:])

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

    ts_us = msgs["exchange_ts"].dt.epoch("us").to_numpy()
    side_codes = df["side"].replace_strict({"bid": 0, "ask": 1}, default=2, return_dtype=pl.Int8)
    init_lv_lo = np.zeros(n_grp + 1, np.int64)
    if st_levels.height:
        lv_counts = np.bincount(st_levels["g"].to_numpy(), minlength=n_grp)
        np.cumsum(lv_counts, out=init_lv_lo[1:])
    init = groups.join(st.drop(CHAIN), on="g", how="left").sort("g")
    out = kernel.replay(
        ts_us.astype(np.int64),
        msgs["seq"].fill_null(0).to_numpy().astype(np.int64),
        msgs["seq"].is_not_null().to_numpy(),
        msgs["prev_seq"].fill_null(_INT_NONE).to_numpy().astype(np.int64),
        msgs["is_snapshot"].fill_null(False).to_numpy(),
        (msgs["source"] == "rest").fill_null(False).to_numpy(),
        msgs["gap_id"].is_not_null().to_numpy(),
        msg_row_lo,
        side_codes.to_numpy(),
        df["pidx"].fill_null(0).to_numpy().astype(np.int64),
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
        st_levels["pidx"].to_numpy().astype(np.int64),
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
        levels=pl.Series(rows_per_msg).cast(pl.Int64),
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
