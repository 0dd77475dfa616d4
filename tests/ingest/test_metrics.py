"""The stream's Prometheus endpoint reports the live StreamStats of a real collector."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from pipeline.ingest.collector import Collector
from pipeline.ingest.metrics import start_metrics_server


def _scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("cryptolake_") and 'stream="m1"' in line:
            key, value = line.rsplit(" ", 1)
            out[key.split("{")[0]] = float(value)
    return out


def test_metrics_follow_the_collector_stats(lake, tmp_path: Path) -> None:
    collector = Collector(lake, [], spool_dir=tmp_path / "spool", name="m1")
    server = start_metrics_server(collector, 0)
    try:
        assert server.server_address[0] == "127.0.0.1"
        port = server.server_port
        before = _scrape(port)
        assert before["cryptolake_stream_trades_total"] == 0 and before["cryptolake_stream_connections"] == 0
        collector.stats.trades += 42
        collector.stats.reconnects += 3
        after = _scrape(port)
        assert after["cryptolake_stream_trades_total"] == 42 and after["cryptolake_stream_reconnects_total"] == 3
        assert "cryptolake_stream_seconds_since_flush" in after
    finally:
        server.shutdown()
        server.server_close()


def test_run_stream_serves_metrics_while_streaming(lake, tmp_path) -> None:
    """The runner's metrics_port: a Prometheus scrape during the run shows the live counters."""
    import asyncio
    import socket
    import urllib.request

    from pipeline.ingest.stream import run_stream
    from pipeline.simulator import SimulatorThread
    from tests.ingest.streamkit import sim_config, stream_config

    with socket.socket() as probe:  # a free loopback port for the metrics server
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    scraped: list[str] = []
    with SimulatorThread(sim_config()) as sim:

        async def main():
            stop = asyncio.Event()
            task = asyncio.create_task(
                run_stream(
                    lake,
                    stream_config(deribit=()),
                    sim_ws_url=f"ws://127.0.0.1:{sim.port}",
                    stop=stop,
                    spool_dir=tmp_path / "s",
                    handle_signals=False,
                    metrics_port=port,
                )
            )
            await asyncio.sleep(2.5)
            url = f"http://127.0.0.1:{port}/metrics"
            scraped.append(await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode()))
            stop.set()
            return await task

        run = asyncio.run(main())
    assert run.stats.frames > 0
    frames_line = next(line for line in scraped[0].splitlines() if line.startswith("cryptolake_stream_frames"))
    assert float(frames_line.split()[-1]) > 0
