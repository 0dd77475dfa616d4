"""OKX derivatives channels on the simulator's ``/ws/v5/public``: subscriptions and periodic pushes.

- ``funding-rate`` (swap ``instId``): at subscribe, right after each settlement (the new period, with the paid
  rate as ``settFundingRate``), and every 30 s between (OKX: 30-90 s); in a scaled run every eighth of the
  interval at most.
- ``open-interest`` (swap): every 3 s when it changed, like OKX.
- ``mark-price`` (swap): every 500 ms when it changed, else every 10 s (OKX: 200 ms / 10 s).
- ``index-tickers`` (``instId`` an index such as ``BTC-USDT``): every 500 ms when it changed, else every 60 s.
- ``liquidation-orders`` (``{"channel":"liquidation-orders","instType":"SWAP"}``): every swap's liquidations,
  one frame per instrument per tick in which it had some.

Each push is a pure function of the market's derivatives state (``Market.derivatives``) at the tick time,
so the tests compare it with the ground truth. The hub (``okx.OkxHub``) owns connections and fan-out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from pipeline.simulator import okx_deriv_frames as D

if TYPE_CHECKING:  # pragma: no cover
    from pipeline.simulator.market import Market
    from pipeline.simulator.okx_frames import OkxInfo
    from pipeline.simulator.wsconn import WsConn

CHANNELS = frozenset({"funding-rate", "open-interest", "mark-price", "index-tickers", "liquidation-orders"})
FUNDING_PUSH_MS = 30_000
OI_PUSH_MS = 3_000
FAST_PUSH_MS = 500
MARK_IDLE_MS = 10_000
INDEX_IDLE_MS = 60_000


class Hub(Protocol):
    """What the feed uses of ``okx.OkxHub`` (a protocol, so the hub can own the feed without a cycle)."""

    @property
    def market(self) -> Market: ...
    @property
    def info(self) -> Mapping[str, OkxInfo]: ...
    @property
    def subs(self) -> Mapping[tuple[str, str], set[WsConn]]: ...
    def _fanout(self, frame: dict[str, Any] | bytes, subs: set[WsConn], is_trade: bool) -> None: ...


class OkxDerivativesFeed:
    """What the derivatives channels push, and when. ``publish`` runs once per tick (after the market step)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.market = hub.market
        self.derivs = hub.market.derivatives
        self.swaps = {iid for iid, i in hub.info.items() if i.inst.market == "swap"}
        self.indexes = {f"{base}-USDT": base for base in sorted({i.inst.base for i in hub.info.values()})}
        self._pushed: dict[tuple[str, str], tuple[int, Any]] = {}  # key -> (when, what) of the last push
        self._liq_seen = self.market.now_ms

    # -- subscriptions ------------------------------------------------------------------------------------
    def subscription(self, path: str, arg: dict[str, Any]) -> tuple[tuple[str, str], dict[str, str]] | None:
        """(hub key, ack arg) of a valid derivatives subscription, ``None`` for a wrong one (60018)."""
        channel = arg.get("channel")
        if path != "public":
            return None
        if channel == "liquidation-orders":
            inst_type = arg.get("instType")
            return ((channel, "SWAP"), {"channel": channel, "instType": "SWAP"}) if inst_type == "SWAP" else None
        inst_id = arg.get("instId")
        known = self.indexes if channel == "index-tickers" else self.swaps
        if not isinstance(inst_id, str) or inst_id not in known:
            return None
        return (str(channel), inst_id), {"channel": str(channel), "instId": inst_id}

    def snapshot(self, channel: str, ident: str) -> dict[str, Any] | None:
        """The frame a fresh subscription gets at once (none for liquidations: they are events)."""
        if channel == "liquidation-orders":
            return None
        return self._frame(channel, ident, self.market.now_ms)

    # -- frames -------------------------------------------------------------------------------------------
    def _frame(self, channel: str, ident: str, now: int) -> dict[str, Any]:
        return {"arg": {"channel": channel, "instId": ident}, "data": [self._data(channel, ident, now)]}

    def _data(self, channel: str, ident: str, now: int) -> dict[str, str]:
        d = self.derivs
        if channel == "index-tickers":
            base = self.indexes[ident]
            return D.index_ticker_data(ident, d.index_ticker(base, now), d.price_decimals(base))
        info = self.hub.info[ident]
        if channel == "funding-rate":
            book = d.book("okx", ident)
            return D.funding_rate_data(book.now(now), book.spec)
        mark = d.mark_at("okx", ident, now)
        if channel == "mark-price":
            return D.mark_price_data(info, mark, now)
        return D.open_interest_data(info, d.open_interest("okx", ident), mark, now)

    # -- publishing ---------------------------------------------------------------------------------------
    def publish(self) -> None:
        now = self.market.now_ms
        hub = self.hub
        for key, subs in list(hub.subs.items()):
            channel, ident = key
            if not subs or channel not in CHANNELS or channel == "liquidation-orders":
                continue
            state = self._state(channel, ident, now)
            last = self._pushed.get(key)
            if last is not None and not self._due(channel, ident, now, last, state):
                continue
            self._pushed[key] = (now, state)
            hub._fanout(self._frame(channel, ident, now), subs, False)
        self._push_liquidations(now)

    def _state(self, channel: str, ident: str, now: int) -> Any:
        """What decides whether a push is due: the funding period, the value that changes."""
        d = self.derivs
        if channel == "funding-rate":
            return d.book("okx", ident).next_after(now)[0]
        if channel == "open-interest":
            return d.open_interest("okx", ident)
        if channel == "mark-price":
            return d.mark_at("okx", ident, now)
        return round(d.index_at(self.indexes[ident], now), d.price_decimals(self.indexes[ident]))

    def _due(self, channel: str, ident: str, now: int, last: tuple[int, Any], state: Any) -> bool:
        when, what = last
        age = now - when
        if channel == "funding-rate":
            _, interval = self.derivs.book("okx", ident).next_after(now)
            return state != what or age >= min(FUNDING_PUSH_MS, max(100, interval // 8))
        if channel == "open-interest":
            return state != what and age >= OI_PUSH_MS
        idle = MARK_IDLE_MS if channel == "mark-price" else INDEX_IDLE_MS
        return (state != what and age >= FAST_PUSH_MS) or age >= idle

    def _push_liquidations(self, now: int) -> None:
        seen = self._liq_seen
        self._liq_seen = now
        subs = self.hub.subs.get(("liquidation-orders", "SWAP"))
        if not subs:
            return
        by_inst: dict[str, list[Any]] = {}
        for liq in reversed(self.derivs.recent_liquidations):  # oldest first; only the newest are new
            if liq.ts <= seen:
                break
            if liq.ts <= now and liq.inst_id in self.swaps:
                by_inst.setdefault(liq.inst_id, []).insert(0, liq)
        for inst_id, liqs in by_inst.items():
            frame = {
                "arg": {"channel": "liquidation-orders", "instType": "SWAP"},
                "data": [D.liquidation_data(self.hub.info[inst_id], liqs)],
            }
            self.hub._fanout(frame, subs, False)
