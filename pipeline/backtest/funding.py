"""Funding on perpetual positions, charged after Qlib's backtest (issue #17).

Qlib's exchange model knows fees, not funding. Rather than patch its internals (an upgrade would silently drop
the patch), the backtest's holdings are replayed against the settled funding rates here: a position held at a
funding time pays (long, positive rate) or receives ``amount x mark price x rate`` at that time.

Timing: Qlib trades at a step's ``close`` price, i.e. at the end of the step's bar. A settlement at time ``T``
is paid by the holdings after the last step whose bar ended at or before ``T`` (a daily step trades at
24:00 and pays the 00:00 settlement that follows). The cash is booked beside Qlib's account: the strategy's
sizing does not see it, a second-order effect (funding x turnover) stated in the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import polars as pl

from pipeline.lake import writer
from pipeline.lake.location import Lake
from pipeline.lake.tables import SILVER_FUNDING

# Qlib's step lengths for the frequencies the backtest runs.
STEP = {"day": pd.Timedelta(days=1), "60min": pd.Timedelta(hours=1), "1min": pd.Timedelta(minutes=1)}


@dataclass(frozen=True)
class FundingCharge:
    cashflows: pd.DataFrame  # one row per settlement paid: instrument, funding_time, amount, mark, rate, payment
    per_step: pd.Series  # payments booked to each step (by the step's timestamp), 0 where none

    @property
    def total(self) -> float:
        return float(self.cashflows["payment"].sum()) if len(self.cashflows) else 0.0


def charge_funding(
    holdings: Mapping[pd.Timestamp, Mapping[str, float]],
    settlements: pd.DataFrame,
    marks: pd.DataFrame,
    freq: str,
) -> FundingCharge:
    """The funding each settlement costs the positions held at its time.

    ``holdings``: step -> instrument code -> amount held after the step (Qlib's positions).
    ``settlements``: columns instrument (Qlib code), funding_time (UTC), rate.
    ``marks``: columns instrument, funding_time, mark (the price the settlement is charged at; a held position
    with no mark is an error, never a silent zero).
    A payment is negative when the account pays.
    """
    steps = sorted(pd.Timestamp(t) for t in holdings)
    per_step = pd.Series(0.0, index=pd.DatetimeIndex(steps), dtype=float)
    columns = ["instrument", "funding_time", "amount", "mark", "rate", "payment", "step"]
    if not steps or settlements.empty:
        return FundingCharge(pd.DataFrame(columns=columns), per_step)
    bar_end = np.array([_naive(t + STEP[freq]) for t in steps], dtype="datetime64[ns]")
    marked = settlements.merge(
        marks[["instrument", "funding_time", "mark"]], on=["instrument", "funding_time"], how="left"
    )
    rows = []
    for inst, when, rate, mark in marked[["instrument", "funding_time", "rate", "mark"]].itertuples(index=False):
        t = np.datetime64(_naive(pd.Timestamp(when)), "ns")
        i = int(np.searchsorted(bar_end, t, side="right")) - 1  # last step whose bar ended at or before T
        if i < 0 or i >= len(steps) - 1:
            continue  # before the first trade, or after the last step: no holding period of the backtest holds it
        amount = float(holdings[steps[i]].get(inst, 0.0))
        if amount == 0.0:
            continue
        if mark is None or not np.isfinite(mark):
            raise ValueError(f"no mark price for {inst} at {when}: funding cannot be charged")
        payment = -amount * float(mark) * float(rate)
        # Booked to the next step: its report row is the P&L of holding over its bar, where T falls.
        book_at = steps[i + 1]
        per_step[book_at] += payment
        rows.append((inst, pd.Timestamp(when), amount, float(mark), float(rate), payment, book_at))
    return FundingCharge(pd.DataFrame(rows, columns=columns), per_step)


def with_funding(report: pd.DataFrame, charge: FundingCharge, initial_account: float) -> pd.DataFrame:
    """Qlib's report with the funding columns: ``funding`` (cash this step), ``account_funded`` (account plus the
    funding paid so far) and ``return_funded`` (its step return, net of fees and funding)."""
    out = report.copy()
    paid = charge.per_step.reindex(out.index, fill_value=0.0)
    out["funding"] = paid.to_numpy()
    out["account_funded"] = out["account"] + paid.cumsum().to_numpy()
    out["return_funded"] = out["account_funded"] / out["account_funded"].shift(1).fillna(initial_account) - 1
    return out


def side_by_side(funded: pd.DataFrame, initial_account: float, days: int) -> pd.DataFrame:
    """The strategy without and with funding, by the same formulas (Qlib's: annualised = mean step return x N)."""
    columns = {}
    for label, account in (("without funding", funded["account"]), ("with funding", funded["account_funded"])):
        step = account / account.shift(1).fillna(initial_account) - 1
        growth = account / initial_account
        columns[label] = {
            "total_return": float(growth.iloc[-1] - 1),
            "annualized_return": float(step.mean() * days),
            "max_drawdown": float((growth / growth.cummax() - 1).min()),
            "final_account": float(account.iloc[-1]),
        }
    return pd.DataFrame(columns)


def load_settlements(lake: Lake, codes: list[str], start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """silver/funding's settlements of ``codes`` (Qlib codes: upper-cased instrument names) in [start, end]."""
    table = writer.open_table(lake, SILVER_FUNDING)
    if table is None:
        return pd.DataFrame({"instrument": [], "funding_time": [], "rate": []})
    frame = pl.DataFrame(table.to_pyarrow_table(columns=["instrument", "funding_time", "funding_rate"]))
    wanted = {c.upper() for c in codes}
    lo, hi = _naive(start), _naive(end + pd.Timedelta(days=1))
    frame = frame.with_columns(
        pl.col("instrument").str.to_uppercase(), pl.col("funding_time").dt.replace_time_zone(None)
    ).filter(pl.col("instrument").is_in(list(wanted)) & pl.col("funding_time").is_between(lo, hi))
    out = frame.rename({"funding_rate": "rate"}).sort("instrument", "funding_time").to_pandas()
    return out[["instrument", "funding_time", "rate"]]


def marks_at(settlements: pd.DataFrame, closes: pd.Series, freq: str) -> pd.DataFrame:
    """The price each settlement is charged at: the close of the bar that ended at or before it (the price the
    position was last valued at), from ``closes`` indexed (instrument, datetime) as Qlib's ``D.features`` gives."""
    rows = []
    for inst, when in settlements[["instrument", "funding_time"]].itertuples(index=False):
        try:
            series = closes.xs(inst, level=0).dropna()
        except KeyError:
            rows.append((inst, when, np.nan))
            continue
        ends = series.index + STEP[freq]
        done = series[ends <= _naive(pd.Timestamp(when))]
        rows.append((inst, when, float(done.iloc[-1]) if len(done) else np.nan))
    return pd.DataFrame(rows, columns=["instrument", "funding_time", "mark"])


def _naive(t: pd.Timestamp) -> pd.Timestamp:
    """UTC wall time without a zone: Qlib's calendar is naive UTC."""
    t = pd.Timestamp(t)
    return t.tz_convert("UTC").tz_localize(None) if t.tzinfo is not None else t


def qlib_closes(codes: list[str], freq: str) -> pd.Series:
    """``$close`` of ``codes`` from the Qlib dataset the backtest ran on (Qlib already initialised)."""
    from qlib.data import D

    frame = D.features(codes, ["$close"], freq=freq)
    return frame.iloc[:, 0]


def funding_for(
    lake: Lake, holdings: Mapping[pd.Timestamp, Mapping[str, float]], start: pd.Timestamp, end: pd.Timestamp, freq: str
) -> FundingCharge:
    """What the backtest's positions paid and received in funding, from silver/funding."""
    codes = sorted({code for held in holdings.values() for code in held})
    settlements = load_settlements(lake, codes, start, end)
    if settlements.empty:
        return charge_funding(holdings, settlements, pd.DataFrame(columns=["instrument", "funding_time", "mark"]), freq)
    marks = marks_at(settlements, qlib_closes(sorted(set(settlements["instrument"])), freq), freq)
    return charge_funding(holdings, settlements, marks, freq)
