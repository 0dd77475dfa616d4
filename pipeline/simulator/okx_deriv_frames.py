"""OKX v5 derivatives payloads: ``funding-rate``, ``open-interest``, ``mark-price``, ``index-tickers``,
``liquidation-orders`` pushes and the matching REST rows. Strings like OKX (numbers and ms timestamps).

Shapes from OKX's v5 docs (2025-26) and the recordings in ``$CRYPTOLAKE_REALDATA/okx-funding``::

    funding-rate  {"formulaType":"withRate","fundingRate":"0.0000792386885340","fundingTime":"1703088000000",
                   "impactValue":"20000","instId":"BTC-USDT-SWAP","instType":"SWAP",
                   "interestRate":"0.0001000000000000","maxFundingRate":"0.00375","method":"current_period",
                   "minFundingRate":"-0.00375","nextFundingRate":"","nextFundingTime":"1703116800000",
                   "premium":"0.0001233824646391","settFundingRate":"0.0000699800117796",
                   "settState":"settled","ts":"1703070685309"}
    history row   {"formulaType":"withRate","fundingRate":"0.0000746572519896","fundingTime":"1703059200000",
                   "instId":"BTC-USDT-SWAP","instType":"SWAP","method":"current_period",
                   "realizedRate":"0.0000746572519896"}
    open-interest {"instId":"BTC-USDT-SWAP","instType":"SWAP","oi":"2125419","oiCcy":"21254.19",
                   "oiUsd":"1359000000.12","ts":"1664005108969"}
    mark-price    {"instId":"BTC-USDT-SWAP","instType":"SWAP","markPx":"63921.4","ts":"1786540471710"}
    index-tickers {"instId":"BTC-USDT","idxPx":"63920.1","high24h":"64466","sodUtc0":"63566","open24h":"64297.6",
                   "low24h":"63162.7","sodUtc8":"63584.6","ts":"1786540471710"}
    liquidation   {"details":[{"bkLoss":"0","bkPx":"63665.3","ccy":"","posSide":"long","side":"sell",
                   "sz":"1.25","ts":"1786540471399"}],"instFamily":"BTC-USDT","instId":"BTC-USDT-SWAP",
                   "instType":"SWAP","uly":"BTC-USDT"}

``method`` is ``current_period``: ``fundingRate`` is the running period's predicted rate, settled at
``fundingTime``; ``nextFundingRate`` is then ``""`` as on the venue; ``settFundingRate`` is the last paid rate.
The interval is ``nextFundingTime - fundingTime`` (OKX's advice), never a constant.
"""

from __future__ import annotations

from typing import Any

from pipeline.simulator.derivatives import IndexTicker, Liquidation
from pipeline.simulator.funding import FundingNow, FundingSpec, Settlement
from pipeline.simulator.okx_frames import OkxInfo, fmt


def rate_str(x: float) -> str:
    """Funding rates: 16 fixed decimals like OKX (``"0.0001000000000000"``); no ``-0``."""
    return f"{x + 0.0:.16f}"


def cap_str(x: float) -> str:
    return fmt(x, 8)


def funding_rate_data(now: FundingNow, spec: FundingSpec) -> dict[str, str]:
    """A ``funding-rate`` push item and a ``GET /api/v5/public/funding-rate`` row."""
    interest = spec.interest_8h * now.interval_ms / (8 * spec.hour_ms)
    return {
        "formulaType": spec.formula,
        "fundingRate": rate_str(now.rate),
        "fundingTime": str(now.funding_time),
        "impactValue": spec.impact_value,
        "instId": now.inst_id,
        "instType": "SWAP",
        "interestRate": rate_str(interest),
        "maxFundingRate": cap_str(spec.cap),
        "method": spec.method,
        "minFundingRate": cap_str(-spec.cap),
        "nextFundingRate": "",
        "nextFundingTime": str(now.next_funding_time),
        "premium": rate_str(round(now.premium, 10)),
        "settFundingRate": rate_str(now.settled_rate),
        "settState": "settled",
        "ts": str(now.ts),
    }


def funding_history_row(s: Settlement, spec: FundingSpec) -> dict[str, str]:
    """One ``GET /api/v5/public/funding-rate-history`` row; ``realizedRate`` is what was paid."""
    return {
        "formulaType": spec.formula,
        "fundingRate": rate_str(s.rate),
        "fundingTime": str(s.funding_time),
        "instId": s.inst_id,
        "instType": "SWAP",
        "method": spec.method,
        "realizedRate": rate_str(s.rate),
    }


def open_interest_data(info: OkxInfo, oi: float, mark: float, ts: int) -> dict[str, str]:
    """``oi`` in contracts, ``oiCcy`` in the base (x ctVal), ``oiUsd`` at the mark price."""
    ccy = oi * (info.inst.contract_value or 1.0)
    return {
        "instId": info.inst.inst_id,
        "instType": info.inst_type,
        "oi": fmt(oi, info.sz_dec),
        "oiCcy": fmt(ccy, 8),
        "oiUsd": fmt(ccy * mark, 2),
        "ts": str(ts),
    }


def mark_price_data(info: OkxInfo, mark: float, ts: int) -> dict[str, str]:
    return {"instId": info.inst.inst_id, "instType": info.inst_type, "markPx": fmt(mark, info.px_dec), "ts": str(ts)}


def index_ticker_data(index_id: str, t: IndexTicker, dec: int) -> dict[str, str]:
    return {
        "instId": index_id,
        "idxPx": fmt(t.price, dec),
        "high24h": fmt(t.high_24h, dec),
        "sodUtc0": fmt(t.sod_utc0, dec),
        "open24h": fmt(t.open_24h, dec),
        "low24h": fmt(t.low_24h, dec),
        "sodUtc8": fmt(t.sod_utc8, dec),
        "ts": str(t.ts),
    }


def liquidation_data(info: OkxInfo, liqs: list[Liquidation]) -> dict[str, Any]:
    """One instrument's liquidations of a push, one detail each."""
    fam = info.inst.underlying or ""
    return {
        "details": [
            {
                "bkLoss": "0",
                "bkPx": fmt(x.price, info.px_dec),
                "ccy": "",
                "posSide": x.pos_side,
                "side": x.side,
                "sz": fmt(x.size, info.sz_dec),
                "ts": str(x.ts),
            }
            for x in liqs
        ],
        "instFamily": fam,
        "instId": info.inst.inst_id,
        "instType": "SWAP",
        "uly": fam,
    }
