"""Dates as the register counts them: in Norwegian time."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

OSLO = ZoneInfo("Europe/Oslo")


def norwegian_date(moment: dt.datetime) -> dt.date:
    """The calendar date in Norway at `moment` (an aware datetime)."""
    return moment.astimezone(OSLO).date()


def iso_utc(moment: dt.datetime) -> str:
    """A UTC timestamp as ISO 8601 with `Z`. A naive value is taken to be UTC: SQLite returns
    naive datetimes, and the hub stores every timestamp in UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.isoformat().replace("+00:00", "Z")
