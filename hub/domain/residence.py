"""Where a person lived, from Folkeregisteret's address changes, and so which municipality is
responsible for them on a date ("affiliation").

A moving address change, a settlement, an emigration and a change of protection each start a
new residence; a changed address without moving, or a temporary address, does not. A residence
whose address is protected keeps its municipality for the register's own use, but it is never
shown, logged or repeated in a message.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

NOT_A_MOVE = ("ADDRESS_CHANGED_WITHOUT_MOVING", "TEMPORARY_ADDRESS_CHANGED")


@dataclass(frozen=True)
class Residence:
    since: dt.date
    municipality: str | None  # None: emigrated or unknown residence
    protected: bool
    sequence_number: int


def residence_history(residences: Iterable[Residence]) -> list[Residence]:
    """In the order they took effect; the feed's order breaks ties."""
    return sorted(residences, key=lambda r: (r.since, r.sequence_number))


def residence_on(residences: Iterable[Residence], day: dt.date) -> Residence | None:
    """The residence in force on `day`, or None before the first one the register knows."""
    current = None
    for residence in residence_history(residences):
        if residence.since > day:
            break
        current = residence
    return current
