"""glibc's allocator, tuned for a long-running process of this shape (an event loop plus worker threads that
churn through batches): freed memory is kept by default and every thread gets arenas of its own, so RSS would
hold every peak. ``cap_arenas`` before any thread starts; ``give_back`` every few seconds after."""
from __future__ import annotations

import asyncio
import ctypes

_M_ARENA_MAX = -8


def _glibc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:  # not glibc: nothing to tune
        return None


LIBC = _glibc()


def cap_arenas(n: int = 2) -> bool:
    """At most ``n`` malloc arenas (call before threads start). False where the C library is not glibc."""
    if LIBC is None:
        return False
    LIBC.mallopt(_M_ARENA_MAX, n)
    return True


def give_back() -> None:
    """Hand freed heap memory back to the system (malloc_trim)."""
    if LIBC is not None:
        LIBC.malloc_trim(0)


async def give_back_every(seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        give_back()
