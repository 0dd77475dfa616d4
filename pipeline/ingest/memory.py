"""Allocator settings for the long-running stream, so a burst does not leave its memory behind (issue #8).

Four allocators share the stream process, and each kept what a 20,000 frames/s burst made it allocate
(chaos soak, measured per allocator from /proc/<pid>/smaps, mallinfo2 and sys._debugmallocstats):

- glibc (CPython's large objects: the raw frame buffers, socket reads; libarrow's own C++ objects): freed
  burst buffers stayed in the heaps (20-66 MB "free" after each burst, the dynamic mmap/trim thresholds
  rise after the first big free) and in one arena per thread that ever called malloc (15 arenas, 17-30 MB).
  -> at most 2 arenas, and ``malloc_trim(0)`` after every flush (0.2 ms on average, 2.4 ms at most).
- jemalloc inside deltalake (and polars): freed pages stay dirty for 10 s (deltalake's default) -> 1 s.
- mimalloc, pyarrow's default pool: up to 28 MB of freed segments held by idle threads -> purge at once.

The jemalloc and mimalloc settings are read when those libraries load, so ``configure_allocators`` must run
before the first import of deltalake, polars or pyarrow (``cryptolake stream`` does); values already in the
environment win. Elsewhere (not glibc) everything here is a no-op.

``configure_gc`` (called by ``configure_allocators`` and by ``cryptolake import``): CPython's cyclic garbage
collector at its default thresholds (a young collection every 700 net allocations) traverses every object the
process holds between flushes again and again, and a book flush holds one list per level: 44 % of book ingest
on ``benchmarks/bench_book_ingest.py`` (145,000 -> 225,000-245,000 level updates/s with ``GC_THRESHOLDS``).
Reference cycles are still collected, a young generation every 50,000 net allocations.
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys

_M_ARENA_MAX = -8  # mallopt parameter number (malloc.h)
_ENV_DEFAULTS = {
    "_RJEM_MALLOC_CONF": "dirty_decay_ms:1000,muzzy_decay_ms:0",  # deltalake's and polars' jemalloc
    "MIMALLOC_PURGE_DELAY": "0",  # pyarrow's mimalloc pool
}


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018 - absent on musl
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _glibc()


GC_THRESHOLDS = (50_000, 20, 10)  # CPython's default: (700, 10, 10)


def configure_allocators() -> None:
    """Call once, as early as possible (before deltalake / polars / pyarrow are imported)."""
    for key, value in _ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    if _LIBC is not None:
        _LIBC.mallopt(_M_ARENA_MAX, 2)
    configure_gc()


def configure_gc() -> None:
    """Fewer collections of the young generations for a process that holds a flush's rows (see the docstring)."""
    gc.set_threshold(*GC_THRESHOLDS)


def release_memory() -> None:
    """Hand the glibc heaps' free pages back to the OS (after a flush: the burst's buffers were just freed)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
