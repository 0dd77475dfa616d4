"""The report of one backtest run: metrics.json, equity.png (strategy vs benchmark), report.html."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.backtest.strategy import BacktestOutcome

METRICS, PICTURE, PAGE = "metrics.json", "equity.png", "report.html"


def write_report(folder: Path, outcome: BacktestOutcome, config: dict[str, Any], title: str) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    doc = {
        "title": title,
        "start": str(outcome.start),
        "end": str(outcome.end),
        "metrics": outcome.metrics,
        "config": config,
    }
    (folder / METRICS).write_text(json.dumps(doc, indent=2, sort_keys=True, allow_nan=True) + "\n", "utf-8")
    _plot(folder / PICTURE, outcome, title)
    (folder / PAGE).write_text(_html(outcome, config, title), "utf-8")
    return {"metrics": folder / METRICS, "picture": folder / PICTURE, "page": folder / PAGE}


def equity_curves(outcome: BacktestOutcome) -> tuple[np.ndarray, np.ndarray]:
    """Compounded growth of 1 for the strategy (net of fees) and for the benchmark."""
    r = outcome.report
    return np.cumprod(1 + (r["return"] - r["cost"]).to_numpy()), np.cumprod(1 + r["bench"].to_numpy())


def _plot(path: Path, outcome: BacktestOutcome, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and workers
    import matplotlib.pyplot as plt

    strat, bench = equity_curves(outcome)
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=100)
    try:
        ax.plot(outcome.report.index, strat, label="strategy (net of fees)", color="#1f77b4")
        if outcome.funding is not None and "account_funded" in outcome.report:
            funded = outcome.report["account_funded"].to_numpy()
            start = strat[0] / funded[0] if funded[0] else 1.0
            ax.plot(outcome.report.index, funded * start, label="strategy (net of fees and funding)", color="#d62728")
        ax.plot(outcome.report.index, bench, label="benchmark", color="#888888", linestyle="--")
        ax.set_title(title.replace("$", r"\$"))  # "$close" is not mathtext
        ax.set_ylabel("growth of 1")
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
        fig.autofmt_xdate()
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)


def metrics_markdown(metrics: dict[str, float], title: str) -> str:
    rows = "\n".join(f"| {k} | {v:,.6g} |" for k, v in metrics.items())
    return f"# {title}\n\n| metric | value |\n|---|---|\n{rows}\n"


def _html(outcome: BacktestOutcome, config: dict[str, Any], title: str) -> str:
    metric_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{v:,.6g}</td></tr>" for k, v in outcome.metrics.items())
    config_rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in config.items()
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}th,td{{padding:.2em .8em;border-bottom:1px solid #ddd;text-align:left}}</style>
</head><body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(str(outcome.start))} to {html.escape(str(outcome.end))}</p>
<img src="{PICTURE}" alt="equity curve against the benchmark">
<h2>Metrics</h2><table>{metric_rows}</table>
{_funding_html(outcome)}
<h2>Configuration</h2><table>{config_rows}</table>
</body></html>
"""


def _funding_html(outcome: BacktestOutcome) -> str:
    """The strategy without and with funding side by side, and the settlements paid (perpetual positions)."""
    if outcome.compare is None or outcome.funding is None:
        return ""
    compare = outcome.compare
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in compare.columns)
    body = "".join(
        f"<tr><th>{html.escape(str(k))}</th>" + "".join(f"<td>{v:,.6g}</td>" for v in row) + "</tr>"
        for k, row in zip(compare.index, compare.to_numpy(), strict=True)
    )
    flows = outcome.funding.cashflows
    shown = flows.head(200)
    flow_rows = "".join(
        f"<tr><td>{html.escape(str(r.instrument))}</td><td>{html.escape(str(r.funding_time))}</td>"
        f"<td>{r.amount:,.6g}</td><td>{r.mark:,.6g}</td><td>{r.rate:.6g}</td><td>{r.payment:,.6g}</td></tr>"
        for r in shown.itertuples(index=False)
    )
    more = f"<p>{len(flows) - len(shown)} more in metrics.json's funding total.</p>" if len(flows) > len(shown) else ""
    return f"""<h2>Funding</h2>
<p>Perpetual positions pay (long, positive rate) or receive amount x price x rate at each settlement they are held
across (silver/funding). Booked after Qlib's run: the strategy's sizing does not see it.</p>
<table><tr><th></th>{head}</tr>{body}</table>
<h3>Settlements paid ({len(flows)}, total {outcome.funding.total:,.6g})</h3>
<table><tr><th>instrument</th><th>funding time</th><th>amount</th><th>price</th><th>rate</th><th>payment</th></tr>
{flow_rows}</table>{more}
"""
