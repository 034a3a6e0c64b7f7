"""Working time (pure): silence is measured in the buyer's working days, so a weekend or a holiday is not
silence. Local dates in the configured time zone; explicit instants in, days out."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

MAX_SPAN_DAYS = 1000  # beyond this, every further day counts as 5/7 of a working day (bounded work per call)


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

    def __post_init__(self) -> None:  # derived lookups (the rules ask for working days on every tick)
        object.__setattr__(self, "_off", frozenset(date.fromisoformat(h).toordinal() for h in self.holidays))
        object.__setattr__(self, "_weekend", frozenset(self.weekend))

    def is_working(self, day: date) -> bool:
        return day.weekday() not in self._weekend and day.toordinal() not in self._off

    def working_days(self, start_ms: int, end_ms: int) -> float:
        """Working time from ``start_ms`` to ``end_ms`` in days: the parts of working days between the two
        instants, each local day counting 1 (23 or 25 hours on a DST change count 1 too)."""
        if end_ms <= start_ms:
            return 0.0
        return _working_days(self, start_ms, end_ms)  # the rules ask for the same spans tick after tick

    def _span(self, start_ms: int, end_ms: int) -> float:
        zone = _zone(self.tz)
        start = datetime.fromtimestamp(start_ms / 1000, zone)
        end = datetime.fromtimestamp(end_ms / 1000, zone)
        day, last = start.date(), end.date()
        extra = 0.0
        if (last - day).days > MAX_SPAN_DAYS:
            extra = ((last - day).days - MAX_SPAN_DAYS) * 5 / 7
            day = last - timedelta(days=MAX_SPAN_DAYS)
            start = datetime.combine(day, time(), zone)
        weekend, off = self._weekend, self._off
        total = 0.0
        first, final = day.toordinal(), last.toordinal()
        wd = day.weekday()
        for n in range(first, final + 1):
            if (wd + n - first) % 7 not in weekend and n not in off:
                if first < n < final:  # a whole local day between the two instants counts exactly 1
                    total += 1.0
                else:
                    d = date.fromordinal(n)
                    d0 = datetime.combine(d, time(), zone)
                    d1 = datetime.combine(d + timedelta(days=1), time(), zone)
                    lo, hi = max(start, d0), min(end, d1)
                    if hi > lo:
                        total += (hi - lo).total_seconds() / (d1 - d0).total_seconds()
        return total + extra

    def day_of(self, ms: int) -> date:
        return datetime.fromtimestamp(ms / 1000, _zone(self.tz)).date()


@lru_cache(maxsize=1 << 16)
def _working_days(cal: WorkCalendar, start_ms: int, end_ms: int) -> float:
    return cal._span(start_ms, end_ms)
