"""Dates as Iranian analysts read them: the Solar Hijri (Jalali) calendar, Persian month names and digits, weeks
from Saturday; or Gregorian, as a setting. The conversion is jdatetime's (a well-kept library), not ours.

Period keys sort as the times do, in either calendar: a Jalali month is `1405-09`, a week is the ISO date of its
first day (a Saturday in Jalali, a Monday in Gregorian), a day its ISO date.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache

import jdatetime

from bazkhord.data.pii import PERSIAN_DIGITS

CALENDARS = ("jalali", "gregorian")
MONTHS_FA = tuple(jdatetime.date.j_months_fa)
GREGORIAN_MONTHS_FA = ("ژانویه", "فوریه", "مارس", "آوریل", "مه", "ژوئن", "ژوئیه", "اوت", "سپتامبر", "اکتبر", "نوامبر",
                       "دسامبر")
_TO_PERSIAN = str.maketrans("0123456789", PERSIAN_DIGITS)


def check_calendar(name: str) -> str:
    if name not in CALENDARS:
        raise ValueError(f"calendar must be one of {', '.join(CALENDARS)}, not {name!r}")
    return name


def persian_digits(text: object) -> str:
    return str(text).translate(_TO_PERSIAN)


def as_date(moment: date | datetime) -> date:
    return moment.date() if isinstance(moment, datetime) else moment


def jalali(moment: date | datetime) -> jdatetime.date:
    return jdatetime.date.fromgregorian(date=as_date(moment))


def week_start(moment: date | datetime, calendar: str) -> date:
    """The first day of the moment's week: Saturday in the Jalali calendar, Monday (ISO) in the Gregorian."""
    day = as_date(moment)
    back = (day.weekday() - 5) % 7 if calendar == "jalali" else day.weekday()  # Monday 0 ... Saturday 5
    return day - timedelta(days=back)


def period_key(moment: date | datetime, period: str, calendar: str) -> str:
    return _period_key(as_date(moment), period, calendar)


@lru_cache(maxsize=65_536)
def _period_key(day: date, period: str, calendar: str) -> str:
    # Cached by day: a report or a page asks for the same few thousand days over and over, and a Jalali
    # conversion is the costly part.
    if period == "day":
        return day.isoformat()
    if period == "week":
        return week_start(day, calendar).isoformat()
    if calendar == "jalali":
        j = jalali(day)
        return f"{j.year:04d}-{j.month:02d}"
    return f"{day.year:04d}-{day.month:02d}"


def period_start(key: str, period: str, calendar: str) -> date:
    """The Gregorian first day of a period key (an ISO week key, `2026-W05`, as the Gregorian analysis writes it)."""
    if period == "week" and "-W" in key:
        iso_year, iso_week = key.split("-W")
        return date.fromisocalendar(int(iso_year), int(iso_week), 1)
    if period != "month":
        return date.fromisoformat(key)
    year, month = (int(part) for part in key.split("-"))
    return jdatetime.date(year, month, 1).togregorian() if calendar == "jalali" else date(year, month, 1)


def next_period(key: str, period: str, calendar: str) -> str:
    start = period_start(key, period, calendar)
    if period == "day":
        return (start + timedelta(days=1)).isoformat()
    if period == "week":
        return (start + timedelta(days=7)).isoformat()
    year, month = (int(part) for part in key.split("-"))
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return f"{year:04d}-{month:02d}"


def periods_between(first: str, last: str, period: str, calendar: str, limit: int = 400) -> list[str]:
    keys = [first]
    while keys[-1] < last and len(keys) < limit:
        keys.append(next_period(keys[-1], period, calendar))
    return keys


def format_date(moment: date | datetime, calendar: str) -> str:
    """«۱۶ آذر ۱۴۰۵» (Jalali) or «۷ دسامبر ۲۰۲۶» (Gregorian), Persian digits either way."""
    day = as_date(moment)
    if calendar == "jalali":
        j = jalali(day)
        return persian_digits(f"{j.day} {MONTHS_FA[j.month - 1]} {j.year}")
    return persian_digits(f"{day.day} {GREGORIAN_MONTHS_FA[day.month - 1]} {day.year}")


def period_label(key: str, period: str, calendar: str) -> str:
    """How a period key reads: «آذر ۱۴۰۵», «هفته ۱۵ آذر ۱۴۰۵», or a day's date."""
    if period == "month":
        year, month = (int(part) for part in key.split("-"))
        names = MONTHS_FA if calendar == "jalali" else GREGORIAN_MONTHS_FA
        return persian_digits(f"{names[month - 1]} {year}")
    text = format_date(period_start(key, period, calendar), calendar)
    return f"هفته {text}" if period == "week" else text


def gregorian_label(key: str, period: str, calendar: str) -> str:
    """The same period in plain ISO Gregorian (the hover text, and a CSV column): its first day, or its month."""
    start = period_start(key, period, calendar)
    if period == "month" and calendar == "gregorian":
        return key
    return start.isoformat()
