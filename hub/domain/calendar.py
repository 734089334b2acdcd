"""Dates as the register counts them: in Norwegian time."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

OSLO = ZoneInfo("Europe/Oslo")


def norwegian_date(moment: dt.datetime) -> dt.date:
    """The calendar date in Norway at `moment` (an aware datetime)."""
    return moment.astimezone(OSLO).date()
