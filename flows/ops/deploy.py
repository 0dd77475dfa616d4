"""Apply deployments/prefect.yaml to a Prefect server: the work pool, `prefect deploy --all`, and the
machine-specific parameters (simulator URLs) that do not belong in the shared file."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import DeploymentUpdate, WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists

from flows.ops.procs import PREFECT

REPO = Path(__file__).resolve().parents[2]
PREFECT_FILE = REPO / "deployments" / "prefect.yaml"
POOL = "cryptolake"


async def ensure_work_pool(name: str = POOL) -> None:
    """Create the process work pool unless it exists (idempotent)."""
    async with get_client() as client:
        try:
            await client.create_work_pool(WorkPoolCreate(name=name, type="process"))
        except ObjectAlreadyExists:
            pass


def deploy_all(env: Mapping[str, str], prefect_file: Path = PREFECT_FILE, timeout: float = 300.0) -> str:
    """`prefect deploy --all` from the repository root (entry points are relative to it). Returns its output."""
    proc = subprocess.run(
        [PREFECT, "--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file)],
        cwd=REPO, env=dict(env), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"prefect deploy failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc.stdout


async def merge_parameters(full_name: str, parameters: Mapping[str, Any]) -> None:
    """Add ``parameters`` to a deployment's defaults ("flow-name/deployment-name")."""
    async with get_client() as client:
        dep = await client.read_deployment_by_name(full_name)
        await client.update_deployment(dep.id, DeploymentUpdate(parameters={**(dep.parameters or {}), **parameters}))


def sim_parameters(sim_port: int) -> dict[str, dict[str, str]]:
    """Parameters that point the deployments at a local simulator (`make up` with url = "sim")."""
    ws, rest = f"ws://127.0.0.1:{sim_port}", f"http://127.0.0.1:{sim_port}"
    return {
        "stream/stream": {"sim_ws_url": ws},
        "fill-gaps/fill-gaps": {"rest_url": rest},
        "universe/universe": {"rest_url": rest},
        "backfill/backfill": {"rest_url": rest},
    }
