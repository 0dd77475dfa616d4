"""Run the stream: resolve configuration into connections, start the simulator if asked, run the collector
until stopped (signal, deadline or an external event), and report. The CLI and the Prefect flow both call
``run_stream``; neither has logic of its own."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from pipeline.config import SIM, UNIVERSE, StreamConfig, VenueStreamConfig
from pipeline.errors import ConfigError
from pipeline.ingest.collector import Collector
from pipeline.ingest.instruments import resolve_instruments
from pipeline.ingest.plan import ConnectionPlan, plan_connections
from pipeline.ingest.stats import StreamStats
from pipeline.lake.location import Lake
from pipeline.venues import get_venue

log = logging.getLogger(__name__)


@dataclass
class StreamRun:
    stats: StreamStats
    connections: int
    instruments: dict[str, list[str]]
    spool_dir: Path


def default_spool_dir(lake: Lake, name: str) -> Path:
    """Local spool for one collector. Beside a local lake (outside it, so a lake folder that turned
    read-only does not take the spool with it); under the user cache for object-store lakes."""
    if lake.is_local:
        root = Path(lake.root.removeprefix("file://"))
        return root.parent / f".{root.name}-spool" / name
    digest = hashlib.sha1(lake.root.encode()).hexdigest()[:12]
    return Path.home() / ".cache" / "cryptolake" / "spool" / digest / name


@contextlib.contextmanager
def simulator_if_needed(config: StreamConfig, sim_ws_url: str | None) -> Iterator[str | None]:
    """Start the embedded simulator in a thread when a venue's url is "sim" and none was given."""
    needs = any(v.url == SIM for v in config.venues.values())
    if not needs or sim_ws_url is not None:
        yield sim_ws_url
        return
    from pipeline.simulator import SimConfig, SimulatorThread

    sim = SimulatorThread(SimConfig(port=0))
    port = sim.start()
    try:
        yield f"ws://127.0.0.1:{port}"
    finally:
        sim.stop()


def _universe(lake: Lake, cfg: VenueStreamConfig) -> list[str]:
    from pipeline.universe import current_universe

    names = current_universe(lake, cfg.venue)
    if not names:
        raise ConfigError(
            f"stream.{cfg.venue}.instruments",
            'is "universe" but silver/instruments has no active row',
            "run `cryptolake universe` first",
        )
    return names + [n for n in cfg.extra if n not in names]


def _base(cfg: VenueStreamConfig, sim_ws_url: str | None) -> str:
    base = sim_ws_url if cfg.url == SIM else cfg.url
    assert base is not None, "simulator URL missing"
    return base


def build_plans(
    config: StreamConfig, sim_ws_url: str | None, lake: Lake | None = None
) -> tuple[list[ConnectionPlan], dict[str, list[str]]]:
    plans: list[ConnectionPlan] = []
    chosen: dict[str, list[str]] = {}
    for venue_name, cfg in config.venues.items():
        venue = get_venue(venue_name)
        base = _base(cfg, sim_ws_url)
        if cfg.instruments == UNIVERSE:
            assert lake is not None, "the universe lives in the lake"
            instruments = _universe(lake, cfg)
        else:
            instruments = resolve_instruments(cfg, base)
        chosen[venue_name] = instruments
        plans += plan_connections(venue, base, instruments, cfg.channels, config.settings.channels_per_connection)
    return plans, chosen


async def _follow_universe(
    lake: Lake, config: StreamConfig, collector: Collector, sim_ws_url: str | None, stop: asyncio.Event
) -> None:
    """Re-read silver/instruments every ``universe_poll_secs``; the collector subscribes what joined and
    unsubscribes what left (expired, delisted, out of the top N) without a restart."""
    followed = {v: c for v, c in config.venues.items() if c.instruments == UNIVERSE}
    per_conn = config.settings.channels_per_connection
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=config.settings.universe_poll_secs)
            return
        except TimeoutError:
            pass
        for venue_name, cfg in followed.items():
            try:
                wanted = await asyncio.to_thread(_universe, lake, cfg)
            except Exception as exc:  # noqa: BLE001 - a failed read keeps the current subscriptions
                log.warning("universe of %s not re-read (%s); keeping the current instruments", venue_name, exc)
                continue
            venue = get_venue(venue_name)
            base = _base(cfg, sim_ws_url)
            new_plans = partial(plan_connections, venue, base, channels=cfg.channels, channels_per_connection=per_conn)
            await collector.follow(venue_name, wanted, new_plans)


async def run_stream(
    lake: Lake,
    config: StreamConfig,
    *,
    sim_ws_url: str | None = None,
    seconds: float | None = None,
    stop: asyncio.Event | None = None,
    record_dir: Path | None = None,
    spool_dir: Path | None = None,
    handle_signals: bool = True,
    on_stats: Callable[[StreamStats, str], Any] | None = None,
    metrics_port: int | None = None,
) -> StreamRun:
    """Stream until SIGINT/SIGTERM, ``stop``, or ``seconds`` elapsed; every buffer is flushed on the way out.
    ``metrics_port`` serves the collector's counters for Prometheus on 127.0.0.1 (0 = any free port)."""
    stop = stop or asyncio.Event()
    spool = spool_dir or default_spool_dir(lake, config.name)
    with simulator_if_needed(config, sim_ws_url) as ws_url:
        plans, instruments = build_plans(config, ws_url, lake)
        collector = Collector(
            lake,
            plans,
            settings=config.settings,
            spool_dir=spool,
            name=config.name,
            record_dir=record_dir,
            on_stats=on_stats,
        )
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(sig, stop.set)
                    installed.append(sig)
        timer = loop.call_later(seconds, stop.set) if seconds else None
        log.info(
            "streaming %s over %d connections into %s",
            ", ".join(f"{v}: {len(i)} instruments" for v, i in instruments.items()),
            len(plans),
            lake.root,
        )
        metrics = None
        if metrics_port is not None:
            from pipeline.ingest.metrics import start_metrics_server

            metrics = start_metrics_server(collector, metrics_port)
            log.info("metrics on http://127.0.0.1:%d/metrics", metrics.server_port)
        follower = (
            asyncio.create_task(_follow_universe(lake, config, collector, ws_url, stop), name="universe")
            if any(c.instruments == UNIVERSE for c in config.venues.values())
            else None
        )
        try:
            stats = await collector.run(stop)
        finally:
            if metrics is not None:
                metrics.shutdown()
            if follower is not None:
                follower.cancel()
                await asyncio.gather(follower, return_exceptions=True)
            if timer:
                timer.cancel()
            for sig in installed:
                loop.remove_signal_handler(sig)
    return StreamRun(stats=stats, connections=len(plans), instruments=instruments, spool_dir=spool)
