"""The persistent stream flow: Prefect around ``pipeline.ingest.stream.run_stream``.

Cancelling the run (UI, ``prefect flow-run cancel``) sends SIGTERM; ``run_stream`` turns that into a
graceful stop inside the event loop, so every buffer is flushed before the process exits.

A run captures one shard (``shard``, see pipeline/shards.py) or, without it, every shard of the configuration;
either way it first takes each shard's global concurrency slot on a lease (flows/slots.py), so one shard is
captured by one collector, whichever worker runs it.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import asdict, replace
from uuid import UUID

from pipeline.ingest.memory import configure_allocators

configure_allocators()  # before deltalake, polars and pyarrow load: see pipeline/ingest/memory.py (issue #8)

from prefect import flow, get_run_logger, runtime  # noqa: E402
from prefect.artifacts import acreate_markdown_artifact  # noqa: E402
from prefect.events import emit_event  # noqa: E402
from prefect.states import Cancelled, State  # noqa: E402

from flows.slots import SlotBusy, held_slots, slot_name  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.ingest.collector import StreamStats  # noqa: E402
from pipeline.ingest.stream import run_stream  # noqa: E402
from pipeline.lake.location import resolve_lake  # noqa: E402
from pipeline.shards import stream_name  # noqa: E402


def _stats_markdown(stats: StreamStats, instruments: dict[str, list[str]] | None = None) -> str:
    rows = [(k, v) for k, v in asdict(stats).items() if k != "flush_errors"]
    table = "\n".join(f"| {k} | {v:,} |" for k, v in rows)
    head = "" if instruments is None else "".join(f"- **{v}**: {len(i)} instruments\n" for v, i in instruments.items())
    return f"# Stream\n{head}\n| counter | value |\n|---|---|\n{table}\n"


@flow(name="stream", log_prints=True)
async def stream_flow(
    lake: str | None = None,
    config_path: str | None = None,
    venues: list[str] | None = None,
    seconds: float | None = None,
    sim_ws_url: str | None = None,
    name: str | None = None,
    metrics_port: int | None = None,
    shard: str | None = None,
    lease_secs: float = 120.0,
    wait_for_slot_secs: float | None = None,
) -> dict[str, int] | State:
    """Capture one shard (``shard``) or every shard of the configuration into bronze until cancelled (or for
    ``seconds``).

    ``name`` overrides the collector name (the shard's is ``<stream.name>-<shard>``): it keys the exactly-once
    transactions, spool and restart state. The shards' slots are held on a lease of ``lease_secs`` (renewed
    every quarter; a dead holder's slot frees when it expires); a run whose shard is held elsewhere waits for
    it, or after ``wait_for_slot_secs`` ends Cancelled with the reason (no failure, so no restart).
    """
    config = load_config(config_path)
    if venues:
        config = replace(config, venues={v: config.venues[v] for v in venues})
    covered = [shard] if shard else [s.name for s in config.shard_list()]
    slots = [slot_name(stream_name(config.name, s)) for s in covered]
    if shard:
        config = config.for_shard(shard)
    if name:
        config = replace(config, name=name)
    target = resolve_lake(lake)
    stop = asyncio.Event()  # set by SIGTERM (run_stream) or by a lost lease (held_slots)
    log = get_run_logger()

    def on_stats(stats: StreamStats, line: str) -> None:
        # One event per stats interval: a coarse view in the UI, never a task run per message.
        print(f"stream stats: {line}")  # log_prints: shows in the run's logs
        emit_event(
            "cryptolake.stream.stats",
            resource={"prefect.resource.id": f"cryptolake.stream.{config.name}"},
            payload={k: v for k, v in asdict(stats).items() if k != "flush_errors"},
        )

    holder = UUID(runtime.flow_run.id) if runtime.flow_run.id else None
    try:
        async with held_slots(
            slots, lease_secs=lease_secs, wait_secs=wait_for_slot_secs, holder_run=holder, stop=stop, log=log
        ) as lease:
            run = await run_stream(
                target,
                config,
                sim_ws_url=sim_ws_url,
                seconds=seconds,
                stop=stop,
                on_stats=on_stats,
                metrics_port=metrics_port,
            )
    except SlotBusy as busy:
        log.warning("not started: %s", busy)
        return Cancelled(message=f"not started: {busy}")
    await acreate_markdown_artifact(
        # Prefect refuses a key with anything but lowercase letters, digits and dashes (a name like "Main_1")
        key="stream-" + re.sub(r"[^a-z0-9-]+", "-", config.name.lower()).strip("-"),
        markdown=_stats_markdown(run.stats, run.instruments),
        description=f"stream {config.name}: frames, rows, rejects, reconnects and flushes of the run",
    )
    if lease.lost:  # Failed, so the restart automation starts the shard again (it waits for the slot)
        raise RuntimeError(f"{', '.join(slots)}: the lease was lost ({lease.lost}); the collector flushed and stopped")
    return {k: v for k, v in asdict(run.stats).items() if isinstance(v, int)}
