"""Dates as the register counts them: in Norwegian time."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

OSLO = ZoneInfo("Europe/Oslo")


def norwegian_date(moment: dt.datetime) -> dt.date:
    """The calendar date in Norway at `moment` (an aware datetime).

    Total: a moment so close to the ends of the calendar that Oslo's offset would leave it
    (9999-12-31 23:30 UTC) gives the date in UTC; the rules reject such dates anyway.
    """
    try:
        return moment.astimezone(OSLO).date()
    except OverflowError:
        return moment.date()


def as_utc(moment: dt.datetime) -> dt.datetime:
    """A timestamp read from the register, with its zone: SQLite returns naive datetimes, and the
    hub stores every timestamp in UTC (a naive one cannot be compared with an event's)."""
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment


def iso_utc(moment: dt.datetime) -> str:
    """A UTC timestamp as ISO 8601 with `Z` (a naive value is taken to be UTC, see `as_utc`)."""
    return as_utc(moment).isoformat().replace("+00:00", "Z")
