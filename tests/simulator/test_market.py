"""Market model: determinism, id invariants, candles = trades, history join, quotes, naming, memory."""

from __future__ import annotations

import datetime as dt
import itertools
import re
import time

import pytest

from pipeline.errors import ConfigError
from pipeline.simulator.config import SimConfig
from pipeline.simulator.market import Market

START = 1_786_540_440_000  # 2026-08-12 21:54 UTC
MIN = 60_000


def _market(seed: int = 42, **kw) -> Market:
    return Market(SimConfig(seed=seed, start_ms=START, **kw))


def _key(t):
    return (t.trade_id, t.seq, t.price, t.size, t.side, t.ts_ms, t.count)


@pytest.fixture(scope="module")
def market() -> Market:
    m = _market()
    for k in range(1, 31):  # 3 s of live trading
        m.advance(START + k * 100)
    return m


def test_same_seed_same_trades_whatever_the_tick_pattern() -> None:
    a, b = _market(), _market()
    for k in range(1, 51):  # 5 s in 100 ms ticks ...
        a.advance(START + k * 100)
    b.advance(START + 1_700)  # ... versus two uneven steps
    b.advance(START + 5_000)
    for inst in a.instruments("okx")[:10] + a.instruments("deribit")[:5]:
        ta = a.trades(inst.venue, inst.inst_id, limit=None)
        tb = b.trades(inst.venue, inst.inst_id, limit=None)
        assert ta and [_key(t) for t in ta] == [_key(t) for t in tb]


def test_same_seed_same_candles_and_instruments_different_seed_differs() -> None:
    a, b, c = _market(), _market(), _market(seed=43)
    assert a.instruments("okx") == b.instruments("okx")
    assert a.instruments("deribit") == b.instruments("deribit")
    year_ago = START - 365 * 86_400_000
    ca = a.candles("okx", "ETH-USDT-SWAP", MIN, year_ago, year_ago + 99 * MIN)
    assert len(ca) == 100
    assert ca == b.candles("okx", "ETH-USDT-SWAP", MIN, year_ago, year_ago + 99 * MIN)
    assert ca != c.candles("okx", "ETH-USDT-SWAP", MIN, year_ago, year_ago + 99 * MIN)
    assert [_key(t) for t in a.trades("okx", "BTC-USDT")] != [_key(t) for t in c.trades("okx", "BTC-USDT")]


def test_okx_trade_ids_follow_counts_and_deribit_seq_is_contiguous(market: Market) -> None:
    trades = market.trades("okx", "BTC-USDT-SWAP", limit=None, newest_first=False)
    assert len(trades) > 1000
    assert all(b.trade_id - a.trade_id == b.count for a, b in itertools.pairwise(trades))
    assert all(b.seq > a.seq for a, b in itertools.pairwise(trades))
    assert all(b.ts_ms >= a.ts_ms for a, b in itertools.pairwise(trades))
    perp = market.trades("deribit", "ETH-PERPETUAL", limit=None, newest_first=False)
    assert all(b.seq - a.seq == 1 for a, b in itertools.pairwise(perp))
    assert all(t.index_price and t.mark_price and t.tick_direction in (0, 1, 2, 3) for t in perp)


def test_recent_candles_are_the_aggregation_of_trades(market: Market) -> None:
    first_live_minute = (START // MIN) * MIN - 30 * MIN
    for inst_id in ("BTC-USDT", "ETH-USDT-SWAP"):
        inst = market.instrument("okx", inst_id)
        rows = market.candles("okx", inst_id, MIN, first_live_minute, first_live_minute + 4 * MIN)
        assert len(rows) == 5
        for ts, o, h, low, c, vol, vccy, _vq, confirmed in rows:
            tr = market.trades("okx", inst_id, start_ms=ts, end_ms=ts + MIN - 1, limit=None, newest_first=False)
            assert tr, "default rate gives trades every minute"
            assert (o, c) == (tr[0].price, tr[-1].price)
            assert h == max(t.price for t in tr) and low == min(t.price for t in tr)
            assert vol == pytest.approx(sum(t.size for t in tr))
            if inst.market == "swap":
                assert vccy == pytest.approx(vol * inst.contract_value)
            assert confirmed


def test_history_joins_trades_without_a_jump(market: Market) -> None:
    t0 = market.t0_ms
    for inst in market.instruments("okx"):
        rows = market.candles("okx", inst.inst_id, MIN, t0 - MIN, t0)
        assert [r[0] for r in rows] == [t0 - MIN, t0]
        last_synthetic_close, first_live_open = rows[0][4], rows[1][1]
        assert abs(first_live_open / last_synthetic_close - 1) < 0.003, inst.inst_id


def test_two_years_of_history_is_lazy_and_fast(market: Market) -> None:
    assert market.history_start_ms <= START - 730 * 86_400_000
    t = time.perf_counter()
    for inst in market.instruments("okx")[:20]:
        rows = market.candles("okx", inst.inst_id, MIN, market.history_start_ms, market.history_start_ms + 299 * MIN)
        assert len(rows) == 300 and rows[0][0] == market.history_start_ms
        assert all(r[2] >= max(r[1], r[4]) and r[3] <= min(r[1], r[4]) for r in rows)
    assert time.perf_counter() - t < 1.0  # 20 instruments, far from building 1M rows each
    daily = market.candles("okx", "BTC-USDT", 86_400_000, START - 700 * 86_400_000, START)
    assert len(daily) >= 699 and all(b[0] - a[0] == 86_400_000 for a, b in itertools.pairwise(daily))


def test_quotes_are_consistent_with_trades(market: Market) -> None:
    for venue in ("okx", "deribit"):
        for inst in market.instruments(venue):
            q = market.quote(venue, inst.inst_id)
            assert q.bids[0][0] < q.asks[0][0], inst.inst_id
            assert q.bids[0][0] <= q.last <= q.asks[0][0], inst.inst_id
            assert [b[0] for b in q.bids] == sorted((b[0] for b in q.bids), reverse=True)
            assert [a[0] for a in q.asks] == sorted(a[0] for a in q.asks)
            if inst.market == "option":
                assert q.greeks and set(q.greeks) == {"delta", "gamma", "vega", "theta", "rho"}
                assert q.mark_iv and q.underlying_price


def test_instrument_catalogue_is_realistic(market: Market) -> None:
    okx = {i.inst_id: i for i in market.instruments("okx")}
    assert len(okx) == 50
    assert okx["BTC-USDT"].tick_size == 0.1 and okx["BTC-USDT-SWAP"].contract_value == 0.01
    assert okx["DOGE-USDT-SWAP"].contract_value == 1000 and okx["ETH-USDT"].lot_size == 0.000001
    deribit = market.instruments("deribit")
    options = [i for i in deribit if i.market == "option"]
    assert len(options) >= 100 and any(i.inst_id == "ETH-PERPETUAL" for i in deribit)
    pattern = re.compile(r"^ETH-([1-9]|[12]\d|3[01])(JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)\d\d-\d+-[CP]$")
    assert all(pattern.match(i.inst_id) for i in options)
    expiries = {i.expiry_ms for i in options}
    assert len(expiries) >= 6
    assert all(dt.datetime.fromtimestamp(e / 1000, dt.UTC).hour == 8 for e in expiries)
    assert {i.option_type for i in options} == {"call", "put"}


def test_memory_per_trade_is_compact() -> None:
    m = _market(trade_rate_per_instrument_per_s=40.0, deribit_options=10, trade_history_minutes=1)
    before = m.memory_bytes()
    for k in range(1, 301):  # 30 s at ~2,000 OKX trades/s
        m.advance(START + k * 100)
    n = sum(m.trade_count(i.venue, i.inst_id) for v in ("okx", "deribit") for i in m.instruments(v))
    assert n > 55_000
    per_trade = (m.memory_bytes() - before) / n
    # 10 minutes at 2,000 trades/s = 1.2 M trades must stay well under 200 MB
    assert per_trade * 1_200_000 < 100e6, per_trade


def test_config_validation_names_the_key() -> None:
    with pytest.raises(ConfigError) as e:
        SimConfig(host="0.0.0.0")
    assert e.value.key == "simulator.host"
    with pytest.raises(ConfigError):
        SimConfig(okx_instruments=500)
    with pytest.raises(ConfigError):
        SimConfig(faults={"malformed_rate": 2})
