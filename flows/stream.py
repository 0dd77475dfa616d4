"""The persistent stream flow: Prefect around ``pipeline.ingest.stream.run_stream``.

Cancelling the run (UI, ``prefect flow-run cancel``) sends SIGTERM; ``run_stream`` turns that into a
graceful stop inside the event loop, so every buffer is flushed before the process exits.
"""

from __future__ import annotations

import re
from dataclasses import asdict, replace

from pipeline.ingest.memory import configure_allocators

configure_allocators()  # before deltalake, polars and pyarrow load: see pipeline/ingest/memory.py (issue #8)

from prefect import flow  # noqa: E402
from prefect.artifacts import acreate_markdown_artifact  # noqa: E402
from prefect.events import emit_event  # noqa: E402

from pipeline.config import load_config  # noqa: E402
from pipeline.ingest.collector import StreamStats  # noqa: E402
from pipeline.ingest.stream import run_stream  # noqa: E402
from pipeline.lake.location import resolve_lake  # noqa: E402


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
) -> dict[str, int]:
    """Capture trades and quotes into bronze until cancelled (or for ``seconds``).

    ``name`` overrides the config's collector name: two runs writing one lake (one per venue, say) need
    different names, because the name keys their exactly-once transactions, spool and restart state.
    """
    config = load_config(config_path)
    if venues or name:
        config = replace(
            config,
            name=name or config.name,
            venues={v: config.venues[v] for v in venues} if venues else config.venues,
        )
    target = resolve_lake(lake)

    def on_stats(stats: StreamStats, line: str) -> None:
        # One event per stats interval: a coarse view in the UI, never a task run per message.
        print(f"stream stats: {line}")  # log_prints: shows in the run's logs
        emit_event(
            "cryptolake.stream.stats",
            resource={"prefect.resource.id": f"cryptolake.stream.{config.name}"},
            payload={k: v for k, v in asdict(stats).items() if k != "flush_errors"},
        )

    run = await run_stream(
        target, config, sim_ws_url=sim_ws_url, seconds=seconds, on_stats=on_stats, metrics_port=metrics_port
    )
    await acreate_markdown_artifact(
        # Prefect refuses a key with anything but lowercase letters, digits and dashes (a name like "Main_1")
        key="stream-" + re.sub(r"[^a-z0-9-]+", "-", config.name.lower()).strip("-"),
        markdown=_stats_markdown(run.stats, run.instruments),
        description=f"stream {config.name}: frames, rows, rejects, reconnects and flushes of the run",
    )
    return {k: v for k, v in asdict(run.stats).items() if isinstance(v, int)}
