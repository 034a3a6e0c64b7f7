"""Reporting periods (quotas, the KPI report): a label -> its first and last day, pure."""
from __future__ import annotations

import calendar
import datetime as dt
import re

_YEAR = re.compile(r"^(\d{4})$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
PERIOD_HELP = "a year (2026), a quarter (2026-Q3) or a month (2026-07)"


def period_bounds(label: str) -> tuple[dt.date, dt.date]:
    """``2026`` -> 2026-01-01..2026-12-31; ``2026-Q3`` -> 2026-07-01..2026-09-30; ``2026-07`` -> the month.
    Raises ValueError naming what is accepted."""
    if m := _YEAR.fullmatch(label):
        y = int(m.group(1))
        first, last = (y, 1), (y, 12)
    elif m := _QUARTER.fullmatch(label):
        y, q = int(m.group(1)), int(m.group(2))
        first, last = (y, 3 * q - 2), (y, 3 * q)
    elif m := _MONTH.fullmatch(label):
        y, mo = int(m.group(1)), int(m.group(2))
        first, last = (y, mo), (y, mo)
    else:
        raise ValueError(PERIOD_HELP)
    if not 1970 <= first[0] <= 2148:
        raise ValueError("a year within 1970 .. 2148")
    return dt.date(first[0], first[1], 1), dt.date(last[0], last[1], calendar.monthrange(*last)[1])


def period_of(day: dt.date, kind: str = "quarter") -> str:
    """The label of the period (year, quarter or month) holding ``day``."""
    if kind == "year":
        return f"{day.year}"
    if kind == "month":
        return f"{day.year}-{day.month:02d}"
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
