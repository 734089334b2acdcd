"""The law's arithmetic of time (`hub.domain.calendar`), checked day by day against a separate
statement of the rule in DOMAIN.md ("Deadlines"; domstolloven § 148): a limit in months runs
forward from the day it begins and ends on the day of the last month with the same number, or
on that month's last day where the month has no such day. The same for years, and so for ages."""

from __future__ import annotations

import calendar as stdlib_calendar
import datetime as dt
import time

import pytest

from hub.domain.calendar import (
    age_on,
    birthday,
    deadline,
    end_of_norwegian_day,
    is_after_deadline,
    norwegian_date,
    period_end,
)

# Four years with one 29 February in them, and a turn of the year at each end.
FOUR_YEARS = [
    dt.date(2023, 1, 1) + dt.timedelta(days=n)
    for n in range((dt.date(2027, 1, 1) - dt.date(2023, 1, 1)).days)
]


def law_deadline(start: dt.date, months: int) -> dt.date:
    """The rule as DOMAIN.md words it, written apart from the code under test."""
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    days_in_month = stdlib_calendar.monthrange(year, month)[1]
    return dt.date(year, month, start.day if start.day <= days_in_month else days_in_month)


@pytest.mark.parametrize("months", [1, 2, 3, 12, 24])
def test_every_deadline_of_four_years_ends_where_the_law_says(months: int) -> None:
    for start in FOUR_YEARS:
        expected = law_deadline(start, months)
        assert deadline(start, months=months) == expected, start
        assert not is_after_deadline(expected, start, months=months), start
        assert is_after_deadline(expected + dt.timedelta(days=1), start, months=months), start


def test_a_deadline_in_years_is_one_in_twelve_months() -> None:
    for start in FOUR_YEARS:
        assert deadline(start, years=2) == law_deadline(start, 24) == deadline(start, months=24), start


@pytest.mark.parametrize(
    ("fact", "last_day_in_time"),
    [
        ("2025-06-30", "2025-08-30"),  # DOMAIN.md's examples
        ("2025-01-31", "2025-03-31"),
        ("2025-12-31", "2026-02-28"),
        ("2023-12-31", "2024-02-29"),
        ("2026-02-28", "2026-04-28"),  # the issue's: counted back from 29 or 30 April, these were in time
        ("2024-02-29", "2024-04-29"),
        ("2025-11-30", "2026-01-30"),
    ],
)
def test_the_two_month_deadline_of_the_laws_examples(fact: str, last_day_in_time: str) -> None:
    assert deadline(dt.date.fromisoformat(fact), months=2) == dt.date.fromisoformat(last_day_in_time)


def test_a_period_ends_the_day_before_the_same_numbered_day_or_on_the_short_months_last_day() -> None:
    for start in FOUR_YEARS:
        end = law_deadline(start, 3)
        expected = end - dt.timedelta(days=1) if end.day == start.day else end
        assert period_end(start, months=3) == expected, start


def law_birthday(birth: dt.date, age: int) -> dt.date:
    """The day an age is reached, counted as the law counts years: 28 February in a common year
    for someone born on 29 February."""
    year = birth.year + age
    if (birth.month, birth.day) == (2, 29) and not stdlib_calendar.isleap(year):
        return dt.date(year, 2, 28)
    return birth.replace(year=year)


@pytest.mark.parametrize("age", [16, 18, 55, 56, 67])
def test_an_age_is_reached_on_the_birthday_and_not_the_day_before(age: int) -> None:
    births = [day.replace(year=day.year - 40) for day in FOUR_YEARS if (day.month, day.day) != (2, 29)]
    births += [dt.date(1984, 2, 29), dt.date(1988, 2, 29), dt.date(2000, 2, 29)]
    for birth in births:
        reached = law_birthday(birth, age)
        assert birthday(birth, age) == reached, birth
        assert age_on(birth, reached) == age, birth
        assert age_on(birth, reached - dt.timedelta(days=1)) == age - 1, birth


def test_someone_born_on_29_february_is_a_year_older_on_28_february_of_a_common_year() -> None:
    born = dt.date(2008, 2, 29)
    assert age_on(born, dt.date(2026, 2, 27)) == 17
    assert age_on(born, dt.date(2026, 2, 28)) == 18
    assert age_on(born, dt.date(2028, 2, 28)) == 19  # a leap year: the 29th is the birthday
    assert age_on(born, dt.date(2028, 2, 29)) == 20


@pytest.mark.parametrize(
    ("day", "last_moment"),
    [
        (dt.date(2026, 11, 26), dt.datetime(2026, 11, 26, 22, 59, 59, 999999, tzinfo=dt.UTC)),  # winter: UTC+1
        (dt.date(2026, 6, 30), dt.datetime(2026, 6, 30, 21, 59, 59, 999999, tzinfo=dt.UTC)),  # summer: UTC+2
    ],
)
def test_the_end_of_a_norwegian_day_is_its_last_moment_in_oslo(day: dt.date, last_moment: dt.datetime) -> None:
    """`hub person show --as-of`: a number ceased at 23:30 UTC was ceased the next day in Norway."""
    assert end_of_norwegian_day(day) == last_moment
    assert norwegian_date(last_moment) == day
    assert norwegian_date(last_moment + dt.timedelta(microseconds=1)) == day + dt.timedelta(days=1)


@pytest.mark.parametrize("machine_zone", ["Europe/Oslo", "Asia/Tokyo", "America/New_York", "UTC"])
def test_a_naive_timestamp_from_the_register_is_read_as_utc_whatever_the_machines_zone(
    machine_zone: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite gives the register's UTC timestamps back naive; read in the machine's zone, a death
    recorded at 23:30 UTC on 26 November was dated the 26th on a machine set to Oslo."""
    monkeypatch.setenv("TZ", machine_zone)
    time.tzset()
    try:
        assert norwegian_date(dt.datetime(2026, 11, 26, 23, 30)) == dt.date(2026, 11, 27)
        assert norwegian_date(dt.datetime(2026, 11, 26, 22, 30)) == dt.date(2026, 11, 26)
        assert norwegian_date(dt.datetime(2026, 11, 26, 23, 30, tzinfo=dt.UTC)) == dt.date(2026, 11, 27)
    finally:
        monkeypatch.undo()
        time.tzset()
