"""One exception hierarchy for the whole library: callers catch ``CryptolakeError``."""

from __future__ import annotations


class CryptolakeError(Exception):
    """Base of every error cryptolake raises on purpose."""


class ConfigError(CryptolakeError):
    """A configuration value is missing or wrong. The message names the key and the fix."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        self.key = key
        self.problem = problem
        self.fix = fix
        super().__init__(f"configuration error in {key}: {problem}. Fix: {fix}")


class FrameError(CryptolakeError):
    """A frame from a venue (or a capture file) could not be parsed; it goes to bronze/rejects."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class VenueResponseError(CryptolakeError):
    """A venue's REST answer cannot be used (a row its venue module refuses, paging that does not move on).
    Backfill has no rejects table, so it stops; the message names the venue, the endpoint and the problem."""

    def __init__(self, venue: str, endpoint: str, instrument: str, problem: str) -> None:
        self.venue = venue
        self.endpoint = endpoint
        self.instrument = instrument
        self.problem = problem
        super().__init__(f"{venue} {endpoint} for {instrument}: {problem}")


class UnsafeNameError(CryptolakeError):
    """An instrument or dataset name would escape its folder (path separators, '..')."""


class LakeWriteError(CryptolakeError):
    """A Delta write failed (after ``pipeline.lake.retry``'s tries, for merges); the message names the table.
    The stream keeps the rows (spooled) and writes them again later."""


class LakeReadError(CryptolakeError):
    """A Delta table exists but cannot be opened (a damaged log, storage that refuses us); names the table."""
