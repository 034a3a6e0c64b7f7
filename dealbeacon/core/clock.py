"""The only place that reads the wall clock. Domain logic takes ``now`` as an argument; edges pass a Clock."""
from __future__ import annotations

import re
import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


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


class SiteClocks:
    """The external clock (``DEALBEACON_CLOCK=external``): the latest ``now`` each site posted to
    ``POST /v1/sites/{site}/clock``. Room updates without ``updated_at`` and alert delivery follow it."""

    def __init__(self) -> None:
        self._now: dict[str, int] = {}

    def advance(self, site: str, now_ms: int) -> None:
        self._now[site] = max(now_ms, self._now.get(site, now_ms))

    def get(self, site: str) -> int | None:
        return self._now.get(site)

    def latest(self) -> int | None:
        return max(self._now.values(), default=None)


def check_zone(name: str) -> str:
    """``name`` if it is an IANA time zone (``Europe/Berlin``), else ValueError (for validators). Judged by
    shape first (a name is looked up as a file: no long, dotted or odd names reach the file system)."""
    if len(name) > 64 or not _ZONE_NAME.fullmatch(name):
        raise ValueError("not an IANA time zone (e.g. Europe/Berlin)")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError("not an IANA time zone (e.g. Europe/Berlin)") from None
    return name


_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}")

