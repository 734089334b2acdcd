"""Where a person lived, from Folkeregisteret's address changes, and so which municipality is
responsible for them on a date ("affiliation").

A moving address change, a settlement, an emigration and a change of protection each start a
new residence; a temporary address does not. A changed address without moving is no move: where
it gives another municipality number than the residence in force (the municipality was
renumbered, split or merged, or its border moved), the person lives under the new number from
the day Folkeregisteret recorded the change, as a residence of its own that is marked as not
moved; where the number is the same, nothing changes. A residence whose address is protected
keeps its municipality for the register's own use, but it is never shown, logged or repeated in
a message.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

NOT_A_MOVE = ("ADDRESS_CHANGED_WITHOUT_MOVING", "TEMPORARY_ADDRESS_CHANGED")
# A temporary address (oppholdsadresse) says nothing about where the person resides.
NOT_A_RESIDENCE = ("TEMPORARY_ADDRESS_CHANGED",)


@dataclass(frozen=True)
class Residence:
    since: dt.date
    municipality: str | None  # None: emigrated or unknown residence
    protected: bool
    sequence_number: int
    # False: the address changed without a move, so this may only give the residence in force a
    # new municipality number (see `residence_history`).
    moved: bool = True


def residence_history(residences: Iterable[Residence]) -> list[Residence]:
    """In the order they took effect; the feed's order breaks ties. A change without moving is
    kept only where it gives another municipality than the residence before it."""
    history: list[Residence] = []
    for residence in sorted(residences, key=lambda r: (r.since, r.sequence_number)):
        if not residence.moved and (
            residence.municipality is None or (history and history[-1].municipality == residence.municipality)
        ):
            continue
        history.append(residence)
    return history


def residence_on(residences: Iterable[Residence], day: dt.date) -> Residence | None:
    """The residence in force on `day`, or None before the first one the register knows."""
    current = None
    for residence in residence_history(residences):
        if residence.since > day:
            break
        current = residence
    return current
