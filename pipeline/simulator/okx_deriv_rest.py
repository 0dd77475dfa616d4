"""OKX v5 REST for derivatives: ``public/funding-rate``, ``public/funding-rate-history``, ``public/open-interest``,
``public/mark-price``, ``market/index-tickers`` and ``rubik/stat/contracts/open-interest-history``, registered by
``okx_rest.add_routes`` (same errors, limits and faults as every OKX endpoint).

``funding-rate-history`` pages like OKX: ``after`` = older than that ``fundingTime``, ``before`` = newer than
it (both exclusive), the newest ``limit`` (<= 100) rows of that window, newest first, and nothing older than
the history window (about 3 months, ``SimConfig.funding_history_days``) nor newer than the last settlement.

``open-interest-history`` (swaps; OKX also serves futures, which the simulator does not list): ``period``
(default 5m; another value: 51000), ``begin``/``end`` exclusive, the newest ``limit`` (<= 100) points of the
window, newest first, as ``[ts, oi, oiCcy, oiUsd]`` (oiUsd at the mark price, as ``public/open-interest``),
and only the latest 1,440 points of the period, like OKX.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from pipeline.simulator import oi_history
from pipeline.simulator import okx_deriv_frames as D
from pipeline.simulator.okx_rest import _bad, _int, _ok

if TYPE_CHECKING:  # pragma: no cover
    from pipeline.simulator.okx_rest import OkxState

MAX_HISTORY_ROWS = 100
REST_LIMITS = {  # requests per 2 s, as documented by OKX
    "public/funding-rate": (20, 2.0),
    "public/funding-rate-history": (10, 2.0),
    "public/open-interest": (20, 2.0),
    "public/mark-price": (10, 2.0),
    "market/index-tickers": (20, 2.0),
    "rubik/stat/contracts/open-interest-history": (10, 2.0),  # OKX: per IP and instrument
}


def routes(hub: OkxState) -> dict[str, Callable[[web.Request], web.Response]]:
    """The handlers, by endpoint (``okx_rest.add_routes`` wraps them with limits and faults)."""
    derivs = hub.market.derivatives
    swaps = {iid: info for iid, info in hub.info.items() if info.inst.market == "swap"}
    indexes = {f"{base}-USDT": base for base in sorted({i.inst.base for i in hub.info.values()})}

    def swap_or_error(request: web.Request) -> tuple[str | None, web.Response | None]:
        inst_id = request.query.get("instId")
        if not inst_id:
            return None, _bad("50014", "Parameter instId can not be empty.")
        if inst_id not in swaps:
            return None, _bad("51001", "Instrument ID or Spread ID doesn't exist.")
        return inst_id, None

    def funding_row(inst_id: str) -> dict[str, str]:
        book = derivs.book("okx", inst_id)
        return D.funding_rate_data(book.now(hub.market.now_ms), book.spec)

    def funding_rate(request: web.Request) -> web.Response:
        if request.query.get("instId") == "ANY":  # ccxt's fetch_funding_rates: every swap
            return _ok([funding_row(iid) for iid in swaps])
        inst_id, err = swap_or_error(request)
        return err or _ok([funding_row(str(inst_id))])

    def funding_history(request: web.Request) -> web.Response:
        inst_id, err = swap_or_error(request)
        if err:
            return err
        assert inst_id is not None
        limit = max(1, min(MAX_HISTORY_ROWS, _int(request, "limit") or MAX_HISTORY_ROWS))
        after, before = _int(request, "after"), _int(request, "before")
        now = hub.market.now_ms
        end = now if after is None else min(now, after - 1)
        start = derivs.history_start(now) if before is None else max(derivs.history_start(now), before + 1)
        if start > end:
            return _ok([])
        book = derivs.book("okx", inst_id)
        rows = book.settlements(start, end)[-limit:]
        return _ok([D.funding_history_row(s, book.spec) for s in reversed(rows)])

    def open_interest_history(request: web.Request) -> web.Response:
        inst_id, err = swap_or_error(request)
        if err:
            return err
        assert inst_id is not None
        period = request.query.get("period") or "5m"
        if period not in oi_history.PERIODS:
            return _bad("51000", "Parameter period error")
        limit = max(1, min(MAX_HISTORY_ROWS, _int(request, "limit") or MAX_HISTORY_ROWS))
        begin, end = _int(request, "begin"), _int(request, "end")
        step = oi_history.PERIODS[period][0]
        newest = oi_history.newest_point(period, derivs.now_ms)
        lo = newest - (oi_history.HISTORY_POINTS - 1) * step
        lo = lo if begin is None else max(lo, begin + 1)
        hi = newest + 1 if end is None else min(newest + 1, end)
        ts = oi_history.points(period, lo, hi)[-limit:]
        info = swaps[inst_id]
        rows = []
        for t, oi in zip(reversed(ts), reversed(derivs.open_interest_points("okx", inst_id, ts)), strict=True):
            d = D.open_interest_data(info, oi, derivs.mark_at("okx", inst_id, t), t)
            rows.append([d["ts"], d["oi"], d["oiCcy"], d["oiUsd"]])
        return _ok(rows)

    def filtered(request: web.Request) -> list[str] | web.Response:
        """Swaps matching instType (required) and the optional instId / uly / instFamily."""
        inst_type = request.query.get("instType")
        if not inst_type:
            return _bad("50014", "Parameter instType can not be empty.")
        if inst_type not in ("SWAP", "FUTURES", "OPTION", "MARGIN"):
            return _bad("51000", "Parameter instType error")
        want = {k: request.query.get(k) for k in ("instId", "uly", "instFamily")}
        out = []
        for iid, info in swaps.items():
            fam = info.inst.underlying
            if inst_type != "SWAP" or (want["instId"] and want["instId"] != iid):
                continue
            if (want["uly"] and want["uly"] != fam) or (want["instFamily"] and want["instFamily"] != fam):
                continue
            out.append(iid)
        return out

    def open_interest(request: web.Request) -> web.Response:
        found = filtered(request)
        if isinstance(found, web.Response):
            return found
        now = hub.market.now_ms
        return _ok(
            [
                D.open_interest_data(swaps[i], derivs.open_interest("okx", i), derivs.mark_at("okx", i, now), now)
                for i in found
            ]
        )

    def mark_price(request: web.Request) -> web.Response:
        found = filtered(request)
        if isinstance(found, web.Response):
            return found
        now = hub.market.now_ms
        return _ok([D.mark_price_data(swaps[i], derivs.mark_at("okx", i, now), now) for i in found])

    def index_tickers(request: web.Request) -> web.Response:
        inst_id, quote = request.query.get("instId"), request.query.get("quoteCcy")
        if not inst_id and not quote:
            return _bad("50014", "Parameter instId or quoteCcy can not be empty.")
        now = hub.market.now_ms
        rows: list[dict[str, Any]] = []
        for idx, base in indexes.items():
            if (inst_id and idx != inst_id) or (quote and quote != "USDT"):
                continue
            rows.append(D.index_ticker_data(idx, derivs.index_ticker(base, now), derivs.price_decimals(base)))
        return _ok(rows)

    return {
        "public/funding-rate": funding_rate,
        "public/funding-rate-history": funding_history,
        "public/open-interest": open_interest,
        "public/mark-price": mark_price,
        "market/index-tickers": index_tickers,
        "rubik/stat/contracts/open-interest-history": open_interest_history,
    }
