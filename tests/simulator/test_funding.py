"""The simulator's derivatives engine in process: funding within caps and on schedule, the interval change,
liquidations in fast moves, open interest that follows trading, determinism for a seed."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from pipeline.errors import ConfigError
from pipeline.simulator.config import SimConfig
from pipeline.simulator.funding import HOUR_MS, INTEREST_CLAMP, FundingBook, okx_spec
from pipeline.simulator.market import Market
from pipeline.simulator.records import SimTrade

START = 1_786_540_000_000  # 2026-08-12 11:06:40 UTC
DAY = 86_400_000


def _market(seed: int = 11, **kw) -> Market:
    return Market(SimConfig(seed=seed, start_ms=START, history_days=2, deribit_options=2, **kw))


@pytest.fixture(scope="module")
def market() -> Market:
    return _market()


def test_rates_stay_within_each_cap_and_the_cap_binds(market: Market) -> None:
    d = market.derivatives
    at_cap = 0
    for (venue, inst_id), book in d.books.items():
        rows = d.settlements(venue, inst_id, START - 92 * DAY, START + 2 * DAY)
        rates = np.array([s.rate for s in rows])
        assert len(rows) >= 92 * 3 and np.all(np.abs(rates) <= book.spec.cap), inst_id
        assert len(set(rates.tolist())) > 10, f"{inst_id}: funding never moves"
        at_cap += int(np.sum(np.abs(rates) == book.spec.cap))
    assert at_cap > 0  # squeezes push the premium past the caps: the clamp is exercised
    caps = {iid: b.spec.cap for (_, iid), b in d.books.items()}
    assert caps["BTC-USDT-SWAP"] == 0.00375 and caps["XRP-USDT-SWAP"] == 0.0075 and caps["DOGE-USDT-SWAP"] == 0.015


def test_a_rate_is_the_okx_formula_over_the_minute_premiums_before_it(market: Market) -> None:
    """Recomputed here from the premium grid, independently of the engine's cumulative sums."""
    d = market.derivatives
    book = d.book("okx", "BTC-USDT-SWAP")
    for s in d.settlements("okx", "BTC-USDT-SWAP", START - 5 * DAY, START):
        minutes = range((s.funding_time - s.interval_ms) // 60_000, s.funding_time // 60_000)
        p = sum(book.premium_at(m * 60_000) for m in minutes) / len(minutes)
        interest = 0.0001 * s.interval_ms / (8 * HOUR_MS)
        f = p + min(max(interest - p, -INTEREST_CLAMP), INTEREST_CLAMP)
        assert s.rate == pytest.approx(min(max(f, -0.00375), 0.00375), abs=2e-10)


@pytest.mark.parametrize(
    ("venue", "inst_id", "hours"),
    [
        ("okx", "BTC-USDT-SWAP", 8),
        ("okx", "SOL-USDT-SWAP", 4),
        ("okx", "DOGE-USDT-SWAP", 1),
        ("deribit", "ETH-PERPETUAL", 1),
    ],
)
def test_settlements_fall_on_each_instruments_schedule(market: Market, venue: str, inst_id: str, hours: int) -> None:
    rows = market.derivatives.settlements(venue, inst_id, START - 3 * DAY, START + DAY)
    times = [s.funding_time for s in rows]
    assert len(rows) == 4 * 24 // hours
    assert all(t % (hours * HOUR_MS) == 0 for t in times)  # 8 h: 00:00, 08:00, 16:00 UTC
    assert {s.interval_ms for s in rows} == {hours * HOUR_MS}
    assert all(b - a == hours * HOUR_MS for a, b in itertools.pairwise(times))


def test_the_changing_instrument_settles_8h_then_4h_then_1h(market: Market) -> None:
    rows = market.derivatives.settlements("okx", "ETH-USDT-SWAP", START - 5 * DAY, START + DAY)
    intervals = [s.interval_ms // HOUR_MS for s in rows]
    runs = [h for i, h in enumerate(intervals) if i == 0 or intervals[i - 1] != h]
    assert runs == [8, 4, 1]  # each row's interval is the time since the previous settlement
    times = [s.funding_time for s in rows]
    assert all(b - a == s.interval_ms for a, b, s in zip(times, times[1:], rows[1:], strict=False))
    first_4h = next(s.funding_time for s in rows if s.interval_ms == 4 * HOUR_MS)
    first_1h = next(s.funding_time for s in rows if s.interval_ms == HOUR_MS)
    assert first_4h < START < first_1h  # one switch in the history, one during the run


def test_the_prediction_converges_to_the_settled_rate(market: Market) -> None:
    d = market.derivatives
    s = d.settlements("okx", "DOGE-USDT-SWAP", START, START + 3 * HOUR_MS)[0]
    now = d.funding_now("okx", "DOGE-USDT-SWAP", s.funding_time - 1)
    assert now.funding_time == s.funding_time and now.rate == s.rate
    after = d.funding_now("okx", "DOGE-USDT-SWAP", s.funding_time)
    assert after.settled_time == s.funding_time and after.settled_rate == s.rate
    assert after.next_funding_time - after.funding_time == HOUR_MS


def test_same_seed_same_derivatives_another_seed_differs() -> None:
    def run(seed: int) -> tuple:
        m = _market(seed, okx_instruments=8)
        now = m.start_ms
        for _ in range(100):
            now += 250
            m.advance(now)
        d = m.derivatives
        return (
            [s.rate for s in d.all_settlements(START - 2 * DAY, START + DAY)],
            [d.liquidations(i.inst_id, START - 600_000, START + 600_000) for i in d.okx_swaps],
            {k: d.open_interest(*k) for k in d.oi},
            d.mark_at("okx", "BTC-USDT-SWAP", now),
        )

    a, b = run(3), run(3)
    assert a == b
    assert run(4)[0] != a[0]


def test_liquidations_come_in_fast_moves_on_the_losing_side(market: Market) -> None:
    d = market.derivatives
    found = [x for i in d.okx_swaps for x in d.liquidations(i.inst_id, START, START + 30 * 60_000)]
    assert len(found) >= 10
    for x in found:
        inst = d.instruments[("okx", x.inst_id)]
        path = d.paths[inst.base]
        slot = x.ts // 1000 * 1000
        move = path.index_at_one(slot) / path.index_at_one(slot - 30_000) - 1.0
        assert abs(move) > 2.2 * path.sigma_s * math.sqrt(30)
        assert (x.side, x.pos_side) == (("sell", "long") if move < 0 else ("buy", "short"))
        mark = d.mark_at("okx", x.inst_id, x.ts)
        assert (x.price < mark) if x.side == "sell" else (x.price > mark)
        assert x.size >= inst.lot_size


def test_open_interest_moves_only_by_trades_and_liquidations() -> None:
    m = _market(okx_instruments=50)
    d = m.derivatives
    now, moved = m.start_ms, 0
    for _ in range(200):
        before = {k: d.open_interest(*k) for k in d.oi}
        prev, now = now, now + 200
        events = m.advance(now)
        traded: dict[tuple[str, str], float] = {}
        for e in events:
            if isinstance(e, SimTrade):
                traded[(e.venue, e.inst_id)] = traded.get((e.venue, e.inst_id), 0.0) + e.size
        for liq in d.recent_liquidations:
            if prev < liq.ts <= now:
                traded[("okx", liq.inst_id)] = traded.get(("okx", liq.inst_id), 0.0) + liq.size
        for key, value in before.items():
            change = abs(d.open_interest(*key) - value)
            assert change <= traded.get(key, 0.0) + 1e-6, key
            moved += change > 0
        quotes = {(q.venue, q.inst_id): q for q in events if not isinstance(q, SimTrade)}
        for key, q in quotes.items():
            if key in d.oi:
                assert q.open_interest == d.open_interest(*key)  # what the tickers show
    assert moved > 50


@pytest.mark.parametrize("scale", [1.0, 1 / 7, 1 / 3600, 1 / 36000])
def test_every_schedule_stays_on_its_grid_at_any_clock_scale(scale: float) -> None:
    """Each settlement's interval is the time since the previous one and divides its funding time."""
    for inst_id, base in [("ETH-USDT-SWAP", "ETH"), ("SOL-USDT-SWAP", "SOL")]:
        book = FundingBook(1, okx_spec(inst_id, base, START, scale))
        hour = book.spec.hour_ms
        times, intervals = book.settlement_times(START - 200 * hour, START + 200 * hour)
        assert len(times) > 50
        assert np.all(np.diff(times) == intervals[1:]) and np.all(times % intervals == 0)


def test_a_bad_clock_scale_is_refused_with_its_key() -> None:
    for bad in (0.0, 2.0, 1e-6):
        with pytest.raises(ConfigError) as err:
            SimConfig(funding_interval_scale=bad)
        assert err.value.key == "simulator.funding_interval_scale"
