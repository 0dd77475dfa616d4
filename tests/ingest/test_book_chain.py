"""BookVerifier: chain, checksum, crossing and missing snapshots, on book messages parsed from wire frames."""

from __future__ import annotations

import json
from typing import Any

from pipeline.ingest.book_chain import BookVerifier
from pipeline.lake.schemas import BOOK_FIELDS, GAP_FIELDS
from pipeline.venues import deribit, okx
from pipeline.venues.base import ParsedBatch

Levels = list[list[str]]


def okx_row(
    action: str, bids: Levels, asks: Levels, seq: int | None = None, prev: int | None = None,
    checksum: int | None = None, ts: int = 1_700_000_000_000, inst: str = "BTC-USDT",
) -> tuple[Any, ...]:  # fmt: skip
    item: dict[str, Any] = {"asks": asks, "bids": bids, "ts": str(ts)}
    if seq is not None:
        item |= {"seqId": seq, "prevSeqId": prev}
    if checksum is not None:
        item["checksum"] = checksum
    frame = {"arg": {"channel": "books", "instId": inst}, "action": action, "data": [item]}
    out = ParsedBatch()
    assert okx.parse(json.dumps(frame), ts * 1000, out) is None
    (row,) = out.books
    return row


def deribit_row(kind: str, bids: list, asks: list, change_id: int, prev: int | None = None) -> tuple[Any, ...]:
    data: dict[str, Any] = {"type": kind, "timestamp": 1_700_000_000_000 + change_id, "change_id": change_id,
                            "instrument_name": "ETH-PERPETUAL", "bids": bids, "asks": asks}  # fmt: skip
    if prev is not None:
        data["prev_change_id"] = prev
    frame = {
        "jsonrpc": "2.0",
        "method": "subscription",
        "params": {"channel": "book.ETH-PERPETUAL.100ms", "data": data},
    }
    out = ParsedBatch()
    assert deribit.parse(json.dumps(frame), 1, out) is None
    return out.books[0]


def lv(px: str, sz: str, orders: str = "1") -> list[str]:
    return [px, sz, "0", orders]


SNAP_BIDS = [lv("100", "1"), lv("99.5", "2"), lv("99", "3")]
SNAP_ASKS = [lv("101", "1"), lv("101.5", "2")]


def run(verifier: BookVerifier, rows: list[tuple[Any, ...]]) -> list[Any]:
    return verifier.verify(rows)


def test_a_good_okx_chain_with_keepalive_and_maintenance_reset_has_no_break() -> None:
    rows = [
        okx_row("snapshot", SNAP_BIDS, SNAP_ASKS, seq=10, prev=-1),
        okx_row("update", [lv("100", "0", "0")], [lv("100.5", "4")], seq=11, prev=10),
        okx_row("update", [], [], seq=11, prev=11),  # keep-alive: seqId == prevSeqId
        okx_row("update", [lv("99.8", "1")], [], seq=3, prev=11),  # seqId reset after maintenance
        okx_row("update", [], [lv("100.5", "0", "0")], seq=4, prev=3),
    ]
    verifier = BookVerifier("t")
    assert run(verifier, rows) == []
    assert verifier.is_valid("okx", "BTC-USDT", "books")
    bids, asks = verifier.top("okx", "BTC-USDT", "books")
    assert [b[0] for b in bids] == ["99.8", "99.5", "99"] and [a[0] for a in asks] == ["101", "101.5"]
    assert {r[BOOK_FIELDS.index("session")] for r in rows} == {"t/BTC-USDT/books/1"}


def test_a_lost_update_breaks_the_chain_once_until_the_next_snapshot() -> None:
    verifier = BookVerifier("t")
    rows = [
        okx_row("snapshot", SNAP_BIDS, SNAP_ASKS, seq=10, prev=-1, ts=1),
        okx_row("update", [lv("99.9", "1")], [], seq=11, prev=10, ts=2),
        okx_row("update", [lv("99.7", "1")], [], seq=13, prev=12, ts=3),  # 12 is lost
        okx_row("update", [lv("99.6", "1")], [], seq=14, prev=13, ts=4),  # silent: the book is broken
        okx_row("update", [lv("101", "5")], [], seq=15, prev=99, ts=5),  # would cross and break: silent too
        okx_row("snapshot", SNAP_BIDS, SNAP_ASKS, seq=20, prev=-1, ts=6),
        okx_row("update", [lv("99.9", "1")], [], seq=21, prev=20, ts=7),
    ]
    (broke,) = run(verifier, rows)
    assert (broke.kind, broke.from_seq, broke.to_seq, broke.from_ts_ms, broke.to_ts_ms) == ("chain", 11, 13, 2, 3)
    assert "prev_seq 12 after seq 11" in broke.detail
    sessions = [r[BOOK_FIELDS.index("session")] for r in rows]
    assert sessions == ["t/BTC-USDT/books/1"] * 5 + ["t/BTC-USDT/books/2"] * 2  # the new snapshot, a new session
    assert verifier.is_valid("okx", "BTC-USDT", "books")
    gap = dict(zip(GAP_FIELDS, broke.gap_row(detected_us=5), strict=True))
    assert (gap["kind"], gap["instrument"], gap["from_seq"], gap["to_seq"], gap["status"]) == (
        "book", "BTC-USDT", 11, 13, "open",
    )  # fmt: skip
    assert gap["detail"].startswith("chain: books session t/BTC-USDT/books/1")


def test_a_duplicated_update_breaks_the_chain() -> None:
    first = okx_row("update", [lv("99.9", "1")], [], seq=11, prev=10)
    rows = [okx_row("snapshot", SNAP_BIDS, SNAP_ASKS, seq=10, prev=-1), first, first]
    assert [b.kind for b in run(BookVerifier("t"), rows)] == ["chain"]


def test_no_prev_seq_is_not_zero() -> None:
    rows = [okx_row("snapshot", SNAP_BIDS, SNAP_ASKS, seq=0, prev=-1), okx_row("update", [lv("99.9", "1")], [])]
    (broke,) = run(BookVerifier("t"), rows)
    assert broke.kind == "chain" and "prev_seq None after seq 0" in broke.detail


def test_without_seq_at_all_only_checksums_are_checked() -> None:
    # OKX 2022: no seqId anywhere, so there is no chain to check; checksums still are.
    snap = okx_row("snapshot", SNAP_BIDS, SNAP_ASKS, checksum=okx.book_checksum(SNAP_BIDS, SNAP_ASKS))
    after = [lv("100.2", "1"), *SNAP_BIDS]
    upd = okx_row("update", [lv("100.2", "1")], [], checksum=okx.book_checksum(after, SNAP_ASKS))
    verifier = BookVerifier("t")
    assert run(verifier, [snap, upd]) == []
    assert verifier.checksums_verified == 2


def test_a_wrong_checksum_breaks_and_zero_is_not_checked() -> None:
    good = okx.book_checksum(SNAP_BIDS, SNAP_ASKS)
    rows = [
        okx_row("snapshot", SNAP_BIDS, SNAP_ASKS, seq=1, prev=-1, checksum=good),
        okx_row("update", [], [], seq=1, prev=1, checksum=0),  # 0: OKX since 2026-06, nothing to verify
        okx_row("update", [lv("99.9", "1")], [], seq=2, prev=1, checksum=good),  # the book changed: stale
    ]
    verifier = BookVerifier("t")
    (broke,) = run(verifier, rows)
    assert broke.kind == "checksum" and f"checksum {good} sent" in broke.detail
    assert verifier.checksums_verified == 1


def test_a_level_pushed_out_of_the_top_25_is_still_deleted() -> None:
    bids = [lv(str(1000 - i), "1") for i in range(25)]  # exactly 25 levels: 1000 .. 976
    asks = [lv("1001", "1")]
    full = list(bids)
    rows = [okx_row("snapshot", bids, asks, seq=1, prev=-1, checksum=okx.book_checksum(bids, asks))]
    full.insert(0, lv("1000.5", "1"))  # 976 leaves the top 25 but stays in the book
    rows.append(okx_row("update", [full[0]], [], seq=2, prev=1, checksum=okx.book_checksum(full[:25], asks)))
    full = [b for b in full if b[0] not in ("1000.5", "976")]  # both deleted: 976 is back... and gone
    rows.append(
        okx_row("update", [lv("1000.5", "0", "0"), lv("976", "0", "0")], [], seq=3, prev=2,
                checksum=okx.book_checksum(full[:25], asks))
    )  # fmt: skip
    verifier = BookVerifier("t")
    assert run(verifier, rows) == []
    assert verifier.checksums_verified == 3
    assert [b[0] for b in verifier.top("okx", "BTC-USDT", "books", depth=30)[0]] == [b[0] for b in full]


def test_a_crossing_update_breaks_the_book() -> None:
    rows = [
        okx_row("snapshot", SNAP_BIDS, SNAP_ASKS, seq=1, prev=-1),
        okx_row("update", [lv("101", "2")], [], seq=2, prev=1),  # bid at the best ask
    ]
    (broke,) = run(BookVerifier("t"), rows)
    assert broke.kind == "crossed" and "best bid 101.0 >= best ask 101.0" in broke.detail


def test_an_update_before_any_snapshot_is_reported_once() -> None:
    rows = [okx_row("update", [lv("99", "1")], [], seq=5, prev=4), okx_row("update", [], [], seq=6, prev=5)]
    verifier = BookVerifier("t")
    (broke,) = run(verifier, rows)
    assert (broke.kind, broke.to_seq) == ("no_snapshot", 5)
    assert not verifier.is_valid("okx", "BTC-USDT", "books")


def test_a_rest_snapshot_chains_the_buffered_updates() -> None:
    verifier = BookVerifier("t")
    early = [
        okx_row("update", [lv("99.1", "1")], [], seq=8, prev=5),
        okx_row("update", [lv("99.2", "1")], [], seq=9, prev=8),
        okx_row("update", [lv("99.3", "1")], [], seq=12, prev=9),
    ]
    assert [b.kind for b in run(verifier, early)] == ["no_snapshot"]  # the cue to fetch the REST snapshot
    rest = okx_row("snapshot", SNAP_BIDS, SNAP_ASKS, seq=9)
    rest = (*rest[:6], "rest", *rest[7:])
    late = [rest, okx_row("update", [], [lv("101", "0", "0")], seq=13, prev=12)]
    assert run(verifier, late) == []
    # seq 8 and 9 are in the snapshot already (skipped), seq 12 applied on top of it, then seq 13
    bids, asks = verifier.top("okx", "BTC-USDT", "books")
    assert [b[0] for b in bids] == ["100", "99.5", "99.3", "99"] and [a[0] for a in asks] == ["101.5"]


def test_a_rest_snapshot_older_than_the_buffered_chain_is_a_break() -> None:
    verifier = BookVerifier("t")
    run(verifier, [okx_row("update", [lv("99.1", "1")], [], seq=8, prev=5)])
    rest = okx_row("snapshot", SNAP_BIDS, SNAP_ASKS, seq=3)
    (broke,) = run(verifier, [(*rest[:6], "rest", *rest[7:])])  # updates 4..5 are missing
    assert broke.kind == "chain" and "REST snapshot 3" in broke.detail


def test_deribit_change_ids_chain_and_actions_apply() -> None:
    rows = [
        deribit_row("snapshot", [["new", 2000.5, 10], ["new", 2000, 5]], [["new", 2001, 7]], 100),
        deribit_row("change", [["change", 2000.5, 3], ["delete", 1999, 0]], [["new", 2001.5, 1]], 105, 100),
        deribit_row("change", [["delete", 2000.5, 0]], [], 106, 105),
        deribit_row("change", [], [["delete", 2001, 0]], 108, 107),  # 107 lost
    ]
    verifier = BookVerifier("t")
    (broke,) = run(verifier, rows)
    assert (broke.kind, broke.from_seq, broke.to_seq, broke.venue, broke.channel) == (
        "chain", 106, 108, "deribit", "book.ETH-PERPETUAL.100ms",
    )  # fmt: skip


def test_sessions_from_the_caller_and_begin() -> None:
    verifier = BookVerifier("t")
    snap = okx_row("snapshot", SNAP_BIDS, SNAP_ASKS, seq=1, prev=-1)
    upd = okx_row("update", [], [], seq=1, prev=1)
    s = BOOK_FIELDS.index("session")
    mine = [(*r[:s], "conn-1", *r[s + 1 :]) for r in (snap, upd)]
    assert run(verifier, mine) == [] and [r[s] for r in mine] == ["conn-1", "conn-1"]
    # a new session id from the caller is a new incarnation: it needs its own snapshot
    (broke,) = run(verifier, [(*upd[:s], "conn-2", *upd[s + 1 :])])
    assert (broke.kind, broke.session) == ("no_snapshot", "conn-2")
    # begin(): a resubscription; its snapshot belongs to the session begin() opened
    session = verifier.begin("okx", "BTC-USDT", "books")
    rows = [snap, upd]
    assert run(verifier, rows) == [] and [r[s] for r in rows] == [session, session]


def test_replay_in_chunks_follows_each_book_across_chunks(realdata) -> None:
    from pipeline.ingest.replay import iter_replay, replay_capture

    path = realdata / "okx" / "cryptofeed-2022-05-public.ws.log"
    whole = replay_capture(path, "okx", receive_clock=lambda: 1, session_prefix="p")
    chunks = list(iter_replay(path, "okx", lambda: 1, chunk_rows=40, session_prefix="p"))
    assert len(chunks) > 5 and not any(c.book_breaks for c in chunks) and not whole.book_breaks
    assert [r for c in chunks for r in c.batch.books] == whole.batch.books
    sessions = {r[BOOK_FIELDS.index("session")] for r in whole.batch.books}
    assert sessions == {f"p/{inst}/books/1" for inst in ("BTC-USDT", "UNI-USD-SWAP", "BTC-USD-220527")}
