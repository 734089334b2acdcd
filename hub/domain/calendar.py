"""Dates as the register counts them: in Norwegian time."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

OSLO = ZoneInfo("Europe/Oslo")


def norwegian_date(moment: dt.datetime) -> dt.date:
    """The calendar date in Norway at `moment`. A naive value is taken to be UTC (`as_utc`): the
    register stores every timestamp in UTC and SQLite gives them back naive, and Python would
    read a naive one in the machine's own zone (on a machine set to Oslo, 23:30 UTC would stay
    on the day before).

    Total: a moment so close to the ends of the calendar that Oslo's offset would leave it
    (9999-12-31 23:30 UTC) gives the date in UTC; the rules reject such dates anyway.
    """
    try:
        return as_utc(moment).astimezone(OSLO).date()
    except OverflowError:
        return moment.date()


def end_of_norwegian_day(day: dt.date) -> dt.datetime:
    """The last moment of `day` in Norway, in UTC: what the register knew by the end of that day
    (`hub person show --as-of`). 23:30 UTC on 26 November is already 27 November in Oslo."""
    return dt.datetime.combine(day, dt.time.max, tzinfo=OSLO).astimezone(dt.UTC)


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day `months` months later, or earlier when `months` is negative; the month's last
    day where that day does not exist (31 March + 1 month is 30 April); the calendar's first or last
    day where the result would fall outside it. The primitive under the law's counting below: a
    rule counts forward from its fact with `deadline`, never back from today (counting back from
    31 August gives 30 June, so a fact of 30 June would seem in time on 31 August)."""
    year, month = divmod(day.year * 12 + day.month - 1 + months, 12)
    if year < dt.MINYEAR:
        return dt.date.min
    if year > dt.MAXYEAR:
        return dt.date.max
    for candidate in (day.day, 30, 29, 28):
        try:
            return dt.date(year, month + 1, candidate)
        except ValueError:
            continue
    raise AssertionError("unreachable")  # pragma: no cover


# The law's arithmetic (domstolloven § 148, which forvaltningsloven § 29 points to): a time limit
# in months or years runs forward from the day it begins and ends on the day of the last month
# with the same number; where that month has no such day, on its last day. Fact 30 June, two
# months: 30 August. Fact 31 December, two months: 28 (29) February. The same for years.


def deadline(start: dt.date, *, months: int = 0, years: int = 0) -> dt.date:
    """The last day of a time limit of `months` (and `years`) that begins on `start`."""
    return add_months(start, 12 * years + months)


def is_after_deadline(day: dt.date, start: dt.date, *, months: int = 0, years: int = 0) -> bool:
    """Whether `day` falls after the time limit that begins on `start` has run out (the limit's
    last day itself is still in time)."""
    return day > deadline(start, months=months, years=years)


def period_end(start: dt.date, *, months: int) -> dt.date:
    """The last day of a period of `months` that begins on `start` (both days in it): the day
    before the day of the same number, or the month's last day where it has no such day. A stop
    of three months from 1 March lasts until 31 May; from 30 November, until 28 (29) February."""
    end = add_months(start, months)
    return end - dt.timedelta(days=1) if end.day == start.day and end != dt.date.max else end


def age_on(birth_date: dt.date, day: dt.date) -> int:
    """Whole years of age on `day` (negative before birth): a year is reached on the day of the
    same number, counted as the law counts years, so someone born on 29 February is a year older
    on 28 February of a common year (DOMAIN.md, "Deadlines": "the same for years")."""
    years = day.year - birth_date.year
    if deadline(birth_date, years=years) > day:
        years -= 1
    return years


def birthday(birth_date: dt.date, age: int) -> dt.date:
    """The day a person born on `birth_date` reaches `age`."""
    return deadline(birth_date, years=age)


def as_utc(moment: dt.datetime) -> dt.datetime:
    """A timestamp read from the register, with its zone: SQLite returns naive datetimes, and the
    hub stores every timestamp in UTC (a naive one cannot be compared with an event's)."""
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment


def iso_utc(moment: dt.datetime) -> str:
    """A UTC timestamp as ISO 8601 with `Z` (a naive value is taken to be UTC, see `as_utc`)."""
    return as_utc(moment).isoformat().replace("+00:00", "Z")


# How dates and times are written for people (the support page): the Norwegian way, in Oslo's time.
_NORWEGIAN_DAY = re.compile(r"([0-9]{1,2})\.([0-9]{1,2})\.([0-9]{4})")


def norwegian_day_text(day: dt.date) -> str:
    """`01.12.2026`."""
    return f"{day.day:02d}.{day.month:02d}.{day.year:04d}"


def norwegian_time_text(moment: dt.datetime) -> str:
    """`01.12.2026 18:45`: the moment in Norway (a naive value is taken to be UTC, see `as_utc`)."""
    local = as_utc(moment).astimezone(OSLO)
    return f"{norwegian_day_text(local.date())} {local.hour:02d}:{local.minute:02d}"


def parse_norwegian_day(text: str) -> dt.date:
    """A date written `DD.MM.YYYY` (or `D.M.YYYY`); ValueError for anything else, or a day that
    does not exist (31.02.2026)."""
    found = _NORWEGIAN_DAY.fullmatch(text.strip())
    if found is None:
        raise ValueError("not DD.MM.YYYY")
    day, month, year = (int(part) for part in found.groups())
    return dt.date(year, month, day)
