"""Deterministic market model: instruments, trades, quotes and candles from a seed.

How determinism is kept while live time follows the wall clock: each instrument draws its trades from its
own seeded RNG in fixed-size chunks laid out in *simulated* time (offsets from ``t0``, the start of the
pre-start trade window), and prices them off its base's seeded index path (``history.BasePath``).
``advance(now_ms)`` only decides *when* a pre-drawn trade is released, never *what* it is, so the same seed
and ``start_ms`` give the same trades however the tick loop jitters. Trade ids and sequence numbers are
assigned at release (cumulative counts), which is also deterministic unless the burst fault adds trades.

The types handed out are in ``records``, one instrument's state and trade drawing in ``instrument_state``,
candles in ``candles``, option pricing in ``pricing``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from pipeline.simulator import instruments as cat
from pipeline.simulator.candles import Bar, bars, ccy_volume, minute_rows, open_at
from pipeline.simulator.derivatives import Derivatives
from pipeline.simulator.history import MINUTE_MS, BasePath
from pipeline.simulator.instrument_state import YEAR_MS, InstState
from pipeline.simulator.pricing import bs_greeks, bs_price
from pipeline.simulator.records import SimInstrument, SimQuote, SimTrade

if TYPE_CHECKING:  # pragma: no cover
    from pipeline.simulator.config import SimConfig
    from pipeline.simulator.faults import Counters


def _tick_directions(px: np.ndarray, prev_px: float, prev_dir: int) -> np.ndarray:
    """Deribit tick_direction per trade: 0 up, 1 same after up, 2 down, 3 same after down."""
    diff = np.sign(np.diff(np.concatenate(([prev_px], px))))
    carry = 1.0 if prev_dir in (0, 1) else -1.0
    ext = np.concatenate(([carry], diff))
    idx = np.where(ext != 0, np.arange(len(ext)), 0)
    last = ext[np.maximum.accumulate(idx)][1:]
    return np.where(diff > 0, 0, np.where(diff < 0, 2, np.where(last > 0, 1, 3))).astype(np.int8)


class Market:
    """The whole simulated market. Not thread-safe: one event loop drives it (the server's)."""

    def __init__(self, config: SimConfig, start_ms: int | None = None, counters: Counters | None = None) -> None:
        self.config = config
        self.seed = config.seed
        self.counters = counters
        start = start_ms if start_ms is not None else (config.start_ms or int(time.time() * 1000))
        self.start_ms = int(start)
        self.t0_ms = (self.start_ms // MINUTE_MS) * MINUTE_MS - config.trade_history_minutes * MINUTE_MS
        self.history_start_ms = self.t0_ms - config.history_days * 86_400_000
        self.now_ms = self.t0_ms
        self.burst_rate = 0.0  # extra trades/s in total (burst fault), see _burst_plan
        self.crossed_quote_rate = 0.0
        self._burst_rng = np.random.default_rng([config.seed, 99])
        self._burst_carry = 0.0
        self._burst_rr = 0
        self.last_burst_trades = 0
        okx = cat.okx_instruments(config.okx_instruments, self.history_start_ms)
        bases = {i.base for i in okx} | {"ETH"}
        self.paths = {
            b: BasePath(config.seed, b, cat.OKX_BASES[b][0], cat.OKX_BASES[b][5], self.t0_ms, config.history_days)
            for b in sorted(bases)
        }
        deribit = cat.deribit_instruments(
            config.deribit_options, self.start_ms, self.paths["ETH"].index_at_one(self.t0_ms)
        )
        rate = config.trade_rate_per_instrument_per_s
        hist_rate = min(rate, config.history_trade_rate_per_instrument_per_s)
        self._insts: dict[str, dict[str, InstState]] = {"okx": {}, "deribit": {}}
        for inst in okx + deribit:
            scale = 0.1 if inst.market == "option" else 1.0
            st = InstState(
                inst, self.paths[inst.base], config.seed, rate * scale, self.t0_ms, self.start_ms, hist_rate * scale
            )
            st.gen_chunk()
            self._insts[inst.venue][inst.inst_id] = st
        self._all = [st for venue in self._insts.values() for st in venue.values()]
        self._burst_targets = [st for st in self._all if st.inst.market != "option"]
        self.derivatives = Derivatives(
            config, self.paths, okx + deribit, {st.key: st.open_interest for st in self._all}, self.start_ms
        )
        self.advance(self.start_ms, _emit=False)  # the pre-start trade window: history, not published
        for st in self._all:
            self._init_stats(st)

    # -- catalogue ---------------------------------------------------------------------------------------
    def instruments(self, venue: str) -> list[SimInstrument]:
        return [st.inst for st in self._insts.get(venue, {}).values()]

    def instrument(self, venue: str, inst_id: str) -> SimInstrument | None:
        st = self._insts.get(venue, {}).get(inst_id)
        return st.inst if st else None

    def _st(self, venue: str, inst_id: str) -> InstState:
        try:
            return self._insts[venue][inst_id]
        except KeyError:
            raise KeyError(f"unknown instrument {venue}:{inst_id}") from None

    def index_price(self, base: str, ts_ms: int | None = None) -> float:
        return self.paths[base].index_at_one(self.now_ms if ts_ms is None else ts_ms)

    def fair_price(self, venue: str, inst_id: str, ts_ms: int) -> float:
        """The price trades centre on at ``ts_ms`` (the order books re-centre on it)."""
        st = self._st(venue, inst_id)
        t = np.array([float(ts_ms)])
        return float(st.marks(t, st.path.index_at(t))[0])

    # -- live -------------------------------------------------------------------------------------------
    def advance(self, now_ms: int, _emit: bool = True) -> list[SimTrade | SimQuote]:
        """Release everything up to ``now_ms``: trades (ground truth is updated) and changed quotes, in
        time order."""
        prev = self.now_ms
        if now_ms <= prev:
            return []
        self.now_ms = now_ms
        burst_targets = self._burst_plan(prev, now_ms) if _emit and self.burst_rate > 0 else {}
        events: list[SimTrade | SimQuote] = []
        quoting: list[InstState] = []
        for st in self._all:
            extra = burst_targets.get(st.key, 0)
            traded = False
            if st.next_t <= now_ms or extra:
                block = st.take_until(now_ms)
                if extra:
                    block = self._merge_burst(st, block, extra, prev, now_ms)
                if block is not None and len(block["t"]):
                    traded = self._release(st, block, events if _emit else None)
            if _emit and (traded or now_ms >= st.next_quote_ms):
                quoting.append(st)
        if not _emit:
            return []
        if len(events) > 1:
            events.sort(key=_ts_key)
        # open interest follows this step's trades (and liquidations) before the quotes show it
        self.derivatives.on_events(prev, now_ms, events)
        events.extend([self._make_quote(st, now_ms) for st in quoting])
        return events

    def _release(self, st: InstState, block: dict[str, np.ndarray], out: list | None) -> bool:
        inst = st.inst
        t = block["t"]
        if inst.expiry_ms is not None:  # an expired option stops trading
            keep = t < inst.expiry_ms
            if not keep.all():
                block = {k: v[keep] for k, v in block.items()}
                t = block["t"]
                if not len(t):
                    return False
        ts = t.astype(np.int64)
        count = block["count"]
        tid = st.next_id + np.cumsum(count, dtype=np.int64)
        seq = st.next_seq + np.cumsum(block["gap"])
        px, sz, side = block["px"], block["sz"], block["side"]
        # tick direction is a Deribit field; OKX rows carry 0 (saves the work at high OKX rates)
        tickdir = (
            _ZEROS8[: len(px)] if st.okx and len(px) <= len(_ZEROS8) else _tick_directions(px, st.last_px, st.last_dir)
        )
        row = {"ts": ts, "tid": tid, "seq": seq, "px": px, "sz": sz, "side": side, "count": count, "tickdir": tickdir}
        if not st.okx:
            row |= {"index": block["index"], "mark": block["mark"], "iv": block["iv"]}
        st.store.append(row)
        st.next_id, st.next_seq = int(tid[-1]), int(seq[-1])
        st.last_px, st.last_sz, st.last_side, st.last_dir = (
            float(px[-1]),
            float(sz[-1]),
            int(side[-1]),
            int(tickdir[-1]),
        )
        stats = st.stats
        stats[1] = max(stats[1], float(px.max()))
        stats[2] = min(stats[2], float(px.min()))
        stats[3] += float(sz.sum())
        stats[4] += float(ccy_volume(inst, px, sz).sum())
        if out is not None:
            venue, iid = inst.venue, inst.inst_id
            sides = np.where(side == 1, "buy", "sell").tolist()
            if st.okx:
                out.extend(
                    SimTrade(venue, iid, a, b, c, d, e, f, g, None, None, None, h)
                    for a, b, c, d, e, f, g, h in zip(
                        tid.tolist(),
                        seq.tolist(),
                        px.tolist(),
                        sz.tolist(),
                        sides,
                        ts.tolist(),
                        count.tolist(),
                        tickdir.tolist(),
                        strict=True,
                    )
                )
            else:
                ivs = [None if x != x else round(x, 2) for x in block["iv"].tolist()]
                out.extend(
                    SimTrade(venue, iid, a, b, c, d, e, f, 1, round(i, 4), round(m, 6), v, h)
                    for a, b, c, d, e, f, i, m, v, h in zip(
                        tid.tolist(),
                        seq.tolist(),
                        px.tolist(),
                        sz.tolist(),
                        sides,
                        ts.tolist(),
                        block["index"].tolist(),
                        block["mark"].tolist(),
                        ivs,
                        tickdir.tolist(),
                        strict=True,
                    )
                )
        return True

    # -- burst fault ---------------------------------------------------------------------------------------
    def _burst_plan(self, prev: int, now: int) -> dict[str, int]:
        """How many burst trades each instrument gets in (prev, now]: ``burst_rate`` trades/s in total,
        round robin over every non-option instrument of every venue (OKX gets 50 of 51 shares)."""
        rate = self.burst_rate
        if rate <= 0:
            return {}
        want = rate * (now - prev) / 1000.0 + self._burst_carry
        n = int(want)
        self._burst_carry = want - n
        targets = self._burst_targets
        if n <= 0 or not targets:
            return {}
        per, rest = divmod(n, len(targets))
        rr = self._burst_rr
        plan: dict[str, int] = {}
        by_venue: dict[str, int] = {}
        for k, st in enumerate(targets):
            extra = per + (1 if (k - rr) % len(targets) < rest else 0)
            if extra:
                plan[st.key] = extra
                by_venue[st.inst.venue] = by_venue.get(st.inst.venue, 0) + extra
        self._burst_rr = (rr + rest) % len(targets)
        self.last_burst_trades = n
        if self.counters is not None:
            self.counters.inc("burst_trades", n)
            for venue, count in by_venue.items():
                self.counters.inc(f"burst_trades.{venue}", count)
        return plan

    def _merge_burst(
        self, st: InstState, block: dict[str, np.ndarray] | None, n: int, prev: int, now: int
    ) -> dict[str, np.ndarray]:
        rng = self._burst_rng
        t = np.sort(rng.uniform(prev + 1e-3, now + 0.999, n))
        side = (rng.random(n) < 0.5).astype(np.int8)
        index = st.path.index_at(t)
        mark = st.marks(t, index)
        px = np.round(st.price_ticks(mark, side) * st.inst.tick_size, st.px_dec)
        extra = {
            "t": t,
            "px": px,
            "sz": st.sizes(rng, px, n),
            "side": side,
            "count": np.ones(n, dtype=np.int32),
            "gap": np.ones(n, dtype=np.int64) if not st.okx else rng.integers(1, 30, n),
        }
        if not st.okx:
            extra |= {"index": index, "mark": mark, "iv": np.full(n, np.nan)}
        if block is None:
            return extra
        merged = {k: np.concatenate([block[k], extra[k]]) for k in block}
        order = np.argsort(merged["t"], kind="stable")
        return {k: v[order] for k, v in merged.items()}

    # -- quotes ----------------------------------------------------------------------------------------------
    def quote(self, venue: str, inst_id: str) -> SimQuote:
        """The current quote (built fresh; does not advance time)."""
        return self._make_quote(self._st(venue, inst_id), self.now_ms, schedule=False)

    def _make_quote(self, st: InstState, now_ms: int, schedule: bool = True) -> SimQuote:
        inst, r = st.inst, st.qrng
        tick = inst.tick_size
        option = inst.market == "option"
        if schedule:
            st.next_quote_ms = now_ms + (2000 if option else 1000)
            st.book_seq += r.randint(1, 40)
        p_ticks = round(st.last_px / tick)
        spread = max(1, round(st.last_px * 0.01 / tick)) if option else r.choice((1, 1, 1, 2))
        if st.last_side == 1:  # last trade lifted the ask
            ask_t, bid_t = p_ticks, p_ticks - spread
        else:
            bid_t, ask_t = p_ticks, p_ticks + spread
        if bid_t < 1:
            bid_t, ask_t = 1, max(ask_t, 2)
        if self.crossed_quote_rate and r.random() < self.crossed_quote_rate:
            bid_t, ask_t = ask_t + 1, ask_t  # the crossed-quote fault: best bid above best ask
            if self.counters is not None:
                self.counters.inc("crossed_quotes")
        unit = [st.quote_size(r) for _ in range(10)]
        bids = tuple((round((bid_t - k - (k > 2)) * tick, st.px_dec), unit[k]) for k in range(5))
        asks = tuple((round((ask_t + k + (k > 2)) * tick, st.px_dec), unit[5 + k]) for k in range(5))
        index = st.path.index_at_one(now_ms)
        mark_iv = bid_iv = ask_iv = greeks = underlying = None
        if option:
            t_years = max(st.expiry_ms - now_ms, 60_000) / YEAR_MS
            underlying = index * (1.0 + 0.01 * t_years)
            mark = round(bs_price(index, st.strike, t_years, st.iv, st.call) / index, 4)
            mark_iv = round(st.iv * 100.0, 2)
            bid_iv, ask_iv = round(mark_iv - 1.5 - r.random(), 2), round(mark_iv + 1.5 + r.random(), 2)
            greeks = bs_greeks(index, st.strike, t_years, st.iv, st.call)
        else:
            mark = round(index * (1.0 + st.basis), st.px_dec)
        current_funding = funding_8h = None
        if inst.market == "swap":  # the derivatives engine's mark (index x (1 + premium)) and funding
            mark = self.derivatives.mark_at(inst.venue, inst.inst_id, now_ms)
            if inst.venue == "deribit":
                current_funding, funding_8h = self.derivatives.ticker_funding(inst.venue, inst.inst_id, now_ms)
        o, h, lo, vol, vccy = st.stats
        return SimQuote(
            inst.venue,
            inst.inst_id,
            now_ms,
            st.book_seq,
            bids,
            asks,
            st.last_px,
            st.last_sz,
            mark,
            round(index, 4),
            underlying,
            st.open_interest if inst.market == "spot" else self.derivatives.open_interest(inst.venue, inst.inst_id),
            mark_iv,
            bid_iv,
            ask_iv,
            greeks,
            o,
            max(h, st.last_px),
            min(lo, st.last_px),
            round(vol, st.sz_dec),
            vccy,
            current_funding,
            funding_8h,
        )

    def _init_stats(self, st: InstState) -> None:
        """24 h open/high/low/volume from the candles before start (options: from their own trades)."""
        if st.inst.market == "option":
            px = st.store.col("px")
            if len(px):
                st.stats = [
                    float(px[0]),
                    float(px.max()),
                    float(px.min()),
                    float(st.store.col("sz").sum()),
                    float(ccy_volume(st.inst, px, st.store.col("sz")).sum()),
                ]
            return
        rows = minute_rows(self, st, self.start_ms - 86_400_000, self.now_ms)
        if len(rows["ts"]):
            st.stats = [
                float(rows["o"][0]),
                float(rows["h"].max()),
                float(rows["l"].min()),
                float(rows["vol"].sum()),
                float(rows["vccy"].sum()),
            ]

    # -- ground truth ---------------------------------------------------------------------------------------
    def trades(
        self,
        venue: str,
        inst_id: str,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        after_id: int | None = None,
        before_id: int | None = None,
        limit: int | None = 100,
        newest_first: bool = True,
    ) -> list[SimTrade]:
        """Published trades with ``start_ms <= ts <= end_ms`` and ``after_id < trade_id < before_id``.

        ``newest_first``: the newest ``limit`` of them, newest first; otherwise the oldest ``limit``,
        oldest first. ``limit=None``: all.
        """
        st = self._st(venue, inst_id)
        lo, hi = st.store.select(start_ms=start_ms, end_ms=end_ms, after_id=after_id, before_id=before_id)
        if limit is not None and hi - lo > limit:
            lo, hi = (hi - limit, hi) if newest_first else (lo, lo + limit)
        rows = self._rows(st, lo, hi)
        if newest_first:
            rows.reverse()
        return rows

    def trade_count(self, venue: str, inst_id: str) -> int:
        return self._st(venue, inst_id).store.n

    def memory_bytes(self) -> int:
        """Bytes held by the trade stores (the part that grows with run time)."""
        return sum(st.store.nbytes() for st in self._all)

    def _rows(self, st: InstState, lo: int, hi: int) -> list[SimTrade]:
        c = st.store.cols
        venue, iid = st.inst.venue, st.inst.inst_id
        sides = ["buy" if s == 1 else "sell" for s in c["side"][lo:hi].tolist()]
        base = zip(
            st.store.ids("tid", lo, hi).tolist(),
            st.store.ids("seq", lo, hi).tolist(),
            c["px"][lo:hi].tolist(),
            c["sz"][lo:hi].tolist(),
            sides,
            c["ts"][lo:hi].tolist(),
            c["count"][lo:hi].tolist(),
            c["tickdir"][lo:hi].tolist(),
            strict=True,
        )
        if st.okx:
            return [SimTrade(venue, iid, a, b, p, s, sd, t, n, None, None, None, d) for a, b, p, s, sd, t, n, d in base]
        extras = zip(c["index"][lo:hi].tolist(), c["mark"][lo:hi].tolist(), c["iv"][lo:hi].tolist(), strict=True)
        return [
            SimTrade(venue, iid, a, b, p, s, sd, t, n, round(i, 4), round(m, 6), None if v != v else round(v, 2), d)
            for (a, b, p, s, sd, t, n, d), (i, m, v) in zip(base, extras, strict=True)
        ]

    # -- candles (built in ``candles``) ----------------------------------------------------------------------
    def price_at(self, venue: str, inst_id: str, ts_ms: int) -> float:
        """Open of the 1-minute candle containing ``ts_ms`` (OKX ``sodUtc0``/``sodUtc8``)."""
        return open_at(self, self._st(venue, inst_id), ts_ms)

    def candles(
        self, venue: str, inst_id: str, bar_ms: int, start_ms: int, end_ms: int, offset_ms: int = 0
    ) -> list[Bar]:
        """Bars whose open time is in [start_ms, end_ms], oldest first (see ``candles.bars``)."""
        return bars(self, self._st(venue, inst_id), bar_ms, start_ms, end_ms, offset_ms)


_ZEROS8 = np.zeros(65536, dtype=np.int8)


def _ts_key(e: SimTrade | SimQuote) -> int:
    return e.ts_ms
