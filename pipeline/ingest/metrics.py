"""Prometheus metrics for a running stream, on 127.0.0.1 only.

``start_metrics_server(collector, port)`` serves ``/metrics`` with the collector's state read at scrape time
(nothing to update from the hot path, so the capture pays nothing between scrapes). Every series carries
the collector's name as ``stream``:

- one ``cryptolake_stream_<counter>_total`` per ``StreamStats`` counter;
- per venue: ``cryptolake_stream_venue_frames_total``, ``cryptolake_stream_venue_reconnects_total`` (from
  the connections' own counts), ``cryptolake_stream_unsettled_gaps`` (gaps detected, not yet written: a late
  trade may still close them);
- per venue and table: ``cryptolake_stream_rows_total`` (rows flushed: committed, or spooled when the lake
  refused them; ``table="bronze/rejects"`` are the rejects, ``"bronze/gaps"`` the gaps recorded);
- per venue: ``cryptolake_stream_venue_book_breaks_total`` (by ``kind``: chain, checksum, crossed) and
  ``cryptolake_stream_venue_book_resyncs_total`` (order books, ``pipeline.ingest.book_sync``);
- ``cryptolake_stream_flush_seconds`` (histogram: decode, gap check and commits of one flush);
- gauges: buffered rows, buffer capacity and fill ratio, spool bytes and files, resident memory, connections
  up and planned, seconds since the last flush and since the last commit (since the start before the first).

deployments/grafana/ holds the dashboard over these and a Prometheus scrape configuration for
``DEFAULT_METRICS_PORT``. prometheus_client ships with Prefect; it is imported lazily so the stream works
without it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from pipeline.ingest.collector import Collector

DEFAULT_METRICS_PORT = 9108  # what deployments/grafana/prometheus.yml scrapes


def rss_bytes() -> float:
    """This process's resident memory (Linux /proc; NaN elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return float(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, IndexError):
        return float("nan")


def _spool_usage(collector: Collector) -> tuple[int, int]:
    """(bytes, files) of flushes waiting in the spool; a file replayed meanwhile counts as gone."""
    size = files = 0
    for _, _, path in collector.spool.pending():
        try:
            size += path.stat().st_size
            files += 1
        except FileNotFoundError:
            pass
    return size, files


def _per_venue(collector: Collector) -> Iterator[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    labels, stream = ["stream", "venue"], collector.name
    frames = CounterMetricFamily("cryptolake_stream_venue_frames", "WebSocket frames received per venue", labels=labels)
    reconnects = CounterMetricFamily(
        "cryptolake_stream_venue_reconnects", "connections opened again after a drop, per venue", labels=labels
    )
    by_venue: dict[str, list[int]] = {}
    for c in list(collector.connections):
        counts = by_venue.setdefault(c.venue_name, [0, 0])
        counts[0] += c.frames
        counts[1] += max(0, c.connects - 1)
    for venue, (n_frames, n_reconnects) in sorted(by_venue.items()):
        frames.add_metric([stream, venue], n_frames)
        reconnects.add_metric([stream, venue], n_reconnects)
    gaps = GaugeMetricFamily(
        "cryptolake_stream_unsettled_gaps",
        "gaps detected and not yet written (a late trade may close them)",
        labels=labels,
    )
    for venue, detector in sorted(collector.detectors.items()):
        gaps.add_metric([stream, venue], len(detector.pending))
    rows = CounterMetricFamily(
        "cryptolake_stream_rows",
        "rows flushed per venue and bronze table (committed, or spooled when the lake refused them)",
        labels=["stream", "venue", "table"],
    )
    for (venue, table), n in sorted(collector.flush_stats.rows.items()):
        rows.add_metric([stream, venue, table], n)
    yield from (frames, reconnects, gaps, rows)
    yield from _book_metrics(collector)


def _book_metrics(collector: Collector) -> Iterator[Any]:
    """Order-book breaks recorded per venue and kind (chain, checksum, crossed), books resynchronised per venue."""
    from prometheus_client.core import CounterMetricFamily

    stream, sync = collector.name, collector.book_sync
    breaks = CounterMetricFamily(
        "cryptolake_stream_venue_book_breaks",
        "order-book breaks recorded in bronze/gaps (kind book) per venue and what broke",
        labels=["stream", "venue", "kind"],
    )
    for (venue, kind), n in sorted(sync.breaks.items()):
        breaks.add_metric([stream, venue, kind], n)
    resyncs = CounterMetricFamily(
        "cryptolake_stream_venue_book_resyncs",
        "order books resynchronised after a break, per venue",
        labels=["stream", "venue"],
    )
    for venue, n in sorted(sync.resyncs.items()):
        resyncs.add_metric([stream, venue], n)
    yield from (breaks, resyncs)


def _metrics(collector: Collector) -> Iterator[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

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
    yield from _per_venue(collector)
    fs = collector.flush_stats
    hist = HistogramMetricFamily(
        "cryptolake_stream_flush_seconds", "duration of a flush: decode, gap check and commits", labels=labels
    )
    hist.add_metric(name, fs.cumulative_buckets(), fs.flush_seconds_sum)
    yield hist
    now_ms = time.time_ns() // 1_000_000
    buffered, capacity = collector.buffered_rows(), collector.settings.max_buffer_rows
    spool_bytes, spool_files = _spool_usage(collector)
    gauges = {
        "cryptolake_stream_buffered_rows": ("rows waiting for the next flush", buffered),
        "cryptolake_stream_buffer_capacity_rows": ("rows at which the readers pause (max_buffer_rows)", capacity),
        "cryptolake_stream_buffer_fill_ratio": ("buffered rows / max_buffer_rows", buffered / max(1, capacity)),
        "cryptolake_stream_spool_bytes": ("bytes of flushes the lake refused, waiting for replay", spool_bytes),
        "cryptolake_stream_spool_files": ("table files of flushes waiting in the spool", spool_files),
        "cryptolake_stream_rss_bytes": ("resident memory of the stream process", rss_bytes()),
        "cryptolake_stream_connections_up": (
            "connections currently open",
            sum(1 for c in collector.connections if c.connected),
        ),
        "cryptolake_stream_connections": ("connections planned", len(collector.connections)),
        "cryptolake_stream_seconds_since_flush": (
            "seconds since the last flush (NaN before the first)",
            float("nan") if collector.last_flush_ms is None else time.time() - collector.last_flush_ms / 1000,
        ),
        "cryptolake_stream_seconds_since_commit": (
            "seconds since a flush last committed to the lake (since the stream started, before the first)",
            fs.seconds_since_commit(now_ms),
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
