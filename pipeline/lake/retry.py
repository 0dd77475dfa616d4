"""The one retry policy for Delta commits that can lose a race: merges and compactions.

A merge or an OPTIMIZE reads a snapshot, then commits; when another writer commits first and delta-rs'
conflict checker finds the two overlap (the other one added or removed files this one read), the commit
fails with ``deltalake.exceptions.CommitFailedError`` and nothing of ours is in the table. Running the
whole operation again on a fresh snapshot is then safe. Blind appends never need this: delta-rs rebases
them itself.

``CommitFailedError`` is deltalake's type for every failed transaction (conflicts, a version another
writer took, ...); all of them are worth one more try on a fresh snapshot, and the type, unlike the
message text, is part of deltalake's API. Anything else (schema, storage, permissions) is not retried.
After the last attempt, or on any other failure, the caller gets a ``LakeWriteError`` naming what was
being written, never a deltalake exception.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from deltalake.exceptions import CommitFailedError
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from pipeline.errors import ConfigError, CryptolakeError, LakeWriteError

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommitRetry:
    """Up to ``attempts`` tries; between them a random wait up to initial x2 per try, capped (full jitter, so
    two writers that collided do not collide again in step)."""

    attempts: int = 5
    initial_backoff_secs: float = 0.1
    max_backoff_secs: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.initial_backoff_secs < 0 or self.max_backoff_secs < self.initial_backoff_secs:
            raise ConfigError("commit retry", f"invalid policy {self}", "use attempts >= 1 and 0 <= initial <= max")


DEFAULT_COMMIT_RETRY = CommitRetry()


def retry_commit(
    operation: Callable[[], T],
    what: str,
    *,
    policy: CommitRetry = DEFAULT_COMMIT_RETRY,
    on_conflict: Callable[[], None] | None = None,
) -> T:
    """``operation()`` (which must read a fresh snapshot each time it runs), again after each lost commit
    race. ``what`` names the write for the error message ("merge into bronze/gaps"); ``on_conflict`` is
    called before each retry (counters)."""

    def before_sleep(state: RetryCallState) -> None:
        # One line per lost race, so concurrent writers' retries can be counted from their logs.
        log.warning("%s lost a commit race (attempt %d of %d); retrying on a fresh snapshot", what,
                    state.attempt_number, policy.attempts)  # fmt: skip
        if on_conflict is not None:
            on_conflict()

    retrying = Retrying(
        retry=retry_if_exception_type(CommitFailedError),
        stop=stop_after_attempt(policy.attempts),
        wait=wait_random_exponential(multiplier=policy.initial_backoff_secs, max=policy.max_backoff_secs),
        before_sleep=before_sleep,
        reraise=True,  # the last CommitFailedError itself, wrapped below
    )
    try:
        return retrying(operation)
    except CommitFailedError as exc:
        raise LakeWriteError(
            f"{what} failed: its Delta commit was refused {policy.attempts} time(s) in a row (a concurrent writer "
            f"committed first, or the next log version cannot be written; last: {first_line(exc)}); nothing was written"
        ) from exc
    except CryptolakeError:
        raise
    except Exception as exc:  # noqa: BLE001 - any other deltalake/storage failure means the same to the caller
        raise LakeWriteError(f"{what} failed: {type(exc).__name__}: {exc}") from exc


def first_line(exc: BaseException) -> str:
    """deltalake's message without what it appends on further lines (a "Help:" about isolation levels, a
    Rust backtrace when RUST_BACKTRACE is set) that means nothing to our users."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
