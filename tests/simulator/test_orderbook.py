"""The simulator's order books in process (pipeline/simulator/orderbook.py, books.py): uncrossed, on the tick
grid, within 400 levels, trades printing at the touch, the history answering "the book at seq S", and the
same books from the same seed."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.simulator.books import BookSet
from pipeline.simulator.config import SimConfig
from pipeline.simulator.market import Market
from pipeline.simulator.orderbook import ASK, BID, MAX_LEVELS, BookSpec, LimitOrderBook

START = 1_786_540_440_000


def _run(seed: int = 5, seconds: float = 20.0, rate: float = 200.0, check: bool = False) -> tuple[Market, BookSet]:
    m = Market(SimConfig(seed=seed, start_ms=START, okx_instruments=6, deribit_options=4, history_days=2))
    books = BookSet(m, rate, seed)
    now = m.start_ms
    for _ in range(int(seconds * 10)):
        now += 100
        books.advance(now, m.advance(now))
        if check:
            _check_books(books)
    return m, books


def _check_books(books: BookSet) -> None:
    for key in books.books:
        book = books.book(*key)
        assert book.bids and book.asks, key
        assert max(book.bids) < min(book.asks), key
        assert len(book.bids) <= book.spec.span <= MAX_LEVELS and len(book.asks) <= book.spec.span, key
        assert all(n > 0 for n in book.bids.values()) and all(n > 0 for n in book.asks.values()), key


def test_books_stay_uncrossed_on_the_grid_and_within_400_levels() -> None:
    m, books = _run(seconds=15.0, check=True)
    for venue, inst_id in books.books:
        book = books.book(venue, inst_id)
        inst = m.instrument(venue, inst_id)
        assert inst is not None
        view = books.view(venue, inst_id, 400)
        for px, sz in view.bids + view.asks:
            assert abs(px / inst.tick_size - round(px / inst.tick_size)) < 1e-6, (inst_id, px)
            assert sz > 0
        assert [p for p, _ in view.bids] == sorted((p for p, _ in view.bids), reverse=True)
        assert [p for p, _ in view.asks] == sorted(p for p, _ in view.asks)
        assert view.bids[0][0] < view.asks[0][0]
        # the book follows the price: its touch is near the last trade
        last = m.trades(venue, inst_id, limit=1)[0].price
        mid = (view.bids[0][0] + view.asks[0][0]) / 2
        assert abs(mid - last) < max(0.01 * last, 4 * inst.tick_size), inst_id
        assert book.seq > book.first_seq()  # it moved


def _book(span: int = 50) -> LimitOrderBook:
    spec = BookSpec(0.1, 0.01, 1, 2, span, 0.6, 0, 0.0, 100.0)
    return LimitOrderBook(spec, np.random.default_rng(1), 1_000, 10_000.5, START)


def test_a_trade_prints_at_the_touch_and_takes_its_size() -> None:
    book = _book()
    touch_ask = min(book.asks)
    price = touch_ask + 3  # a buy through the first levels: they are pulled, the trade prints at the new touch
    seq0 = book.seq
    book.step(START + 100, 10_000.5, [(price, 250, 1)])
    chunk = book.chunks[-1]
    at = [
        i
        for i in range(len(chunk.tick))
        if chunk.start_seq + i >= seq0 and chunk.side[i] == ASK and chunk.tick[i] == price
    ]
    fill = at[-1]  # the fill is the last update at that price (an order may have arrived first)
    assert chunk.old[fill] - chunk.new[fill] == 250
    bids, asks = book.levels_at(chunk.start_seq + fill)  # the book right before the fill
    assert min(asks) == price and max(bids) < price
    # and a sell hits the best bid the same way
    seq1, bid = book.seq, max(book.bids)
    book.step(START + 200, 10_000.5, [(bid, 1, 0)])
    chunk = book.chunks[-1]
    fills = [i for i in range(len(chunk.tick)) if chunk.start_seq + i >= seq1 and chunk.tick[i] == bid]
    assert fills and chunk.side[fills[-1]] == BID and chunk.old[fills[-1]] - chunk.new[fills[-1]] == 1


def test_history_answers_the_book_at_any_kept_seq_and_refuses_older() -> None:
    m = Market(SimConfig(seed=9, start_ms=START, okx_instruments=2, deribit_options=0, history_days=2))
    books = BookSet(m, 2_000.0, 9)
    seen: dict[int, tuple[dict[int, int], dict[int, int]]] = {}
    now = m.start_ms
    book = books.book("okx", "BTC-USDT")
    for _ in range(150):
        now += 100
        books.advance(now, m.advance(now))
        seen[book.seq] = (dict(book.bids), dict(book.asks))
    assert len(book.chunks) == book.chunks.maxlen  # old chunks were dropped: the history is bounded
    kept = [s for s in seen if s >= book.first_seq()]
    assert len(kept) > 20
    for seq in kept[:: max(1, len(kept) // 15)]:
        assert book.levels_at(seq) == seen[seq]
        view = books.view("okx", "BTC-USDT", 5, seq)
        bids = sorted(seen[seq][0], reverse=True)[:5]
        assert [p for p, _ in view.bids] == [round(t * 0.1, 1) for t in bids]
    with pytest.raises(KeyError, match="older"):
        book.levels_at(book.first_seq() - 1)
    with pytest.raises(KeyError, match="not reached"):
        book.levels_at(book.seq + 1)


def test_same_seed_same_books_other_seed_other_books() -> None:
    _, a = _run(seed=3, seconds=8.0)
    _, b = _run(seed=3, seconds=8.0)
    _, c = _run(seed=4, seconds=8.0)
    for key in a.books:
        book, other = a.book(*key), b.book(*key)
        assert book.seq > book.first_seq(), key  # it moved
        assert (book.seq, book.bids, book.asks) == (other.seq, other.bids, other.asks), key
        assert [bytes(ch.tick) + bytes(ch.new) for ch in book.chunks] == [
            bytes(ch.tick) + bytes(ch.new) for ch in other.chunks
        ]
    assert any(a.book(*key).bids != c.book(*key).bids for key in a.books)


def test_a_book_looked_at_late_is_the_book_stepped_all_along() -> None:
    """Books are stepped lazily (only those something looks at follow the clock): one first looked at after
    8 s, or caught up because trades waited, equals the same book watched from the start, level for level."""
    eager_m = Market(SimConfig(seed=12, start_ms=START, okx_instruments=6, deribit_options=4, history_days=2))
    lazy_m = Market(SimConfig(seed=12, start_ms=START, okx_instruments=6, deribit_options=4, history_days=2))
    eager, lazy = BookSet(eager_m, 300.0, 12), BookSet(lazy_m, 300.0, 12)
    keys = list(eager.books)
    for key in keys:
        eager.book(*key)  # watched from the start
    now = START
    for _ in range(80):
        now += 100
        eager.advance(now, eager_m.advance(now))
        lazy.advance(now, lazy_m.advance(now))
    assert not lazy.watched and any(lazy.pending.values())  # nothing stepped yet; trades wait for their books
    for key in keys:
        late, along = lazy.book(*key), eager.book(*key)
        assert along.seq > along.first_seq(), key
        assert (late.seq, late.bids, late.asks, late.ts_ms) == (along.seq, along.bids, along.asks, along.ts_ms), key
        assert late.levels_at(along.first_seq()) == along.levels_at(along.first_seq()), key


def test_books_leave_the_trades_untouched() -> None:
    m1, _ = _run(seed=6, seconds=5.0)
    m2 = Market(SimConfig(seed=6, start_ms=START, okx_instruments=6, deribit_options=4, history_days=2))
    now = m2.start_ms
    for _ in range(50):
        now += 100
        m2.advance(now)
    for venue in ("okx", "deribit"):
        for inst in m1.instruments(venue):
            assert m1.trades(venue, inst.inst_id, limit=None) == m2.trades(venue, inst.inst_id, limit=None)
