"""Waiting on a condition instead of sleeping: ``wait_until`` polls until a value is truthy (or a deadline)."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(probe: Callable[[], T], *, timeout: float = 30.0, every: float = 0.2, what: str = "",
               errors: tuple[type[BaseException], ...] = ()) -> T:
    """Call ``probe`` until it returns something truthy and return that; ``errors`` raised by the probe count
    as "not yet". At the deadline: AssertionError naming ``what`` and the last value (or error)."""
    deadline, last = time.monotonic() + timeout, None
    while True:
        try:
            last = probe()
            if last:
                return last
        except errors as e:
            last = e  # type: ignore[assignment]
        if time.monotonic() >= deadline:
            raise AssertionError(f"waited {timeout:g} s for {what or probe!r}; last: {last!r}")
        time.sleep(every)


async def wait_until_async(probe: Callable[[], Awaitable[T] | T], *, timeout: float = 30.0, every: float = 0.05,
                           what: str = "") -> T:
    """``wait_until`` inside an event loop (the probe may be sync or async)."""
    deadline = time.monotonic() + timeout
    while True:
        last = probe()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise AssertionError(f"waited {timeout:g} s for {what or probe!r}; last: {last!r}")
        await asyncio.sleep(every)
