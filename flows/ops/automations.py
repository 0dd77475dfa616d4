"""The alert automations, created from code and idempotently (matched by name: re-running updates them
in place, never duplicates them).

Every alert goes through one notification block. By default that is a ``CustomWebhookNotificationBlock``
named ``cryptolake-alerts`` posting JSON ``{"subject", "body"}`` to a URL: the local alert receiver
(flows/ops/alert_receiver.py, started by `make up`, which appends to ``<lake>/_ops/alerts.log``) or any
webhook (``$CRYPTOLAKE_ALERT_WEBHOOK``). ``--block TYPE/NAME`` uses any other Prefect notification block
(Slack, Teams, e-mail...) instead. Whatever the target, every alert's event is in the UI's event feed.

Run: ``python -m flows.ops.automations --webhook URL`` (needs ``PREFECT_API_URL``).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import cast
from uuid import UUID

from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState, RunDeployment, SendNotification
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

from flows.alerts import CONTRACT_FAILED
from flows.health import LAKE_UNHEALTHY, STREAM_STALE

BLOCK_NAME = "cryptolake-alerts"
PREFIX = "cryptolake: "
STREAM_STATS = "cryptolake.stream.stats"

# A user cancel SIGTERMs the flow process; the engine reports the TerminationSignal as a forced Crashed
# with this message (PrefectHQ/prefect PR #22717), possibly overwriting Cancelling. A real crash (OOM kill,
# segfault, lost heartbeats, a broken import) carries another message, so excluding this one keeps
# cancels quiet and real crashes loud. A SIGTERM from outside (docker stop) looks like a cancel: documented.
CANCEL_CRASH_MESSAGE = "*aborted by a termination signal*"

# From the event's own labels (always there), plus the flow/deployment objects Prefect resolves when it can.
FLOW_RUN_BODY = (
    "Flow run {{ event.resource.name }}{% if flow %} of {{ flow.name }}{% endif %}"
    "{% if deployment %} (deployment {{ deployment.name }}){% endif %} is {{ event.resource['prefect.state-name'] }}: "
    "{{ event.resource['prefect.state-message'] }}{% if flow_run %}\nRun: {{ flow_run|ui_url }}{% endif %}"
)


@dataclass(frozen=True)
class AlertSettings:
    stale_after_min: float = 10.0  # no stream stats event for this long (per collector) -> stale alert
    zombie_after_s: int = 90  # three missed heartbeats at PREFECT_FLOWS_HEARTBEAT_FREQUENCY=30


async def notification_block_id(*, webhook_url: str | None = None, block: str | None = None) -> UUID:
    """The block every alert goes through: an existing block ``TYPE/NAME``, or our webhook block (upserted)."""
    if block:
        from prefect.blocks.core import Block

        loaded = cast(Block, await Block.aload(block))  # Block.aload is generic over the class it is called on
        assert loaded._block_document_id is not None
        return loaded._block_document_id
    if not webhook_url:
        raise ValueError("give a webhook URL (e.g. the local alert receiver) or a notification block TYPE/NAME")
    hook = CustomWebhookNotificationBlock(
        name=BLOCK_NAME,
        url=webhook_url,
        method="POST",
        json_data={"subject": "{{subject}}", "body": "{{body}}"},
        timeout=10,
    )
    doc_id = await hook.asave(BLOCK_NAME, overwrite=True)
    return doc_id


def _notify(block_id: UUID, subject: str, body: str) -> SendNotification:
    return SendNotification(block_document_id=block_id, subject=subject, body=body)


def failure_triggers() -> dict[str, EventTrigger]:
    """ "Flow run failed" and "flow run crashed (not by a cancel)", as two reactive triggers."""
    runs = "prefect.flow-run.*"
    return {
        "failed": EventTrigger(
            expect={"prefect.flow-run.Failed"},
            match={"prefect.resource.id": runs},
            posture=Posture.Reactive,
            threshold=1,
        ),
        "crashed": EventTrigger(
            expect={"prefect.flow-run.Crashed"},
            match={"prefect.resource.id": runs, "prefect.state-message": f"!{CANCEL_CRASH_MESSAGE}"},
            posture=Posture.Reactive,
            threshold=1,
        ),
    }


def alert_automations(block_id: UUID, settings: AlertSettings = AlertSettings()) -> list[AutomationCore]:
    """Every alert automation, fully specified (so re-applying is an idempotent update)."""
    contract = _notify(
        block_id,
        "cryptolake: contract failed on {{ event.payload.table }}",
        "Contract '{{ event.payload.rule }}' failed on {{ event.payload.table }}: {{ event.payload.failed_rows }} of "
        "{{ event.payload.total_rows }} rows (fatal: {{ event.payload.fatal }}). Failing rows are in silver/quarantine.",
    )
    out = [
        AutomationCore(
            name=PREFIX + "contract failure",
            description="A silver/gold contract failed (event cryptolake.contract.failed).",
            trigger=EventTrigger(expect={CONTRACT_FAILED}, posture=Posture.Reactive, threshold=1),
            actions=[contract],
        ),
        AutomationCore(
            name=PREFIX + "stream stale (health check)",
            description="The health flow found no bronze/trades data commit for too long (event cryptolake.stream.stale).",
            trigger=EventTrigger(expect={STREAM_STALE}, posture=Posture.Reactive, threshold=1),
            actions=[_notify(block_id, "cryptolake: stream stale", "{{ event.payload.problems | join('; ') }}")],
        ),
        AutomationCore(
            name=PREFIX + "lake unhealthy",
            description="The health flow crossed a completeness or open-gap threshold (event cryptolake.lake.unhealthy).",
            trigger=EventTrigger(expect={LAKE_UNHEALTHY}, posture=Posture.Reactive, threshold=1),
            actions=[_notify(block_id, "cryptolake: lake unhealthy", "{{ event.payload.problems | join('; ') }}")],
        ),
        AutomationCore(
            name=PREFIX + "stream silent",
            description=f"A collector sent no stats event for {settings.stale_after_min:g} min (it stopped or hangs).",
            trigger=EventTrigger(
                after={STREAM_STATS},
                expect={STREAM_STATS},
                match={"prefect.resource.id": "cryptolake.stream.*"},
                for_each={"prefect.resource.id"},
                posture=Posture.Proactive,
                threshold=1,
                within=timedelta(minutes=settings.stale_after_min),
            ),
            actions=[
                _notify(
                    block_id,
                    "cryptolake: stream silent",
                    f"No cryptolake.stream.stats from {{{{ event.resource.id }}}} for {settings.stale_after_min:g} min.",
                )
            ],
        ),
        AutomationCore(
            name=PREFIX + "flow run failed",
            description="Any flow run reached Failed.",
            trigger=failure_triggers()["failed"],
            actions=[_notify(block_id, "cryptolake: flow run {{ event.resource.name }} failed", FLOW_RUN_BODY)],
        ),
        AutomationCore(
            name=PREFIX + "flow run crashed",
            description="Any flow run reached Crashed, except the spurious Crashed of a user cancel.",
            trigger=failure_triggers()["crashed"],
            actions=[_notify(block_id, "cryptolake: flow run {{ event.resource.name }} crashed", FLOW_RUN_BODY)],
        ),
        # From Prefect's docs ("Detect zombie flows"): a run whose heartbeats stop is marked Crashed; the
        # crashed automation above then notifies.
        AutomationCore(
            name=PREFIX + "zombie flow runs",
            description=f"No heartbeat for {settings.zombie_after_s} s: mark the run Crashed.",
            trigger=EventTrigger(
                after={"prefect.flow-run.heartbeat"},
                expect={
                    "prefect.flow-run.heartbeat",
                    "prefect.flow-run.Completed",
                    "prefect.flow-run.Failed",
                    "prefect.flow-run.Cancelled",
                    "prefect.flow-run.Crashed",
                },
                match={"prefect.resource.id": ["prefect.flow-run.*"]},
                for_each={"prefect.resource.id"},
                posture=Posture.Proactive,
                threshold=1,
                within=timedelta(seconds=settings.zombie_after_s),
            ),
            actions=[
                ChangeFlowRunState(
                    state=StateType.CRASHED, message="Flow run marked as crashed due to missing heartbeats."
                )
            ],
        ),
    ]
    return out


# The new run captures the shard of the run that ended (None: every shard); the deployment's defaults give the
# rest. Rendered by the server from the triggering run ("| default(none)": a run created without the parameter).
SAME_SHARD = {"shard": "{{ flow_run.parameters.shard | default(none) }}"}


def restart_automations(
    deployment_id: UUID, deployment_name: str, parameters: Mapping[str, object] = SAME_SHARD
) -> list[AutomationCore]:
    """Start a run of the stream deployment again when one fails or really crashes (not on cancel): by default
    a run of the same shard, so one shard's crash restarts that shard, not the world."""
    related = {"prefect.resource.id": f"prefect.deployment.{deployment_id}", "prefect.resource.role": "deployment"}
    action = RunDeployment(source="selected", deployment_id=deployment_id, parameters=dict(parameters))
    out = []
    for kind, trigger in failure_triggers().items():
        trigger = trigger.model_copy(update={"match_related": related})
        out.append(AutomationCore(name=f"{PREFIX}restart {deployment_name} ({kind})",
                                  description=f"A run of {deployment_name} {kind}: start its shard again.", trigger=trigger, actions=[action]))  # fmt: skip
    return out


async def apply(automations: list[AutomationCore], client: PrefectClient | None = None) -> dict[str, UUID]:
    """Create or update each automation by name; extra copies with the same name are deleted."""
    async with get_client() if client is None else _borrowed(client) as c:
        existing: dict[str, list[UUID]] = {}
        for a in await c.read_automations():
            existing.setdefault(a.name, []).append(a.id)
        out: dict[str, UUID] = {}
        for auto in automations:
            ids = existing.get(auto.name, [])
            if ids:
                await c.update_automation(ids[0], auto)
                for extra in ids[1:]:
                    await c.delete_automation(extra)
                out[auto.name] = ids[0]
            else:
                out[auto.name] = await c.create_automation(auto)
        return out


class _borrowed:
    """``async with`` over a client someone else owns (does not close it)."""

    def __init__(self, client: PrefectClient) -> None:
        self.client = client

    async def __aenter__(self) -> PrefectClient:
        return self.client

    async def __aexit__(self, *exc: object) -> None:
        return None


async def install(
    *, webhook_url: str | None = None, block: str | None = None, settings: AlertSettings = AlertSettings()
) -> dict[str, UUID]:
    """Upsert the notification block and every alert automation."""
    block_id = await notification_block_id(webhook_url=webhook_url, block=block)
    return await apply(alert_automations(block_id, settings))


def main() -> None:
    import os

    parser = argparse.ArgumentParser(description="create or update cryptolake's alert automations (idempotent)")
    parser.add_argument(
        "--webhook",
        default=os.environ.get("CRYPTOLAKE_ALERT_WEBHOOK"),
        help="webhook URL (default $CRYPTOLAKE_ALERT_WEBHOOK)",
    )
    parser.add_argument(
        "--block", default=os.environ.get("CRYPTOLAKE_ALERT_BLOCK"), help="or an existing notification block TYPE/NAME"
    )
    parser.add_argument("--stale-after-min", type=float, default=10.0)
    args = parser.parse_args()
    ids = asyncio.run(
        install(
            webhook_url=args.webhook, block=args.block, settings=AlertSettings(stale_after_min=args.stale_after_min)
        )
    )
    for name in ids:
        print(f"automation ready: {name}")


if __name__ == "__main__":
    main()
