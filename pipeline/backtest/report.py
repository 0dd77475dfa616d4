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
<h2>Configuration</h2><table>{config_rows}</table>
</body></html>
"""
