"""Is a server's ``If-None-Match: *`` PUT atomic? Delta commits on S3 rest on it (delta-rs >= 1.6.1 writes
``_delta_log/<version>.json`` with a conditional put): two writers racing for one version must see exactly
one winner, or both commits "succeed" and one silently overwrites the other.

N threads PUT the same new key at the same instant (a barrier), round after round: exactly one may succeed
and the object must hold the winner's bytes. Found here (moto 5.2, SeaweedFS 4.48):
- moto checks for the key, then writes it, without a lock: with 8 MB bodies (a wide window between the check
  and the write) several writers win in about a quarter of the rounds (2 MB: 1 round in 50). It is fine for one writer at a
  time (the functional suite), never for concurrent writers.
- SeaweedFS serialises conditional writes on a key (losers wait on a lock, ~1 s backoff, then get 412):
  one winner every round. The concurrent-writer tests run on it.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from botocore.exceptions import ClientError

from tests.objectstore.kit import MotoServer, S3Server, SeaweedServer


def race(server: S3Server, *, writers: int, rounds: int, body_bytes: int, stop_at_double: bool = False) -> list[int]:
    """Winners per round; also checks that the stored object is one winner's body (never a loser's)."""
    client = server.client(max_pool_connections=writers + 4)
    bucket = server.new_bucket()
    pad = b" " * body_bytes
    winners: list[int] = []
    for r in range(rounds):
        key = f"_delta_log/{r:020d}.json"
        barrier = threading.Barrier(writers)
        outcome: dict[int, str] = {}

        def put(
            i: int, key: str = key, barrier: threading.Barrier = barrier, outcome: dict[int, str] = outcome
        ) -> None:
            barrier.wait()
            try:
                client.put_object(Bucket=bucket, Key=key, Body=f"writer {i}\n".encode() + pad, IfNoneMatch="*")
                outcome[i] = "ok"
            except ClientError as exc:
                outcome[i] = str(exc.response.get("Error", {}).get("Code"))

        threads = [threading.Thread(target=put, args=(i,)) for i in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        won = [i for i, o in outcome.items() if o == "ok"]
        winners.append(len(won))
        stored: Any = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert stored.split(b"\n", 1)[0].decode() in {f"writer {i}" for i in won} or len(won) == 0, (
            f"round {r}: the object holds {stored[:20]!r}, which no successful PUT wrote"
        )
        losers = {o for o in outcome.values() if o != "ok"}
        assert losers <= {"PreconditionFailed", "412", "500", "409", "ConditionalRequestConflict"}, losers
        if stop_at_double and len(won) > 1:
            break
    return winners


def test_seaweedfs_conditional_put_is_atomic(seaweed: SeaweedServer) -> None:
    small = race(seaweed, writers=8, rounds=4, body_bytes=200)  # a commit file's size
    big = race(seaweed, writers=8, rounds=2, body_bytes=8_000_000)  # the body that breaks moto
    assert small == [1] * 4 and big == [1] * 2, f"SeaweedFS let several writers win: {small} {big}"


def test_moto_conditional_put_is_not_atomic(moto: MotoServer) -> None:
    """If this fails, moto serialises If-None-Match now: the concurrent-writer tests could run on it too."""
    winners = race(moto, writers=16, rounds=40, body_bytes=8_000_000, stop_at_double=True)
    assert all(w >= 1 for w in winners[:-1] or winners), f"a round with no winner: {winners}"
    assert max(winners) > 1, f"moto gave exactly one winner in all {len(winners)} rounds"


def test_servers_start_answer_and_stop(tmp_path: Any) -> None:
    """The kit itself: a server is reachable after start and gone after stop (by PID, port released)."""
    server = MotoServer(tmp_path / f"moto-{uuid.uuid4().hex[:6]}")
    server.start()
    try:
        assert server.client().list_buckets()["Buckets"] == []
        pid = server.proc.pid if server.proc else 0
    finally:
        server.stop()
    assert not server.running and pid > 0
    try:
        server.client().list_buckets()
        raise AssertionError("the server still answers after stop()")
    except Exception as exc:  # noqa: BLE001 - connection refused is the point
        assert "Could not connect" in str(exc) or "Connect" in type(exc).__name__, exc
