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


def iso_utc(moment: dt.datetime) -> str:
    """A UTC timestamp as ISO 8601 with `Z`. A naive value is taken to be UTC: SQLite returns
    naive datetimes, and the hub stores every timestamp in UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.isoformat().replace("+00:00", "Z")
