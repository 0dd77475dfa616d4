"""The shard slot (flows/slots.py) against the test server: one holder at a time, a lease revoked under a
holder stops it (its collector's stop event) with the reason, and a fresh server's stale counts are freed."""

from __future__ import annotations

import asyncio
import logging

import pytest

from flows import slots
from flows.slots import SlotBusy, free_stale_slots, held_slots, slot_name

log = logging.getLogger("test_slots")


def test_one_holder_a_refused_second_and_a_revoked_lease_stops_the_holder(
    prefect_harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.orchestration import get_client

    name = slot_name("slots-test-a")
    monkeypatch.setattr(slots, "RENEWALS_PER_LEASE", 30)  # a renewal every 2 s of the 60 s lease, not every 15 s

    async def scenario() -> tuple[str, bool, int]:
        stop = asyncio.Event()
        async with held_slots([name], lease_secs=60, wait_secs=None, holder_run=None, stop=stop, log=log) as lease:
            with pytest.raises(SlotBusy, match="stayed held by another collector"):
                async with held_slots(
                    [name], lease_secs=60, wait_secs=1, holder_run=None, stop=asyncio.Event(), log=log
                ):
                    pass
            async with get_client() as client:
                assert (await client.read_global_concurrency_limit_by_name(name)).active_slots == 1
                # An operator frees the slot under the holder (or the lease expired): its next renewal is refused.
                await client.release_concurrency_slots_with_lease(lease_id=lease.id)
            await asyncio.wait_for(stop.wait(), timeout=30)  # refused at the next renewal
            lost, stopped = lease.lost, stop.is_set()
        async with get_client() as client:
            left = (await client.read_global_concurrency_limit_by_name(name)).active_slots
        return lost, stopped, left

    lost, stopped, left = asyncio.run(scenario())
    assert stopped and "no longer knows lease" in lost and left == 0


def test_leases_under_the_server_minimum_are_refused_before_asking(prefect_harness) -> None:
    async def ask() -> None:
        async with held_slots(["x"], lease_secs=5, wait_secs=0, holder_run=None, stop=asyncio.Event(), log=log):
            pass

    with pytest.raises(ValueError, match="refuses leases under 60 s"):
        asyncio.run(ask())


def test_stale_counts_of_shard_slots_are_freed_and_no_other_limit(prefect_harness) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    ours, theirs = slot_name("slots-test-stale"), "someone-elses-limit"

    async def scenario() -> tuple[list[str], int, int]:
        async with get_client() as client:
            for name in (ours, theirs):
                await client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=1, active_slots=1)
                )
            freed = await free_stale_slots(client)
            mine = (await client.read_global_concurrency_limit_by_name(ours)).active_slots
            other = (await client.read_global_concurrency_limit_by_name(theirs)).active_slots
            return freed, mine, other

    freed, mine, other = asyncio.run(scenario())
    assert ours in freed and theirs not in freed and mine == 0 and other == 1


def test_a_holder_cut_off_from_the_server_stops_before_its_lease_expires() -> None:
    """Renewals against a server that does not answer (a closed port: the real client, refused connections):
    the holder sets its stop while part of the lease is left, so no other worker can take the shard first."""
    import time
    from uuid import uuid4

    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.ops.procs import free_port
    from flows.slots import Lease, _keep

    lease_secs = 8.0  # the server's 60 s minimum does not apply: no server here

    async def scenario() -> tuple[Lease, bool, float]:
        lease, stop = Lease(uuid4()), asyncio.Event()
        with temporary_settings({PREFECT_API_URL: f"http://127.0.0.1:{free_port()}/api"}):
            async with get_client() as client:
                started = time.monotonic()
                await asyncio.wait_for(_keep(client, lease, lease_secs, stop, log), timeout=60)
                return lease, stop.is_set(), time.monotonic() - started

    lease, stopped, after = asyncio.run(scenario())
    assert stopped and "could not be renewed" in lease.lost
    assert after < lease_secs, after  # stopped while the lease still held
