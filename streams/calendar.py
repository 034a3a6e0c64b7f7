"""Working time (pure): silence is measured in the buyer's working days, so a weekend or a holiday is not
silence. Local dates in the configured time zone; explicit instants in, days out."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Final
from zoneinfo import ZoneInfo

MAX_SPAN_DAYS: Final = 1000  # beyond this, every further day counts as 5/7 of a working day (bounded work per call)
MAX_SPANS: Final = 1 << 14  # spans remembered per calendar (one per site and buyer zone; streams/alerts.py in_zone)


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@dataclass(frozen=True)
class WorkCalendar:
    tz: str = "UTC"
    weekend: tuple[int, ...] = (5, 6)  # Monday = 0: Saturday and Sunday
    holidays: tuple[str, ...] = ()  # local ISO dates (YYYY-MM-DD)
    _off: frozenset[int] = field(init=False, repr=False, compare=False)
    _weekend: frozenset[int] = field(init=False, repr=False, compare=False)
    _workweek: tuple[bool, ...] = field(init=False, repr=False, compare=False)  # by weekday (Monday = 0)
    _spans: dict[tuple[int, int], float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:  # derived lookups (the rules ask for working days on every tick)
        object.__setattr__(self, "_off", frozenset(date.fromisoformat(h).toordinal() for h in self.holidays))
        object.__setattr__(self, "_weekend", frozenset(self.weekend))
        object.__setattr__(self, "_workweek", tuple(d not in self.weekend for d in range(7)))
        object.__setattr__(self, "_spans", {})  # spans asked before: a room's gaps are asked again every tick

    def is_working(self, day: date) -> bool:
        return day.weekday() not in self._weekend and day.toordinal() not in self._off

    def working_days(self, start_ms: int, end_ms: int) -> float:
        """Working time from ``start_ms`` to ``end_ms`` in days: the parts of working days between the two
        instants, each local day counting 1 (23 or 25 hours on a DST change count 1 too)."""
        if end_ms <= start_ms:
            return 0.0
        spans = self._spans  # per calendar (a lookup keyed by the calendar itself would hash it every time)
        key = (start_ms, end_ms)
        days = spans.get(key)
        if days is None:
            if len(spans) >= MAX_SPANS:
                spans.clear()
            days = spans[key] = self._span(start_ms, end_ms)
        return days

    def _span(self, start_ms: int, end_ms: int) -> float:
        """In the zone's wall-clock time, as Python's datetimes of one zone subtract and compare: a local day is
        24 hours whatever its length, so each counts 1. Integer microseconds of the wall clock, after the two
        conversions of the instants (the same floats as the datetime arithmetic; tests/unit/test_calendar.py)."""
        if self.tz == "UTC":  # the wall clock is the instant (the datetimes' microseconds are exactly ms x 1000)
            start, end = start_ms * 1000, end_ms * 1000
        else:
            zone = _zone(self.tz)
            start = _wall_us(datetime.fromtimestamp(start_ms / 1000, zone))
            end = _wall_us(datetime.fromtimestamp(end_ms / 1000, zone))
        first, final = start // DAY_US + _EPOCH_ORDINAL, end // DAY_US + _EPOCH_ORDINAL
        extra = 0.0
        if final - first > MAX_SPAN_DAYS:
            extra = (final - first - MAX_SPAN_DAYS) * 5 / 7
            first = final - MAX_SPAN_DAYS
            start = (first - _EPOCH_ORDINAL) * DAY_US
        work, off = self._workweek, self._off
        holidays = len(off) > 0
        total = 0.0
        wd = (first + 6) % 7  # date.fromordinal(first).weekday(), then each day's
        for n in range(first, final + 1):
            working = work[wd] and not (holidays and n in off)
            wd = wd + 1 if wd < 6 else 0
            if working:
                if first < n < final:  # a whole local day between the two instants counts exactly 1
                    total += 1.0
                else:
                    d0 = (n - _EPOCH_ORDINAL) * DAY_US
                    lo, hi = max(start, d0), min(end, d0 + DAY_US)
                    if hi > lo:
                        total += (hi - lo) / 1_000_000 / 86400.0
        return total + extra

    def day_of(self, ms: int) -> date:
        return datetime.fromtimestamp(ms / 1000, _zone(self.tz)).date()


DAY_US: Final = 86_400_000_000
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()


def _wall_us(t: datetime) -> int:
    """Microseconds from 1970-01-01 00:00 to ``t``'s wall-clock time (its zone's offset ignored)."""
    return ((t.toordinal() - _EPOCH_ORDINAL) * 86_400 + t.hour * 3600 + t.minute * 60 + t.second) * 1_000_000 \
        + t.microsecond

