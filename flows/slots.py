"""Exactly one collector per shard anywhere: a Prefect global concurrency limit of 1 per shard, held on a lease.

The slot is taken and renewed through Prefect's lease API for global concurrency limits (the calls
``prefect.concurrency.asyncio.concurrency()`` makes) rather than through that context manager: on a lost lease
it cancels its body, while a collector must stop gracefully (flush its buffers) before the server can give the
shard to another worker. The lease is renewed every quarter of its duration; a holder that dies (SIGKILL, a
lost machine) stops renewing and the server's repossessor frees the slot once the lease expires, so a restarted
run of the shard waits at most one lease. A holder cut off from the server stops its collector before its lease
can expire, so two collectors never capture one shard at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from uuid import UUID

import httpx
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

PREFIX = "cryptolake-stream-"
MIN_LEASE_SECS = 60.0  # the server refuses shorter leases
WAIT_LOG_EVERY_SECS = 60.0
POLL_MAX_SECS = 10.0  # the server's Retry-After can be 30 s; a freed slot is seen sooner than that
# Renewals per lease duration (a period is the lease over this). Tests raise it to see a revoked lease within
# seconds rather than a quarter of the server's 60 s minimum; the keeper's margins are counted in periods.
RENEWALS_PER_LEASE = 4


class SlotBusy(Exception):
    """The shard's slot stayed held for the whole wait: another collector captures it."""


@dataclass
class Lease:
    id: UUID
    lost: str = ""  # why the lease was lost ("" while held)


def slot_name(stream: str) -> str:
    """The global concurrency limit of one collector name (``<stream.name>-<shard>``)."""
    return PREFIX + stream


async def ensure_limit(client: PrefectClient, name: str) -> None:
    """The limit exists, is active and allows 1 (an edited limit of 2 would let a shard run twice)."""
    try:
        limit = await client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        try:
            await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
        except ObjectAlreadyExists:  # another shard run created it first
            pass
        return
    if limit.limit != 1 or not limit.active:
        await client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=1, active=True))


async def _acquire(
    client: PrefectClient,
    names: list[str],
    lease_secs: float,
    wait_secs: float | None,
    holder: ConcurrencyLeaseHolder | None,
    log: logging.Logger | logging.LoggerAdapter[logging.Logger],
) -> UUID:
    started = time.monotonic()
    told = -WAIT_LOG_EVERY_SECS
    while True:
        try:
            response = await client.increment_concurrency_slots_with_lease(
                names=names, slots=1, mode="concurrency", lease_duration=lease_secs, holder=holder
            )
            return UUID(response.json()["lease_id"])
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code != 423:  # 423 Locked: held by another collector
                raise
            retry_after = float(exc.response.headers.get("Retry-After", POLL_MAX_SECS))
        waited = time.monotonic() - started
        if wait_secs is not None and waited >= wait_secs:
            raise SlotBusy(
                f"{', '.join(names)} stayed held by another collector for {waited:.0f} s: this shard is already "
                f"being captured (see `prefect gcl inspect {names[0]}`); if its holder is gone, the slot frees "
                f"itself when the holder's lease expires (at most {lease_secs:.0f} s after its last renewal)"
            )
        if waited - told >= WAIT_LOG_EVERY_SECS:
            log.info(
                "waiting for %s: held by another collector of this shard; it frees when that one stops or "
                "its lease expires (%.0f s after its last renewal)",
                ", ".join(names),
                lease_secs,
            )
            told = waited
        pause = min(retry_after, POLL_MAX_SECS)
        if wait_secs is not None:
            pause = min(pause, max(0.1, wait_secs - waited))
        await asyncio.sleep(pause)


async def _keep(
    client: PrefectClient,
    lease: Lease,
    lease_secs: float,
    stop: asyncio.Event,
    log: logging.Logger | logging.LoggerAdapter[logging.Logger],
) -> None:
    """Renew every period (a quarter lease); set ``stop`` (the collector's) when the lease is gone or about to be.

    A call is cut off after half a period and a failed one retried a quarter period later, so checks come at
    most 0.75 periods apart; the collector is stopped once 1.5 periods of lease or less are left, so it has
    at least 0.75 periods (22 s of a 120 s lease) to flush before the server may give the shard to another
    worker, while a server slow or away for a while (two or more tries) is ridden out."""
    lease_id = lease.id
    every = lease_secs / RENEWALS_PER_LEASE
    valid_until = time.monotonic() + lease_secs
    pause = every
    while True:
        await asyncio.sleep(pause)
        sent = time.monotonic()  # the server counts the new lease from when it gets the call, not later
        try:
            await asyncio.wait_for(
                client.renew_concurrency_lease(lease_id=lease_id, lease_duration=lease_secs), timeout=every / 2
            )
            valid_until, pause = sent + lease_secs, every
            continue
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code in (404, 410):  # expired or revoked: the shard may already run elsewhere
                lease.lost = f"the server no longer knows lease {lease_id} ({exc.response.status_code})"
                log.error("%s; stopping this collector", lease.lost)
                stop.set()
                return
            problem = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # noqa: BLE001 - the server unreachable or slow: retried while the lease lasts
            problem = f"{type(exc).__name__}: {exc}"
        left = valid_until - time.monotonic()
        if left <= 1.5 * every:
            lease.lost = f"lease {lease_id} could not be renewed ({problem})"
            log.error("%s; stopping this collector %.0f s before it expires", lease.lost, left)
            stop.set()
            return
        pause = every / 4
        log.warning("lease %s renewal failed (%s); %.0f s of lease left, retrying", lease_id, problem, left)


async def free_stale_slots(client: PrefectClient) -> list[str]:
    """Zero every taken shard slot. Only for a server that just started: it keeps leases in memory (Prefect's
    default lease storage), so it knows none, and a count left from before its restart would never expire."""
    freed = []
    for limit in await client.read_global_concurrency_limits(limit=200):
        if limit.name.startswith(PREFIX) and limit.active_slots:
            await client.update_global_concurrency_limit(limit.name, GlobalConcurrencyLimitUpdate(active_slots=0))
            freed.append(limit.name)
    return freed


@asynccontextmanager
async def held_slots(
    names: Sequence[str],
    *,
    lease_secs: float,
    wait_secs: float | None,
    holder_run: UUID | None,
    stop: asyncio.Event,
    log: logging.Logger | logging.LoggerAdapter[logging.Logger],
) -> AsyncIterator[Lease]:
    """Hold one slot of each limit in ``names`` (all or none, in one lease) while the body runs.

    Waits while another collector holds any of them (``wait_secs`` None: until it is free; else raises
    ``SlotBusy`` after that long). If the lease cannot be kept, ``stop`` is set and the yielded ``Lease`` says why.
    """
    if lease_secs < MIN_LEASE_SECS:
        raise ValueError(f"lease_secs={lease_secs:g}: Prefect's server refuses leases under {MIN_LEASE_SECS:.0f} s")
    wanted = sorted(set(names))
    holder = None if holder_run is None else ConcurrencyLeaseHolder(type="flow_run", id=holder_run)
    async with get_client() as client:
        for name in wanted:
            await ensure_limit(client, name)
        lease = Lease(await _acquire(client, wanted, lease_secs, wait_secs, holder, log))
        log.info(
            "holding %s (lease %s of %.0f s, renewed every %.0f s)",
            ", ".join(wanted),
            lease.id,
            lease_secs,
            lease_secs / RENEWALS_PER_LEASE,
        )
        keeper = asyncio.create_task(_keep(client, lease, lease_secs, stop, log), name="lease")
        try:
            yield lease
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            try:
                await client.release_concurrency_slots_with_lease(lease_id=lease.id)
            except Exception as exc:  # noqa: BLE001 - the lease expiry frees it anyway: say when
                log.warning("could not release %s (%s); it frees when the lease expires", ", ".join(wanted), exc)
