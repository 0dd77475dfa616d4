"""deployments/grafana: every metric and label the dashboard's PromQL uses is one a running stream exports
(scraped over loopback from a real stream against the simulator), and prometheus.yml scrapes the port the
stream serves on."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from pipeline.ingest.metrics import DEFAULT_METRICS_PORT

GRAFANA = Path(__file__).resolve().parents[2] / "deployments" / "grafana"
_NAME = r"[A-Za-z_:][A-Za-z0-9_:]*"
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_SELECTOR = re.compile(rf"({_NAME})\s*\{{([^}}]*)\}}")
_MATCHER = re.compile(rf"({_NAME})\s*(?:=~|!~|!=|=)")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}


def promql_uses(expr: str) -> tuple[dict[str, set[str]], set[str]]:
    """(metric -> labels its own selector matches on, labels of the by/without/on clauses) of one expression.
    Metric names are identifiers followed by ``{`` or ``[`` or standing bare; function names are followed
    by ``(``; string literals, Grafana variables and range durations are not names."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values may hold anything
    e = re.sub(r"\$\{?\w+\}?", "", e)  # $stream, $__rate_interval
    grouping = {x.strip() for m in _GROUPING.finditer(e) for x in m.group(1).split(",") if x.strip()}
    e = _GROUPING.sub(" ", e)
    metrics: dict[str, set[str]] = {}
    for m in _SELECTOR.finditer(e):
        metrics.setdefault(m.group(1), set()).update(_MATCHER.findall(m.group(2)))
    e = _SELECTOR.sub(" ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)  # range selectors: [5m]
    for m in re.finditer(rf"({_NAME})\s*(\()?", e):
        name, call = m.group(1), m.group(2)
        if not call and name not in _KEYWORDS:
            metrics.setdefault(name, set())
    return metrics, grouping


def _queries(node: Any) -> Iterator[str]:
    """Every PromQL string of the dashboard: panel targets' ``expr`` and the query variables."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            elif key == "query" and node.get("type") == "query":
                yield value["query"] if isinstance(value, dict) else value
            else:
                yield from _queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from _queries(item)


def _label_values(query: str) -> str:
    """``label_values(metric, label)`` (a Grafana variable query) as the PromQL ``metric`` by (label)."""
    m = re.fullmatch(rf"label_values\(\s*({_NAME})\s*,\s*({_NAME})\s*\)", query.strip())
    return f"count by ({m.group(2)}) ({m.group(1)})" if m else query


def test_the_promql_parser_tells_metrics_functions_and_labels_apart() -> None:
    metrics, grouping = promql_uses(
        'histogram_quantile(0.95, sum by (stream, le) (rate(a_bucket{stream=~"$stream", x!="y{z}"}[$__rate_interval])))'
        " / ignoring(q) b_total + c"
    )
    assert metrics == {"a_bucket": {"stream", "x"}, "b_total": set(), "c": set()}
    assert grouping == {"stream", "le", "q"}


def _scrape_running_stream(lake, tmp_path: Path) -> tuple[str, int]:  # noqa: ANN001
    from pipeline.ingest.stream import run_stream
    from pipeline.simulator import SimulatorThread
    from tests.ingest.streamkit import sim_config, stream_config

    with socket.socket() as probe:  # a free loopback port for this test's stream
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/metrics"
    with SimulatorThread(sim_config()) as sim:

        async def main() -> tuple[str, Any]:
            stop = asyncio.Event()
            task = asyncio.create_task(
                run_stream(
                    lake,
                    stream_config(),
                    sim_ws_url=f"ws://127.0.0.1:{sim.port}",
                    stop=stop,
                    spool_dir=tmp_path / "spool",
                    handle_signals=False,
                    metrics_port=port,
                )
            )
            text = ""
            for _ in range(40):  # until a flush of both venues' trades shows (20 s at most)
                await asyncio.sleep(0.5)
                text = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())
                if text.count('cryptolake_stream_rows_total{stream="test",table="bronze/trades"') >= 2:
                    break
            stop.set()
            return text, await task

        text, run = asyncio.run(main())
    return text, run.stats.trades


def test_every_metric_and_label_the_dashboard_queries_is_exported(lake, tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    text, trades_at_end = _scrape_running_stream(lake, tmp_path)
    exported: dict[str, set[str]] = {}
    values: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            exported.setdefault(s.name, set()).update(s.labels)
            values.setdefault(s.name, []).append((s.labels, s.value))

    dashboard = json.loads((GRAFANA / "cryptolake-stream.json").read_text())
    assert dashboard["schemaVersion"] >= 39
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert all(p["targets"] and p["datasource"]["uid"] == "${datasource}" for p in dashboard["panels"])
    queries = [_label_values(q) for q in _queries(dashboard)]
    assert len(queries) >= len(dashboard["panels"]) + 1
    used: set[str] = set()
    for query in queries:
        metrics, grouping = promql_uses(query)
        assert metrics, f"no metric found in {query!r}"
        for metric, labels in metrics.items():
            assert metric in exported, f"{metric} (in {query!r}) is not exported"
            assert labels <= exported[metric], f"{metric} has no label {labels - exported[metric]} ({query!r})"
        available = set().union(*(exported[m] for m in metrics))
        assert grouping <= available, f"{query!r} groups by {grouping - available}, which its metrics lack"
        used |= metrics.keys()
    # the panels the issue asks for are there
    for metric in (
        "cryptolake_stream_venue_frames_total",
        "cryptolake_stream_rows_total",
        "cryptolake_stream_venue_reconnects_total",
        "cryptolake_stream_unsettled_gaps",
        "cryptolake_stream_flush_seconds_bucket",
        "cryptolake_stream_buffer_fill_ratio",
        "cryptolake_stream_spool_bytes",
        "cryptolake_stream_rss_bytes",
        "cryptolake_stream_seconds_since_commit",
    ):
        assert metric in used, f"the dashboard does not show {metric}"

    # the values are the stream's own: rows by real venue and table, a flush measured, memory read
    rows = {(lb["venue"], lb["table"]): v for lb, v in values["cryptolake_stream_rows_total"]}
    trades = {venue: v for (venue, table), v in rows.items() if table == "bronze/trades"}
    assert set(trades) == {"okx", "deribit"} and all(v > 0 for v in trades.values())
    assert sum(trades.values()) <= trades_at_end
    assert {venue for venue, _ in rows} <= {"okx", "deribit"}
    frames = {lb["venue"]: v for lb, v in values["cryptolake_stream_venue_frames_total"]}
    assert set(frames) == {"okx", "deribit"} and all(v > 0 for v in frames.values())
    ((_, flushes),) = values["cryptolake_stream_flush_seconds_count"]
    assert flushes >= 1
    ((_, rss),) = values["cryptolake_stream_rss_bytes"]
    assert rss > 10e6
    ((_, since_commit),) = values["cryptolake_stream_seconds_since_commit"]
    assert 0 <= since_commit < 60


def test_prometheus_scrapes_the_port_the_stream_serves_on() -> None:
    from pipeline.cli import build_parser

    config = yaml.safe_load((GRAFANA / "prometheus.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "cryptolake-stream"]
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == [f"127.0.0.1:{DEFAULT_METRICS_PORT}"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    # `cryptolake stream --metrics-port` alone serves on that port
    args = build_parser().parse_args(["stream", "--metrics-port"])
    assert args.metrics_port == DEFAULT_METRICS_PORT


def test_flush_stats_histogram_and_commit_age() -> None:
    from pipeline.ingest.stats import FlushStats

    fs = FlushStats(started_ms=1_000)
    assert fs.seconds_since_commit(4_000) == 3.0  # no commit yet: since the start
    fs.add({("okx", "bronze/trades"): 5}, 0.03, True, 10_000)
    fs.add({("okx", "bronze/trades"): 2, ("okx", "bronze/rejects"): 1}, 100.0, False, 20_000)  # spooled: no commit
    assert fs.rows == {("okx", "bronze/trades"): 7, ("okx", "bronze/rejects"): 1}
    buckets = dict(fs.cumulative_buckets())
    assert buckets["0.025"] == 0 and buckets["0.05"] == 1 and buckets["30.0"] == 1 and buckets["+Inf"] == 2
    assert fs.flush_seconds_sum == 100.03 and fs.seconds_since_commit(25_000) == 15.0


def test_venue_rows_reads_each_tables_venue_field() -> None:
    from pipeline.ingest.stats import venue_rows

    rows = venue_rows(
        {
            "bronze/trades": (0, [("okx", 1), ("okx", 2), ("deribit", 3)]),
            "bronze/gaps": (1, [("okx|X|seq|1", "okx")]),
            "bronze/other": (-1, [(1,), (2,)]),
        }
    )
    assert rows == {
        ("okx", "bronze/trades"): 2,
        ("deribit", "bronze/trades"): 1,
        ("okx", "bronze/gaps"): 1,
        ("", "bronze/other"): 2,
    }
