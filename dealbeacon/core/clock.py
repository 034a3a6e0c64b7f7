"""The only place that reads the wall clock. Domain logic takes ``now`` as an argument; edges pass a Clock."""
from __future__ import annotations

import time


class Clock:
    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()


class FixedClock(Clock):
    """A clock tests move by hand."""

    def __init__(self, wall_ms: int, mono: float = 1000.0):
        self.now_ms, self.mono = wall_ms, mono

    def wall_ms(self) -> int:
        return self.now_ms

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now_ms += int(seconds * 1000)
        self.mono += seconds
