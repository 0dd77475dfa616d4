"""Deribit derivatives on the simulator: the ``deribit_price_index.{index}`` channel and the funding methods.

The perpetual's ticker fields (``mark_price``, ``index_price``, ``open_interest``, ``current_funding``,
``funding_8h``) and the options' ``open_interest`` come from the market's quotes, which take them from the
derivatives engine (``Market.derivatives``); this module adds what the quotes do not carry:

- ``deribit_price_index.eth_usd`` pushes ``{"index_name":"eth_usd","price":3012.55,"timestamp":1786563120494}``
  about once a second (and the current value at subscribe).
- ``public/get_funding_rate_history {instrument_name, start_timestamp, end_timestamp}``: hourly rows, oldest
  first, at most 744 (ccxt: "seems exchange returns max 744 items per request")::

      {"timestamp":1569891600000,"index_price":8222.87,"prev_index_price":8305.72,
       "interest_8h":-0.00009234260068476106,"interest_1h":-4.739622041017375e-7}

  ``interest_1h`` is the hour's settlement, ``interest_8h`` the eight hours ending there, summed.
- ``public/get_funding_rate_value``: the funding paid over the window (the ``interest_1h`` of the hours in
  it, summed), the number ccxt's ``fetch_funding_rate`` returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from pipeline.simulator.records import SimInstrument

if TYPE_CHECKING:  # pragma: no cover
    from pipeline.simulator.context import SimContext
    from pipeline.simulator.derivatives import Derivatives

INDEX_CHANNEL = "deribit_price_index"
INDEX_PUSH_MS = 1_000
MAX_HISTORY_ROWS = 744


def index_names(instruments: dict[str, SimInstrument]) -> set[str]:
    """The price indexes of the listed currencies, e.g. ``{"eth_usd"}``."""
    return {f"{i.base.lower()}_usd" for i in instruments.values()}


def index_payload(derivs: Derivatives, name: str, ts: int) -> dict[str, Any]:
    return {"index_name": name, "price": round(derivs.index_at(name.split("_")[0].upper(), ts), 2), "timestamp": ts}


def funding_history(derivs: Derivatives, inst_id: str, start: int, end: int) -> list[dict[str, Any]]:
    """Hourly rows with ``start <= timestamp <= end``, oldest first, at most 744."""
    book = derivs.book("deribit", inst_id)
    hour = book.spec.plan[-1][1]
    end = min(end, derivs.now_ms, start + MAX_HISTORY_ROWS * hour)  # bounds the work; 744 rows at most
    base = derivs.instruments[("deribit", inst_id)].base
    rows = []
    for s, interest_8h in derivs.interest_8h("deribit", inst_id, start, end)[:MAX_HISTORY_ROWS]:
        rows.append(
            {
                "timestamp": s.funding_time,
                "index_price": round(derivs.index_at(base, s.funding_time), 2),
                "prev_index_price": round(derivs.index_at(base, s.funding_time - hour), 2),
                "interest_8h": interest_8h,
                "interest_1h": s.rate,
            }
        )
    return rows


def funding_value(derivs: Derivatives, inst_id: str, start: int, end: int) -> float:
    """Funding paid over ``[start, end]``: the hourly settlements in it, summed."""
    rows = derivs.settlements("deribit", inst_id, start, min(end, derivs.now_ms))
    return float(round(sum(s.rate for s in rows), 10))


class Hub(Protocol):
    """What the feed uses of ``deribit.DeribitHub`` (a protocol: the hub owns the feed, no import cycle)."""

    @property
    def ctx(self) -> SimContext: ...
    @property
    def subs(self) -> Mapping[str, set[Any]]: ...
    def _deliver(self, channel: str, data: Any, *, trades: bool = False) -> int: ...


class DeribitIndexFeed:
    """Pushes ``deribit_price_index.*`` to its subscribers (the hub owns connections and delivery)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.derivs = hub.ctx.market.derivatives
        self._pushed: dict[str, int] = {}

    def payload(self, name: str) -> dict[str, Any]:
        return index_payload(self.derivs, name, self.derivs.now_ms)

    def publish(self) -> None:
        now = self.derivs.now_ms
        for channel, conns in list(self.hub.subs.items()):
            if not conns or not channel.startswith(INDEX_CHANNEL + "."):
                continue
            if now - self._pushed.get(channel, 0) >= INDEX_PUSH_MS:
                self._pushed[channel] = now
                self.hub._deliver(channel, self.payload(channel.split(".", 1)[1]))
