"""Solar Hijri dates as Iranian analysts read them: golden dates, Saturday weeks, Jalali months across a year's end."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from bazkhord.data.calendar import (
    check_calendar,
    format_date,
    gregorian_label,
    period_key,
    period_label,
    period_start,
    periods_between,
    persian_digits,
    week_start,
)


@pytest.mark.parametrize(("day", "jalali", "gregorian"), [
    (date(2026, 12, 7), "۱۶ آذر ۱۴۰۵", "۷ دسامبر ۲۰۲۶"),
    (date(2026, 3, 21), "۱ فروردین ۱۴۰۵", "۲۱ مارس ۲۰۲۶"),  # Nowruz
    (date(2026, 3, 20), "۲۹ اسفند ۱۴۰۴", "۲۰ مارس ۲۰۲۶"),
])
def test_golden_dates(day: date, jalali: str, gregorian: str) -> None:
    assert format_date(day, "jalali") == jalali
    assert format_date(datetime(day.year, day.month, day.day, 23, 59), "gregorian") == gregorian


def test_weeks_start_on_saturday_in_jalali_and_monday_in_gregorian() -> None:
    monday = date(2026, 12, 7)
    assert week_start(monday, "jalali") == date(2026, 12, 5) and week_start(monday, "jalali").weekday() == 5
    assert week_start(date(2026, 12, 5), "jalali") == date(2026, 12, 5)  # a Saturday is its own week's start
    assert week_start(date(2026, 12, 11), "jalali") == date(2026, 12, 5)  # Friday ends it
    assert week_start(monday, "gregorian") == monday
    assert period_label(period_key(monday, "week", "jalali"), "week", "jalali") == "هفته ۱۴ آذر ۱۴۰۵"


def test_jalali_months_are_cut_on_jalali_month_ends_and_sort_across_the_year() -> None:
    assert period_key(date(2026, 11, 21), "month", "jalali") == "1405-08"  # 30 Aban
    assert period_key(date(2026, 11, 22), "month", "jalali") == "1405-09"  # 1 Azar
    keys = periods_between("1404-11", "1405-02", "month", "jalali")
    assert keys == ["1404-11", "1404-12", "1405-01", "1405-02"] and keys == sorted(keys)
    assert period_label("1405-01", "month", "jalali") == "فروردین ۱۴۰۵"
    assert period_start("1405-01", "month", "jalali") == date(2026, 3, 21)
    assert gregorian_label("1405-09", "month", "jalali") == "2026-11-22"
    assert gregorian_label("2026-W05", "week", "gregorian") == "2026-01-26"  # the analysis' ISO week keys
    assert persian_digits("2026-12") == "۲۰۲۶-۱۲"
    with pytest.raises(ValueError, match="calendar must be one of"):
        check_calendar("lunar")
