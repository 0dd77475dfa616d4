import json

from pipeline.ingest.gaps import GapDetector


def _row(inst: str, trade_id: str, ts: int, seq: int | None, count: int | None) -> tuple:
    return ("x", "swap", inst, trade_id, 1.0, 1.0, "buy", ts, 0, "ws", seq, count, None, None, None, None)


def test_deribit_trade_seq_break_is_a_gap_with_its_bounds() -> None:
    d = GapDetector("deribit", settle_ms=0)
    rows = [_row("ETH-PERPETUAL", str(i), 1000 + i, seq, None) for i, seq in enumerate([10, 11, 12, 15, 16])]
    d.check(rows, 0)
    (gap,) = d.settled()
    assert gap[2:4] == ("ETH-PERPETUAL", "seq")
    assert (gap[6], gap[7]) == (12, 15) and (gap[4], gap[5]) == (1002, 1003)
    assert "2 missing" in gap[10]


def test_okx_ids_advance_by_count_so_real_consecutive_trades_make_no_gap(realdata) -> None:
    d = GapDetector("okx", settle_ms=0)
    rows = []
    for line in (realdata / "okx" / "ccxt-2026-08.jsonl").read_text().splitlines():
        msg = json.loads(line)["msg"]
        if msg.get("arg", {}).get("channel") == "trades" and "data" in msg:
            for t in msg["data"]:
                rows.append(_row(t["instId"], t["tradeId"], int(t["ts"]), t["seqId"], int(t["count"])))
    assert len(rows) == 4
    d.check(rows, 0)
    assert d.settled() == []
    # The same trades with one missing in between: id jumps by more than the count.
    d2 = GapDetector("okx", settle_ms=0)
    d2.check([_row("A", "100", 1, None, 1), _row("A", "105", 2, None, 2)], 0)
    (gap,) = d2.settled()
    assert gap[3] == "trade_id" and (gap[6], gap[7]) == (100, 105)


def test_out_of_order_trade_closes_its_gap_and_duplicates_are_counted() -> None:
    d = GapDetector("deribit", settle_ms=60_000)
    d.check(
        [
            _row("I", "a", 1, 1, None),
            _row("I", "c", 3, 3, None),
            _row("I", "b", 2, 2, None),
            _row("I", "c", 3, 3, None),
        ],
        0,
    )
    assert d.settled(force=True) == []
    assert d.out_of_order == 1 and d.duplicates == 1


def test_state_survives_a_restart() -> None:
    d = GapDetector("deribit", settle_ms=0)
    d.check([_row("I", "a", 1, 41, None)], 0)
    restarted = GapDetector("deribit", settle_ms=0)
    restarted.restore(json.loads(json.dumps(d.snapshot())))
    restarted.check([_row("I", "z", 9, 50, None)], 0)
    (gap,) = restarted.settled()
    assert (gap[6], gap[7]) == (41, 50)
