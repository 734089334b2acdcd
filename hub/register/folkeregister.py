"""What Folkeregisteret tells the register, as the unit of work's `uow.folkeregister`: address
changes and person events (identity change, death, duplicate cessation), and the look-ups of the
addresses of persons newly known to the register."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy.orm import Session

from hub.domain.events import AddressChange
from hub.register import addresses
from hub.register.person_events import PERSON_EVENTS, record_person_event


class FolkeregisterRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def record(self, change: AddressChange, now: dt.datetime) -> bool:
        """Write a feed item: a person event, or an address change of a known person. False when
        it was already in, or an address change is for a person the register does not know."""
        if change.event_type in PERSON_EVENTS:
            return record_person_event(self._session, change, now)
        return addresses.record_address_change(self._session, change, now)

    def known_national_ids(self, national_ids: Iterable[str]) -> set[str]:
        return addresses.known_national_ids(self._session, national_ids)

    def pending_lookups(self, now: dt.datetime) -> list[tuple[int, str]]:
        return addresses.pending_lookups(self._session, now)

    def complete_lookups(self, lookup_ids: Iterable[int], now: dt.datetime) -> None:
        addresses.complete_lookups(self._session, lookup_ids, now)
