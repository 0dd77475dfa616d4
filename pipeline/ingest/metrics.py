"""Prometheus metrics for a running stream, on 127.0.0.1 only.

``start_metrics_server(collector, port)`` serves ``/metrics`` with the collector's ``StreamStats`` read
at scrape time (nothing to update from the hot path, so the capture pays nothing between scrapes):
one ``cryptolake_stream_<counter>_total`` per counter, plus buffered rows, connections up and the
seconds since the last flush. Every series carries the collector's name as ``stream``.

prometheus_client ships with Prefect; it is imported lazily so the stream works without it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from pipeline.ingest.collector import Collector


def _metrics(collector: Collector) -> Iterator[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    from pipeline.ingest.stats import StreamStats

    labels = ["stream"]
    name = [collector.name]
    for f in fields(StreamStats):
        value = getattr(collector.stats, f.name)
        if isinstance(value, int):
            c = CounterMetricFamily(
                f"cryptolake_stream_{f.name}", f"StreamStats.{f.name} since the stream started", labels=labels
            )
            c.add_metric(name, value)
            yield c
    gauges = {
        "cryptolake_stream_buffered_rows": ("rows waiting for the next flush", collector.buffered_rows()),
        "cryptolake_stream_connections_up": (
            "connections currently open",
            sum(1 for c in collector.connections if c.connected),
        ),
        "cryptolake_stream_connections": ("connections planned", len(collector.connections)),
        "cryptolake_stream_seconds_since_flush": (
            "seconds since the last flush (NaN before the first)",
            float("nan") if collector.last_flush_ms is None else time.time() - collector.last_flush_ms / 1000,
        ),
    }
    for metric, (doc, value) in gauges.items():
        g = GaugeMetricFamily(metric, doc, labels=labels)
        g.add_metric(name, float(value))
        yield g


class _StatsCollector:
    """A prometheus_client custom collector: reads the live stats on every scrape."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    def collect(self) -> Iterator[Any]:
        return _metrics(self.collector)


def start_metrics_server(collector: Collector, port: int) -> WSGIServer:
    """Serve the collector's metrics on http://127.0.0.1:``port``/metrics (0 = any free port; read the
    bound port from ``server.server_port``). Stop with ``server.shutdown()``."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StatsCollector(collector))
    server, _thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    return server
