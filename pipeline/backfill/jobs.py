"""Run a backfill plan: fetch each chunk over REST, write it to bronze exactly once, checkpoint, report.

Exactly once, resumable: chunk k of an instrument is committed to its bronze table with the Delta
application transaction ``(plan.app_id(instrument), k + 1)`` and then recorded in ``bronze/backfill_jobs``
with the same transaction. A restarted run asks both tables for the last version of that app id and skips
every chunk at or below it, so a run killed at any point (even between the two commits) and started again
ends with the same rows as one that was never interrupted. Rows bronze already holds (from the stream or an
overlapping job) are dropped before writing (``skip_existing``).

Progress: ``progress(BackfillProgress)`` is called after every chunk (run or skipped). It is a plain
callable (the CLI draws a bar, the flow updates a Prefect artifact); an exception it raises stops the run
after the chunk it reports was committed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.backfill import existing, funding, open_interest
from pipeline.backfill.plan import BackfillPlan, Chunk, rest_venue
from pipeline.backfill.rest import RestClient, RestStats, RetryPolicy
from pipeline.errors import ConfigError
from pipeline.lake import writer
from pipeline.lake.location import Lake
from pipeline.lake.schemas import CANDLE_FIELDS, DERIVATIVE_FIELDS, FUNDING_FIELDS, TRADE_FIELDS
from pipeline.lake.tables import (
    BACKFILL_JOBS,
    BRONZE_CANDLES,
    BRONZE_DERIVATIVES,
    BRONZE_FUNDING,
    BRONZE_TRADES,
    TableSpec,
)

TARGETS: dict[str, TableSpec] = {
    "trades": BRONZE_TRADES, "candles": BRONZE_CANDLES, "funding": BRONZE_FUNDING, "open-interest": BRONZE_DERIVATIVES,
}  # fmt: skip
# each kind's key in its rows: what "bronze already holds this row" compares
KEY_AT: dict[str, int] = {
    "trades": TRADE_FIELDS.index("trade_id"), "candles": CANDLE_FIELDS.index("open_ts_ms"),
    "funding": FUNDING_FIELDS.index("funding_time_ms"), "open-interest": DERIVATIVE_FIELDS.index("exchange_ts_ms"),
}  # fmt: skip


@dataclass(frozen=True)
class BackfillProgress:
    job_id: str
    total_chunks: int
    done_chunks: int  # run + skipped so far
    rows: int  # rows written so far
    instrument: str
    chunk: int
    skipped: bool  # this chunk was committed by an earlier run
    requests: int
    limiter_wait_secs: float

    @property
    def fraction(self) -> float:
        return self.done_chunks / self.total_chunks if self.total_chunks else 1.0


ProgressFn = Callable[[BackfillProgress], Any]


@dataclass
class BackfillResult:
    job_id: str
    venue: str
    kind: str
    timeframe: str | None
    instruments: list[str]
    total_chunks: int = 0
    chunks_run: int = 0
    chunks_skipped: int = 0
    rows: int = 0
    seconds: float = 0.0
    rest: RestStats = field(default_factory=RestStats)

    def summary(self) -> str:
        if self.timeframe is None:
            what = self.kind
        else:  # candles: "1h candles"; open interest: "5m open-interest"
            what = f"{self.timeframe} {'candles' if self.kind == 'candles' else self.kind}"
        return (
            f"backfill {self.job_id}: {self.venue} {what} for {len(self.instruments)} instruments: {self.rows:,} rows, "
            f"{self.chunks_run} chunks run, {self.chunks_skipped} already done, {self.rest.requests} requests "
            f"({self.rest.retries} retries, {self.rest.rate_limited} x 429, {self.rest.server_errors} x 5xx) in {self.seconds:.1f} s"
        )


async def check_instruments(client: RestClient, names: list[str]) -> dict[str, dict[str, Any]]:
    """ConfigError naming every instrument the venue does not list (one listing call per market, made
    before any data request)."""
    venue = client.venue
    from pipeline.venues import get_venue

    markets = {get_venue(venue.NAME).market_of(n) for n in names}
    known = await venue.list_instruments(client, markets, set(names))
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(
            "instruments",
            f"{venue.NAME} does not list {', '.join(unknown)}",
            "check the spelling against the venue's instrument list (or `cryptolake universe`)",
        )
    return known


class _Runner:
    def __init__(
        self,
        lake: Lake,
        plan: BackfillPlan,
        client: RestClient,
        progress: ProgressFn | None,
        skip_existing: bool,
        instruments: list[str],
    ) -> None:
        self.lake, self.plan, self.client, self.progress, self.skip_existing = (
            lake,
            plan,
            client,
            progress,
            skip_existing,
        )
        self.target = TARGETS[plan.kind]
        self.result = BackfillResult(plan.job_id, plan.venue, plan.kind, plan.timeframe, instruments)
        self.result.total_chunks = sum(len(plan.chunks(i)) for i in instruments)
        self.result.rest = client.stats
        self._commit_lock = asyncio.Lock()  # one Delta writer at a time: commits are coarse, no contention

    async def run_instrument(self, instrument: str) -> None:
        app_id = self.plan.app_id(instrument)
        chunks = self.plan.chunks(instrument)
        done_data = await asyncio.to_thread(writer.committed_version, self.lake, self.target, app_id) or 0
        done_ckpt = await asyncio.to_thread(writer.committed_version, self.lake, BACKFILL_JOBS, app_id) or 0
        if done_data > done_ckpt:  # killed between the data commit and its checkpoint: record it now
            await asyncio.to_thread(self._checkpoint, chunks[done_data - 1], len(chunks), None, app_id)
        done = max(done_data, done_ckpt)
        for chunk in chunks:
            if chunk.number + 1 <= done:
                self.result.chunks_skipped += 1
                self._report(chunk, skipped=True)
                continue
            rows = await self._fetch(chunk)
            async with self._commit_lock:
                written = await asyncio.to_thread(self._commit, chunk, len(chunks), rows, app_id)
            self.result.rows += written
            self.result.chunks_run += 1
            self._report(chunk, skipped=False)

    async def _fetch(self, chunk: Chunk) -> list[tuple[Any, ...]]:
        """The chunk's rows from the venue, less those bronze already holds (by each kind's key)."""
        rows = await self._rows(chunk)
        if self.skip_existing and rows:
            key_at = KEY_AT[self.plan.kind]
            have = await asyncio.to_thread(self._held, chunk)
            rows = [r for r in rows if r[key_at] not in have]
        return rows

    async def _rows(self, chunk: Chunk) -> list[tuple[Any, ...]]:
        client, kind, tf = self.client, self.plan.kind, self.plan.timeframe
        inst, a, b = chunk.instrument, chunk.start_ms, chunk.end_ms
        if kind == "trades":
            return await client.venue.trades_between(client, inst, a, b)
        if kind == "funding":
            return await funding.funding_between(client, inst, a, b)
        assert tf is not None  # candles and open interest carry their timeframe / period
        if kind == "open-interest":
            return await open_interest.open_interest_between(client, inst, tf, a, b)
        return await client.venue.candles_between(client, inst, tf, a, b)

    def _held(self, chunk: Chunk) -> set[Any]:
        lake, venue, kind, tf = self.lake, self.plan.venue, self.plan.kind, self.plan.timeframe
        inst, a, b = chunk.instrument, chunk.start_ms, chunk.end_ms
        if kind == "trades":
            return existing.trade_ids(lake, venue, inst, a, b)
        if kind == "funding":
            return funding.existing_times(lake, venue, inst, a, b)
        if kind == "open-interest":  # a point is a point whatever the period that fetched it
            return existing.derivative_times(lake, venue, inst, open_interest.CHANNEL, a, b)
        assert tf is not None
        return existing.candle_keys(lake, venue, inst, tf, a, b)

    def _commit(self, chunk: Chunk, chunks: int, rows: list[tuple[Any, ...]], app_id: str) -> int:
        version = chunk.number + 1
        written = 0
        if rows:
            assert self.target.from_rows is not None
            written = writer.append(self.lake, self.target, self.target.from_rows(rows), txn=(app_id, version))
        self._checkpoint(chunk, chunks, written, app_id)
        return written

    def _checkpoint(self, chunk: Chunk, chunks: int, rows: int | None, app_id: str) -> None:
        import pyarrow as pa

        p = self.plan
        data = pa.Table.from_pylist(
            [{"job_id": p.job_id, "venue": p.venue, "kind": p.kind, "timeframe": p.timeframe, "instrument": chunk.instrument,
              "chunk": chunk.number, "chunks": chunks, "start_time": chunk.start_ms * 1000, "end_time": chunk.end_ms * 1000,
              "rows": rows, "committed_at": time.time_ns() // 1000}],
            schema=BACKFILL_JOBS.schema,
        )  # fmt: skip
        writer.append(self.lake, BACKFILL_JOBS, data, txn=(app_id, chunk.number + 1))

    def _report(self, chunk: Chunk, *, skipped: bool) -> None:
        if self.progress is None:
            return
        r = self.result
        self.progress(
            BackfillProgress(r.job_id, r.total_chunks, r.chunks_run + r.chunks_skipped, r.rows, chunk.instrument,
                             chunk.number, skipped, r.rest.requests, r.rest.limiter_wait_secs)
        )  # fmt: skip


async def arun_backfill(
    lake: Lake,
    plan: BackfillPlan,
    *,
    rest_url: str | None = None,
    client: RestClient | None = None,
    progress: ProgressFn | None = None,
    concurrency: int = 4,
    skip_existing: bool = True,
    retry: RetryPolicy | None = None,
    max_requests_per_sec: float | None = None,
    check: bool = True,
    only: list[str] | None = None,
) -> BackfillResult:
    """Run ``plan`` (see ``make_plan``); instruments run ``concurrency`` at a time, sharing the rate limiter.
    ``only`` runs a subset of the plan's instruments under the same job id (a Prefect task per instrument)."""
    if concurrency < 1:
        raise ConfigError("concurrency", f"{concurrency}", "use 1 or more")
    started = time.perf_counter()
    own = client is None
    client = client or RestClient(
        rest_venue(plan.venue), rest_url, retry=retry, max_requests_per_sec=max_requests_per_sec
    )
    try:
        queue = [i for i in plan.instruments if only is None or i in only]
        if check:
            await check_instruments(client, queue)
        runner = _Runner(lake, plan, client, progress, skip_existing, list(queue))  # a copy: the workers drain queue

        async def worker() -> None:
            while queue:
                await runner.run_instrument(queue.pop(0))

        try:
            async with asyncio.TaskGroup() as group:  # the first failure cancels the other workers
                for _ in range(min(concurrency, len(queue))):
                    group.create_task(worker())
        except BaseExceptionGroup as group_error:  # callers catch our errors, not a group of them
            raise group_error.exceptions[0] from None
    finally:
        if own:
            await client.close()
    runner.result.seconds = time.perf_counter() - started
    return runner.result


def run_backfill(lake: Lake, plan: BackfillPlan, **kwargs: Any) -> BackfillResult:
    """Blocking ``arun_backfill`` (CLI, Prefect tasks)."""
    return asyncio.run(arun_backfill(lake, plan, **kwargs))
