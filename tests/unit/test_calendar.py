"""Working days (streams/calendar.py) against a plain day-by-day reference, written apart from the fast path:
random spans in zones with DST changes, weekends that differ, holidays, same-day and long spans."""
import random
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from streams.calendar import WorkCalendar

DAY = 86_400_000


def reference(cal: WorkCalendar, start_ms: int, end_ms: int) -> float:
    if end_ms <= start_ms:
        return 0.0
    zone = ZoneInfo(cal.tz)
    start, end = datetime.fromtimestamp(start_ms / 1000, zone), datetime.fromtimestamp(end_ms / 1000, zone)
    total, day = 0.0, start.date()
    while day <= end.date():
        if day.weekday() not in cal.weekend and day.isoformat() not in cal.holidays:
            d0 = datetime.combine(day, time(), zone)
            d1 = datetime.combine(day + timedelta(days=1), time(), zone)
            lo, hi = max(start, d0), min(end, d1)
            if hi > lo:
                total += (hi - lo).total_seconds() / (d1 - d0).total_seconds()
        day += timedelta(days=1)
    return total


def test_working_days_equal_the_day_by_day_reference_exactly():
    rng = random.Random(5)
    cals = [WorkCalendar(), WorkCalendar("Europe/Berlin", holidays=("2026-03-30", "2026-04-03", "2026-12-25")),
            WorkCalendar("America/New_York", holidays=("2026-11-26",)), WorkCalendar("Asia/Dubai", weekend=(4, 5)),
            WorkCalendar("Australia/Sydney", weekend=(6,), holidays=("2026-10-05",))]
    base = int(datetime(2026, 1, 1).timestamp() * 1000)
    for _ in range(3000):
        cal = rng.choice(cals)
        start = base + rng.randrange(365 * DAY)
        end = start + rng.choice([rng.randrange(DAY), rng.randrange(10 * DAY), rng.randrange(120 * DAY), -rng.randrange(DAY)])
        assert cal.working_days(start, end) == reference(cal, start, end), (cal, start, end)
        assert cal.working_days(start, end) == reference(cal, start, end)  # and again, from the cache
    assert WorkCalendar("Europe/Berlin").is_working(date(2026, 12, 25))
    assert not WorkCalendar("Europe/Berlin", holidays=("2026-12-25",)).is_working(date(2026, 12, 25))


def test_spans_that_start_or_end_inside_a_dst_change_equal_the_reference():
    """The fast path counts in wall-clock microseconds: instants a few hours either side of a change of offset
    (a lost hour, a repeated one, Lord Howe's half hour) give the reference's floats exactly."""
    rng = random.Random(9)
    changes = [("Europe/Berlin", "2026-03-29T01:00"), ("Europe/Berlin", "2026-10-25T01:00"),
               ("America/New_York", "2026-03-08T07:00"), ("America/New_York", "2026-11-01T06:00"),
               ("Australia/Lord_Howe", "2026-04-04T15:00")]
    for tz, when in changes:
        cal = WorkCalendar(tz, weekend=())
        at = int(datetime.fromisoformat(when + "+00:00").timestamp() * 1000)
        for _ in range(300):
            start = at + rng.randrange(-3 * 3_600_000, 3 * 3_600_000)
            end = rng.choice([start + rng.randrange(3 * 3_600_000), at + rng.randrange(3 * DAY)])
            assert cal._span(start, end) == reference(cal, start, end), (tz, start, end)


def test_works_on_a_day_number_follows_the_weekend_and_holidays():
    cals = [WorkCalendar(), WorkCalendar("Asia/Dubai", weekend=(4, 5)), WorkCalendar(weekend=()),
            WorkCalendar("Europe/Berlin", weekend=(6,), holidays=("2026-12-25", "2027-01-01", "1970-01-01"))]
    epoch = date(1970, 1, 1)
    for cal in cals:
        for d in [*range(0, 20), *range(20_440, 20_900), 40_000]:
            day = epoch + timedelta(days=d)  # the rule written plainly (is_working itself now asks works_on)
            assert cal.works_on(d) == (day.weekday() not in cal.weekend and day.isoformat() not in cal.holidays), (cal, d)
            assert cal.is_working(day) == cal.works_on(d)


def test_wall_clock_from_remembered_offsets_is_the_datetime_conversion():
    """A zone's offset is remembered per hour; around every change of offset (whole, half and quarter hours,
    both directions) and far from any, each instant gives the datetime conversion's wall clock exactly."""
    from streams.calendar import _wall_us

    rng = random.Random(13)
    changes = [("Europe/Berlin", "2026-03-29T01:00"), ("Europe/Berlin", "2026-10-25T01:00"),
               ("America/New_York", "2026-11-01T06:00"), ("Australia/Lord_Howe", "2026-04-04T15:00"),
               ("Australia/Lord_Howe", "2026-10-03T15:30"), ("Asia/Kathmandu", "2026-06-01T00:00"),
               ("Pacific/Chatham", "2026-04-04T14:45"), ("UTC", "2026-01-01T00:00")]
    for tz, when in changes:
        at = int(datetime.fromisoformat(when + "+00:00").timestamp() * 1000)
        cal = WorkCalendar(tz)  # one per zone, as the rules have: offsets remembered from earlier instants are reused
        for _ in range(1200):
            ms = at + rng.choice([rng.randrange(-2 * 3_600_000, 2 * 3_600_000), rng.randrange(-300 * DAY, 300 * DAY),
                                  rng.randrange(-2, 2) * 900_000 + rng.randrange(-1, 2)])
            assert cal._wall(ms) == _wall_us(datetime.fromtimestamp(ms / 1000, ZoneInfo(tz))), (tz, ms)
