"""silver/book_features equals features recomputed here, with a plain dict book, from the bronze book
messages (issue #16): on a hand-built book with answers worked out by hand, on generated chains with breaks
and a capture imported late, and on the real OKX 2022 ``books`` recording; no minute's time weight spans a
break; any split into commits (with the clock advancing) gives the same table as one run; a second run
writes nothing."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from contracts.silver import SilverBookFeatures
from pipeline.lake import writer
from pipeline.lake.location import Lake, resolve_lake
from pipeline.lake.schemas import BOOK_FIELDS
from pipeline.lake.tables import BRONZE_BOOK_DELTAS, SILVER_BOOK_FEATURES, SILVER_QUARANTINE
from pipeline.silver import files
from pipeline.silver.books.features import best_per_key
from pipeline.silver.books.step import BookSettings, books_pass
from pipeline.silver.handles import Handles
from pipeline.silver.validate import check

MIN_US = 60_000_000
T0 = 1_786_000_020_000  # ms, a minute start
LATE = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
FEATURES = [
    "mid_open", "mid_high", "mid_low", "mid_close", "spread_bps", "imb1_mean", "imb1_last", "imb5_mean",
    "imb5_last", "microprice", "depth10_bid", "depth10_ask", "depth50_bid", "depth50_ask", "ofi", "book_cover",
]  # fmt: skip


def msg(t_ms: int, seq: int, prev: int, snap: bool, bids: Any, asks: Any, **kw: Any) -> tuple[Any, ...]:
    row = {
        "venue": "okx", "market": "spot", "instrument": "X", "channel": "books", "exchange_ts_ms": t_ms,
        "receive_ts_us": t_ms * 1000 + 500, "source": "ws", "session": "s1", "seq": seq, "prev_seq": prev,
        "checksum": None, "is_snapshot": snap,
        "bids": [(p, s, None, None, None) for p, s in bids], "asks": [(p, s, None, None, None) for p, s in asks],
    } | kw  # fmt: skip
    return tuple(row[f] for f in BOOK_FIELDS)


def run(lake: Lake, now: dt.datetime = LATE, max_rows: int | None = None) -> None:
    for _ in range(200):
        done = books_pass(Handles(lake), BookSettings(), run_id="t", now=now, max_rows=max_rows)
        if done is None or not done.more:
            return


def table(lake: Lake) -> pl.DataFrame:
    df = files.scan(lake, Handles(lake).files(SILVER_BOOK_FEATURES)).collect()
    return df.sort("venue", "instrument", "channel", "open_time")


# --- the test's own book and features -------------------------------------------------------------------------
def reference(msgs: list[dict[str, Any]], now_us: int = 2**62) -> pl.DataFrame:
    """Features per (instrument, channel, minute) from messages (dicts: chain, ts_us, seq, prev, snap, bids,
    asks), following the definitions in ``pipeline.silver.books.features``' docstring, one chain at a time."""
    chains: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for m in msgs:
        chains[(m["instrument"], m["channel"], m["session"])].append(m)
    out: list[dict[str, Any]] = []
    for (inst, chan, session), ms in chains.items():
        ms.sort(key=lambda m: (m["ts_us"], -1 if m["seq"] is None else m["seq"], m["rcv_us"]))
        events: list[tuple[int, str, dict[str, float] | None]] = []  # (ts, applied|started|break, values)
        bids: dict[float, float] | None = None
        asks: dict[float, float] = {}
        last_seq = None
        for m in ms:
            if m["snap"]:
                bids, asks, kind = {}, {}, "started"
            elif bids is None:
                continue
            elif m["seq"] is not None and last_seq is not None and m["prev"] != last_seq:
                bids, kind = None, "break"
                events.append((m["ts_us"], kind, None))
                continue
            else:
                kind = "applied"
            for book, levels in ((bids, m["bids"]), (asks, m["asks"])):
                for p, s in levels:
                    if s > 0:
                        book[p] = s
                    else:
                        book.pop(p, None)
            if bids and asks and max(bids) >= min(asks):
                bids = None
                events.append((m["ts_us"], "break", None))
                continue
            last_seq = m["seq"]
            events.append((m["ts_us"], kind, values(bids, asks)))
        out += [dict(instrument=inst, channel=chan, session=session, **r) for r in per_minute(events, now_us)]
    return pl.DataFrame(out)


def values(bids: dict[float, float], asks: dict[float, float]) -> dict[str, float] | None:
    if not bids or not asks:
        return None
    b = sorted(bids.items(), reverse=True)[:25]
    a = sorted(asks.items())[:25]
    (pb, qb), (pa, qa) = b[0], a[0]
    mid = (pb + pa) / 2
    qb5, qa5 = sum(s for _, s in b[:5]), sum(s for _, s in a[:5])
    return {
        "pb": pb, "qb": qb, "pa": pa, "qa": qa, "mid": mid, "spread": (pa - pb) / mid * 1e4,
        "imb1": qb / (qb + qa), "imb5": qb5 / (qb5 + qa5), "micro": (pa * qb + pb * qa) / (qb + qa),
        "d10b": sum(s for p, s in b if p >= mid * (1 - 10e-4)), "d10a": sum(s for p, s in a if p <= mid * (1 + 10e-4)),
        "d50b": sum(s for p, s in b if p >= mid * (1 - 50e-4)), "d50a": sum(s for p, s in a if p <= mid * (1 + 50e-4)),
    }  # fmt: skip


def per_minute(events: list[tuple[int, str, dict[str, float] | None]], now_us: int) -> list[dict[str, Any]]:
    pieces: dict[int, list[tuple[int, dict[str, float]]]] = defaultdict(list)
    for (t, kind, v), (t2, kind2, _) in itertools.pairwise(events):
        if v is None or kind == "break" or kind2 != "applied":
            continue
        a = t
        while a < t2:  # cut at minute boundaries
            minute = a // MIN_US * MIN_US
            b = min(t2, minute + MIN_US)
            pieces[minute].append((b - a, v))
            a = b
    flow: dict[int, list[float]] = defaultdict(lambda: [0.0, 0])
    prev: dict[str, float] | None = None
    for t, kind, v in events:
        minute = t // MIN_US * MIN_US
        if kind in ("applied", "started"):
            flow[minute][1] += 1
            if kind == "applied" and prev is not None and v is not None:
                e = (v["qb"] if v["pb"] >= prev["pb"] else 0) - (prev["qb"] if v["pb"] <= prev["pb"] else 0)
                e += -(v["qa"] if v["pa"] <= prev["pa"] else 0) + (prev["qa"] if v["pa"] >= prev["pa"] else 0)
                flow[minute][0] += e
        prev = v
    rows = []
    for minute, ps in sorted(pieces.items()):
        if minute + MIN_US > now_us:
            continue
        w = sum(d for d, _ in ps)

        def mean(k: str, ps: list[tuple[int, dict[str, float]]] = ps, w: int = w) -> float:
            return sum(d * v[k] for d, v in ps) / w

        mids = [v["mid"] for _, v in ps]
        last = ps[-1][1]
        rows.append(
            {
                "open_time": minute, "mid_open": mids[0], "mid_high": max(mids), "mid_low": min(mids),
                "mid_close": mids[-1], "spread_bps": mean("spread"), "imb1_mean": mean("imb1"),
                "imb1_last": last["imb1"], "imb5_mean": mean("imb5"), "imb5_last": last["imb5"],
                "microprice": last["micro"], "depth10_bid": mean("d10b"), "depth10_ask": mean("d10a"),
                "depth50_bid": mean("d50b"), "depth50_ask": mean("d50a"), "ofi": flow[minute][0],
                "messages": flow[minute][1], "book_cover": w / MIN_US,
            }
        )  # fmt: skip
    return rows


def as_dicts(tuples: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    out = []
    for t in tuples:
        m = dict(zip(BOOK_FIELDS, t, strict=True))
        out.append(
            {
                "instrument": m["instrument"], "channel": m["channel"], "session": m["session"],
                "ts_us": m["exchange_ts_ms"] * 1000, "rcv_us": m["receive_ts_us"], "seq": m["seq"],
                "prev": m["prev_seq"], "snap": m["is_snapshot"],
                "bids": [(float(p), float(s)) for p, s, *_ in m["bids"]],
                "asks": [(float(p), float(s)) for p, s, *_ in m["asks"]],
            }
        )  # fmt: skip
    return out


def assert_matches(got: pl.DataFrame, want: pl.DataFrame) -> None:
    keys = ["instrument", "channel", "open_time"]
    got = got.with_columns(pl.col("open_time").dt.epoch("us")).sort(keys)
    want = want.sort(keys)
    assert got.select(keys).rows() == want.select(keys).rows()
    assert got["messages"].to_list() == want["messages"].to_list()
    for c in FEATURES:
        for g, w in zip(got[c].to_list(), want[c].to_list(), strict=True):
            assert math.isclose(g, w, rel_tol=1e-9, abs_tol=1e-9), (c, g, w)


# --- a hand-built book ----------------------------------------------------------------------------------------
def test_hand_built_book_known_answers(tmp_path: Path) -> None:
    """Minute 0 (from :20): a snapshot, an update at :40 (bid 100 grows 2 -> 3), one at 1:10 confirms it.
    Minute 1: covered 1:00-1:10; the 1:10 book is never confirmed (1:30 breaks the chain): a new snapshot at
    1:45 is confirmed by 1:50 and that by 2:05: covered 1:45-2:00 (and 2:00-2:05 of minute 2). So 25 s of
    minute 1, none across the break."""
    m0 = T0  # the minute
    bids = [(100.0, 2.0), (99.95, 4.0), (99.0, 10.0)]
    asks = [(100.1, 1.0), (100.5, 6.0)]
    lake = resolve_lake(str(tmp_path / "lake"))
    tuples = [
        msg(m0 + 20_000, 1, -1, True, bids, asks),
        msg(m0 + 40_000, 2, 1, False, [(100.0, 3.0)], []),
        msg(m0 + 70_000, 3, 2, False, [], [(100.1, 3.0)]),
        msg(m0 + 90_000, 5, 4, False, [(100.0, 1.0)], []),  # seq 4 never came: a break
        msg(m0 + 105_000, 10, -1, True, [(100.0, 1.0)], [(100.2, 1.0)]),
        msg(m0 + 110_000, 11, 10, False, [(100.0, 3.0)], []),
        msg(m0 + 125_000, 12, 11, False, [(99.9, 5.0)], []),
    ]
    writer.append_rows(lake, BRONZE_BOOK_DELTAS, tuples)
    run(lake)
    got = table(lake)
    assert got["open_time"].dt.epoch("ms").to_list() == [m0, m0 + 60_000, m0 + 120_000]
    r0, r1, r2 = got.row(0, named=True), got.row(1, named=True), got.row(2, named=True)
    mid = (100.0 + 100.1) / 2
    assert r0["book_cover"] == pytest.approx(40 / 60)
    assert r0["messages"] == 2 and r0["ofi"] == pytest.approx(1.0)  # e = q_b - q_b' = 3 - 2
    assert r0["mid_open"] == r0["mid_close"] == r0["mid_high"] == r0["mid_low"] == pytest.approx(mid)
    assert r0["spread_bps"] == pytest.approx(0.1 / mid * 1e4)
    assert r0["imb1_mean"] == pytest.approx((20 * 2 / 3 + 20 * 3 / 4) / 40)
    assert r0["imb1_last"] == pytest.approx(3 / 4)
    assert r0["imb5_mean"] == pytest.approx((20 * 16 / 23 + 20 * 17 / 24) / 40)
    assert r0["microprice"] == pytest.approx((100.1 * 3 + 100.0 * 1) / 4)
    # within 10 bps of 100.05: bids >= 99.94995, asks <= 100.15005; within 50 bps: bids >= 99.54975
    assert r0["depth10_bid"] == pytest.approx((20 * 6 + 20 * 7) / 40)
    assert r0["depth10_ask"] == pytest.approx(1.0)
    assert r0["depth50_bid"] == pytest.approx((20 * 6 + 20 * 7) / 40)
    assert r0["depth50_ask"] == pytest.approx(7.0)
    # minute 1: 1:00-1:10 the :40 book, 1:45-1:50 bid 100@1/ask 100.2@1, 1:50-2:00 bid 100@3
    assert r1["book_cover"] == pytest.approx(25 / 60)
    assert r1["messages"] == 3  # 1:10, 1:45 (snapshot), 1:50; the breaking 1:30 is not applied
    assert r1["mid_open"] == pytest.approx(mid) and r1["mid_close"] == pytest.approx(100.1)
    assert r1["mid_high"] == pytest.approx(100.1) and r1["mid_low"] == pytest.approx(mid)
    assert r1["imb1_mean"] == pytest.approx((10 * 3 / 4 + 5 * 1 / 2 + 10 * 3 / 4) / 25)
    assert r1["imb1_last"] == pytest.approx(3 / 4)
    # 1:10: ask 100.1 grows 1 -> 3 (e = -3 + 1); 1:50: bid 100 grows 1 -> 3 (e = 3 - 1)
    assert r1["ofi"] == pytest.approx(0.0)
    # minute 2: the 1:50 book until 2:05 (confirmed by it); after 2:05 nothing is confirmed yet
    assert r2["book_cover"] == pytest.approx(5 / 60) and r2["messages"] == 1
    assert r2["microprice"] == pytest.approx((100.2 * 3 + 100.0 * 1) / 4)
    assert_matches(got, reference(as_dicts(tuples)))
    # idempotent: a second run writes nothing
    version = Handles(lake).table(SILVER_BOOK_FEATURES).version()  # type: ignore[union-attr]
    run(lake)
    assert Handles(lake).table(SILVER_BOOK_FEATURES).version() == version  # type: ignore[union-attr]


# --- generated chains: breaks, a crossed book, a late capture, any commit boundaries -----------------------------
def gen_chain(
    rng: random.Random, *, session: str, t0_ms: int, n: int, seq0: int, lose: int | None = None,
    cross_at: int | None = None, mid: float = 3000.0, instrument: str = "X",
) -> list[tuple[Any, ...]]:  # fmt: skip
    tick = 0.5
    bids = {mid - tick * (i + 1): float(rng.randint(1, 40)) for i in range(40)}
    asks = {mid + tick * (i + 1): float(rng.randint(1, 40)) for i in range(40)}
    kw = {"session": session, "instrument": instrument}
    out = [msg(t0_ms, seq0, -1, True, list(bids.items()), list(asks.items()), **kw)]
    t = t0_ms
    for i in range(1, n):
        t += rng.choice((0, 300, 1_000, 2_500, 7_000, 19_000))
        b: list[tuple[float, float]] = []
        a: list[tuple[float, float]] = []
        for _ in range(rng.randint(1, 3)):
            side, book, sign = (b, bids, -1) if rng.random() < 0.5 else (a, asks, 1)
            price = mid + sign * tick * rng.randint(1, 45)
            if price in book and rng.random() < 0.4:
                side.append((price, 0.0))
                del book[price]
            else:
                book[price] = float(rng.randint(1, 60))
                side.append((price, book[price]))
        if i == cross_at:
            b.append((mid + tick * 2, 5.0))
        if i != lose:
            out.append(msg(t, seq0 + i, seq0 + i - 1, False, b, a, **kw))
    return out


def scenario(seed: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(stream, capture): X's stream loses a message, then a resubscription; Y's book crosses; a capture of X
    over some of the same minutes (another session, another mid), imported after the stream."""
    rng = random.Random(seed)
    x1 = gen_chain(rng, session="ws/X/1", t0_ms=T0, n=60, seq0=100, lose=30)
    x2 = gen_chain(rng, session="ws/X/2", t0_ms=msg_ts(x1[-1]) + 4_000, n=40, seq0=5000)
    y = gen_chain(rng, session="ws/Y/1", t0_ms=T0 + 900, n=60, seq0=1, cross_at=25, instrument="Y", mid=100.0)
    cap = gen_chain(rng, session="cap/X/1", t0_ms=T0 + 45_000, n=50, seq0=70, mid=3001.0)
    return sorted(x1 + x2 + y, key=msg_ts), cap


def msg_ts(m: tuple[Any, ...]) -> int:
    return int(m[BOOK_FIELDS.index("exchange_ts_ms")])


def best_of_sessions(ref: pl.DataFrame) -> pl.DataFrame:
    order = ["instrument", "channel", "open_time", "book_cover", "messages", "session"]
    desc = [False, False, False, True, True, False]
    return ref.sort(order, descending=desc).unique(["instrument", "channel", "open_time"], keep="first")


@pytest.mark.parametrize(
    ("seed", "every", "late_part", "max_rows"), [(0, None, False, None), (1, 13, False, None), (2, 29, True, 120)]
)
def test_generated_chains_equal_reference_and_incremental_equals_one_run(
    tmp_path: Path, seed: int, every: int | None, late_part: bool, max_rows: int | None
) -> None:
    stream, cap = scenario(seed)
    whole = resolve_lake(str(tmp_path / "whole"))
    writer.append_rows(whole, BRONZE_BOOK_DELTAS, stream + cap)
    run(whole)
    want = table(whole)
    assert want.height > 5
    assert_matches(want, best_of_sessions(reference(as_dicts(stream + cap))))
    breaks = want.filter(pl.col("book_cover") < 1)
    assert breaks.height and want["book_cover"].max() == pytest.approx(1.0)

    # commits cut mid-minute, at a minute boundary and between messages of one instant; the clock advances
    # with the data (open minutes not yet published, then published as they stand and restated); the capture
    # arrives last; ``late_part``: one part of the stream arrives after the rest (its sessions are replayed
    # from their start and their minutes restated); ``max_rows``: each run in several passes
    n = len(stream)
    bounds = sorted({0, n // 5, n // 2, n - 7, n} if every is None else {*range(0, n, every), n})
    parts = list(itertools.pairwise(bounds))
    if late_part:
        parts.append(parts.pop(len(parts) // 2))
    inc = resolve_lake(str(tmp_path / "inc"))
    clock = dt.datetime.fromtimestamp(0, dt.UTC)
    for lo, hi in parts:
        writer.append_rows(inc, BRONZE_BOOK_DELTAS, stream[lo:hi])
        clock = max(clock, dt.datetime.fromtimestamp(msg_ts(stream[hi - 1]) / 1000 + 30, dt.UTC))
        run(inc, clock, max_rows)
        early = table(inc)
        assert (early["open_time"].dt.epoch("us") + MIN_US <= int(clock.timestamp() * 1e6)).all()
    writer.append_rows(inc, BRONZE_BOOK_DELTAS, cap)
    run(inc, max_rows=max_rows)
    assert table(inc).drop("date").equals(want.drop("date"))
    quarantined = files.scan(inc, Handles(inc).files(SILVER_QUARANTINE)).collect()
    assert quarantined.filter(pl.col("table") == SILVER_BOOK_FEATURES.key).height == 0


# --- the real recording ---------------------------------------------------------------------------------------
def test_real_okx_2022_books(tmp_path: Path) -> None:
    from pipeline.ingest.importer import import_capture
    from pipeline.realdata import realdata_dir

    path = realdata_dir() / "okx/cryptofeed-2022-05-public.ws.log"
    if not path.is_file():
        pytest.skip(f"real recording not found at {path}")
    lake = resolve_lake(str(tmp_path / "lake"))
    import_capture(lake, path, "okx")
    run(lake)
    got = table(lake)
    # the test's book from bronze's levels (rows of one message share its exchange ts, receive ts, session)
    rows = files.scan(lake, Handles(lake).files(BRONZE_BOOK_DELTAS)).collect()
    msgs: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows.iter_rows(named=True):
        key = (r["instrument"], r["channel"], r["session"], r["exchange_ts"], r["receive_ts"], r["seq"])
        m = msgs.setdefault(
            key,
            {
                "instrument": r["instrument"], "channel": r["channel"], "session": r["session"],
                "ts_us": int(r["exchange_ts"].timestamp() * 1e6), "rcv_us": int(r["receive_ts"].timestamp() * 1e6),
                "seq": r["seq"], "prev": r["prev_seq"], "snap": r["is_snapshot"], "bids": [], "asks": [],
            },
        )  # fmt: skip
        if r["side"] is not None:
            m["bids" if r["side"] == "bid" else "asks"].append((r["price"], r["size"]))
    want = reference(list(msgs.values()))
    assert got.height == want.height >= 3  # BTC-USDT, BTC-USD-220527, UNI-USD-SWAP: 11 s of one minute
    assert_matches(got, best_of_sessions(want))
    assert (got["messages"] > 50).all() and (got["book_cover"] > 0.1).all()


def test_contract_failures_go_to_quarantine_with_the_rule(tmp_path: Path) -> None:
    lake = resolve_lake(str(tmp_path / "lake"))
    stream, _ = scenario(2)
    writer.append_rows(lake, BRONZE_BOOK_DELTAS, stream)
    run(lake)
    good = best_per_key(table(lake))
    bad = good.with_columns(
        imb1_mean=pl.when(pl.int_range(pl.len()) == 0).then(1.5).otherwise("imb1_mean"),
        mid_high=pl.when(pl.int_range(pl.len()) == 1).then(pl.col("mid_low") / 2).otherwise("mid_high"),
    )
    res = check(SilverBookFeatures.to_schema(), bad, "silver/book_features", run_id="t", detected=LATE, fail_share=1)
    assert res.good.height == good.height - 2
    rules = set(res.quarantine["rule"].to_list())
    assert any(r.startswith("imb1_mean") for r in rules) and "mid_within_high_low" in rules, rules
