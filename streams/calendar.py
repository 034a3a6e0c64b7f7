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
    _workweek: tuple[bool, ...] = field(init=False, repr=False, compare=False)  # by weekday (Monday = 0)
    _per_week: int = field(init=False, repr=False, compare=False)  # working weekdays in a week
    _spans: dict[tuple[int, int], float] = field(init=False, repr=False, compare=False)
    _offsets: dict[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:  # derived lookups (the rules ask for working days on every tick)
        object.__setattr__(self, "_off", frozenset(date.fromisoformat(h).toordinal() for h in self.holidays))
        object.__setattr__(self, "_workweek", tuple(d not in self.weekend for d in range(7)))
        object.__setattr__(self, "_per_week", sum(self._workweek))
        object.__setattr__(self, "_spans", {})  # spans asked before: a room's gaps are asked again every tick
        object.__setattr__(self, "_offsets", {})  # the zone's offset (us) by hour since 1970 UTC (``_wall``)

    def is_working(self, day: date) -> bool:
        return self.works_on(day.toordinal() - _EPOCH_ORDINAL)

    def works_on(self, day: int) -> bool:
        """Whether the local date ``day`` days after 1970-01-01 is a working day (no date object made)."""
        ordinal = day + _EPOCH_ORDINAL
        return self._workweek[(ordinal + 6) % 7] and ordinal not in self._off

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
            start, end = self._wall(start_ms), self._wall(end_ms)
        first, final = start // DAY_US + _EPOCH_ORDINAL, end // DAY_US + _EPOCH_ORDINAL
        extra = 0.0
        if final - first > MAX_SPAN_DAYS:
            extra = (final - first - MAX_SPAN_DAYS) * 5 / 7
            first = final - MAX_SPAN_DAYS
            start = (first - _EPOCH_ORDINAL) * DAY_US
        work, off = self._workweek, self._off
        # the first day's part, each whole working day between as 1.0, the last day's part: the floats of adding
        # day by day in order (a loop over the days, each judged, was 3 % of the core's work, 2026-12-06)
        total = 0.0
        if work[(first + 6) % 7] and first not in off:
            total += _part(start, end, first)
        for _ in range(self._whole_days(first, final)):
            total += 1.0
        if final > first and work[(final + 6) % 7] and final not in off:
            total += _part(start, end, final)
        return total + extra

    def _wall(self, ms: int) -> int:
        """``_wall_us(datetime.fromtimestamp(ms / 1000, zone))``: the instant (its microseconds are exactly
        ms x 1000) plus the zone's offset, remembered per hour when it is the same at the hour's first and last
        millisecond (an offset changes at most once an hour); in an hour that changes it, each instant is
        converted. Two datetime conversions a span were three quarters of its cost (callgrind, 2026-12-06)."""
        offsets = self._offsets
        hour = ms // HOUR_MS
        off = offsets.get(hour)
        if off is None:
            zone = _zone(self.tz)
            first, last = hour * HOUR_MS, (hour + 1) * HOUR_MS - 1
            off = _wall_us(datetime.fromtimestamp(first / 1000, zone)) - first * 1000
            if _wall_us(datetime.fromtimestamp(last / 1000, zone)) - last * 1000 != off:
                return _wall_us(datetime.fromtimestamp(ms / 1000, zone))
            if len(offsets) >= MAX_SPANS:
                offsets.clear()
            offsets[hour] = off
        return ms * 1000 + off

    def _whole_days(self, first: int, final: int) -> int:
        """The working days strictly between the ordinals ``first`` and ``final``."""
        days = final - first - 1
        if days <= 0:
            return 0
        work = self._workweek
        count = days // 7 * self._per_week
        wd = (first + 1 + 6) % 7  # the weekday of first + 1; the days left after whole weeks start there too
        for _ in range(days % 7):
            if work[wd]:
                count += 1
            wd = wd + 1 if wd < 6 else 0
        for h in self._off:
            if first < h < final and work[(h + 6) % 7]:
                count -= 1
        return count

    def day_of(self, ms: int) -> date:
        return datetime.fromtimestamp(ms / 1000, _zone(self.tz)).date()


DAY_US: Final = 86_400_000_000
HOUR_MS: Final = 3_600_000
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()


def _part(start: int, end: int, ordinal: int) -> float:
    """The part of the local day ``ordinal`` between the wall-clock instants ``start`` and ``end`` (us)."""
    d0 = (ordinal - _EPOCH_ORDINAL) * DAY_US
    lo, hi = max(start, d0), min(end, d0 + DAY_US)
    return (hi - lo) / 1_000_000 / 86400.0 if hi > lo else 0.0


def _wall_us(t: datetime) -> int:
    """Microseconds from 1970-01-01 00:00 to ``t``'s wall-clock time (its zone's offset ignored)."""
    return ((t.toordinal() - _EPOCH_ORDINAL) * 86_400 + t.hour * 3600 + t.minute * 60 + t.second) * 1_000_000 \
        + t.microsecond

