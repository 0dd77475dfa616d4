"""Ground truth of the derivatives state on the control port, for tests of collectors in another process.

- ``GET /sim/funding?venue=okx&instId=ETH-USDT-SWAP&start_ms=..&end_ms=..``: every settlement the simulator
  made or will make in the window (all perpetuals when ``instId`` is absent), oldest first:
  ``{"venue","instId","fundingTime","rate","intervalMs","premium"}``. ``end_ms`` defaults to now.
- ``GET /sim/liquidations?instId=BTC-USDT-SWAP&start_ms=..&end_ms=..``: OKX liquidations with
  ``start_ms < ts <= end_ms``.
- ``GET /sim/open-interest?venue=okx&instId=BTC-USDT-SWAP``: the value now and its recent log ``[[ts, oi]]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

if TYPE_CHECKING:  # pragma: no cover
    from pipeline.simulator.context import SimContext


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(obj), content_type="application/json")


def add_routes(app: web.Application, ctx: SimContext) -> None:
    derivs = ctx.market.derivatives

    def window(request: web.Request) -> tuple[int, int]:
        q = request.query
        end = int(q["end_ms"]) if q.get("end_ms") else derivs.now_ms
        start = int(q["start_ms"]) if q.get("start_ms") else derivs.history_start()
        return start, end

    async def funding(request: web.Request) -> web.Response:
        venue, inst_id = request.query.get("venue", "okx"), request.query.get("instId")
        try:
            start, end = window(request)
        except ValueError:
            return _json({"error": "start_ms and end_ms must be integers"}, 400)
        if inst_id is None:
            rows = derivs.all_settlements(start, end)
        elif (venue, inst_id) not in derivs.books:
            return _json({"error": f"{venue}:{inst_id} is not a perpetual of this simulator"}, 404)
        else:
            rows = derivs.settlements(venue, inst_id, start, end)
        return _json(
            [
                {
                    "venue": s.venue,
                    "instId": s.inst_id,
                    "fundingTime": s.funding_time,
                    "rate": s.rate,
                    "intervalMs": s.interval_ms,
                    "premium": s.premium,
                }
                for s in rows
            ]
        )

    async def liquidations(request: web.Request) -> web.Response:
        inst_id = request.query.get("instId", "")
        if ("okx", inst_id) not in derivs.books:
            return _json({"error": f"okx:{inst_id} is not a swap of this simulator"}, 404)
        try:
            start, end = window(request)
        except ValueError:
            return _json({"error": "start_ms and end_ms must be integers"}, 400)
        return _json(
            [
                {
                    "instId": x.inst_id,
                    "ts": x.ts,
                    "side": x.side,
                    "posSide": x.pos_side,
                    "price": x.price,
                    "size": x.size,
                }
                for x in derivs.liquidations(inst_id, start, end)
            ]
        )

    async def open_interest(request: web.Request) -> web.Response:
        key = (request.query.get("venue", "okx"), request.query.get("instId", ""))
        if key not in derivs.oi:
            return _json({"error": f"{key[0]}:{key[1]} is not a contract of this simulator"}, 404)
        return _json({"value": derivs.open_interest(*key), "log": derivs.open_interest_log(*key)})

    app.router.add_get("/sim/funding", funding)
    app.router.add_get("/sim/liquidations", liquidations)
    app.router.add_get("/sim/open-interest", open_interest)
