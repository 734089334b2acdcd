"""What the register holds about one person, or about a number it has no person for, as the right
of access (GDPR art. 15) reads it: the unit of work's `uow.person_data`. What the export shows of
it, and what it leaves out because it names another person, is `hub.support.export`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from hub.register.models import (
    CaseTicket,
    FolkeregisterLookup,
    HeldEvent,
    PersonEvent,
    PersonEventNumber,
    PersonIdentifier,
    PersonMerge,
    PersonMergeMove,
)
from hub.register.people import describe_person, same_person_identifiers


class PersonDataRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def numbers_of(self, person_id: int) -> set[str]:
        """Every number the register knows the person by."""
        return set(
            self._session.scalars(
                select(PersonIdentifier.value).where(PersonIdentifier.person_id == person_id)
            )
        )

    def describe(
        self,
        person_id: int,
        *,
        as_of: dt.datetime | None = None,
        on: dt.date | None = None,
        only: ColumnElement[bool] | None = None,
        protected_shown: bool = False,
    ) -> dict[str, Any]:
        """The person as `hub.register.people.describe_person` has them (its arguments)."""
        return describe_person(
            self._session, person_id, as_of=as_of, on=on, only=only, protected_shown=protected_shown
        )

    def same_person_numbers(self, identifier: str) -> tuple[str, ...]:
        """`identifier` and every other number the register knows its person by
        (`hub.register.people.same_person_identifiers`)."""
        return same_person_identifiers(self._session, identifier)

    def tickets_naming(self, numbers: Iterable[str]) -> list[CaseTicket]:
        """The case tickets that name any of the numbers, as DUF number or national id, by number."""
        wanted = list(numbers)
        return list(
            self._session.scalars(
                select(CaseTicket)
                .where(or_(CaseTicket.duf_number.in_(wanted), CaseTicket.national_id.in_(wanted)))
                .order_by(CaseTicket.id)
            )
        )

    def held_naming(self, numbers: Iterable[str]) -> list[HeldEvent]:
        """The held events that name any of the numbers, oldest first."""
        wanted = list(numbers)
        return list(
            self._session.scalars(
                select(HeldEvent)
                .where(or_(HeldEvent.national_id.in_(wanted), HeldEvent.duf_number.in_(wanted)))
                .order_by(HeldEvent.id)
            )
        )

    def lookups_of(self, person_id: int) -> list[FolkeregisterLookup]:
        """The Folkeregister connector's look-ups of the person."""
        return list(
            self._session.scalars(
                select(FolkeregisterLookup).where(FolkeregisterLookup.person_id == person_id)
            )
        )

    def person_events(self, person_id: int | None, numbers: Iterable[str]) -> list[PersonEvent]:
        """Folkeregisteret's person events of the person (None: of no registered person), and
        those kept before their person was known that name one of the numbers; in sequence."""
        naming = select(PersonEventNumber.person_event_id).where(PersonEventNumber.value.in_(list(numbers)))
        unknown_person = PersonEvent.person_id.is_(None) & PersonEvent.id.in_(naming)
        return list(
            self._session.scalars(
                select(PersonEvent)
                .where(
                    unknown_person
                    if person_id is None
                    else or_(PersonEvent.person_id == person_id, unknown_person)
                )
                .order_by(PersonEvent.sequence_number, PersonEvent.id)
            )
        )

    def event_numbers(self, event_ids: Iterable[int]) -> list[PersonEventNumber]:
        """The numbers these person events named, in order."""
        return list(
            self._session.scalars(
                select(PersonEventNumber)
                .where(PersonEventNumber.person_event_id.in_(list(event_ids)))
                .order_by(PersonEventNumber.id)
            )
        )

    def merges_of_either_side(self, person_id: int) -> list[PersonMerge]:
        """Each merge into the person and each they were split out of again, oldest first."""
        return list(
            self._session.scalars(
                select(PersonMerge)
                .where(or_(PersonMerge.keeper_id == person_id, PersonMerge.other_id == person_id))
                .order_by(PersonMerge.id)
            )
        )

    def moved_by(self, merge_ids: Iterable[int]) -> dict[int, dict[str, int]]:
        """How many rows of each table each merge moved, by merge."""
        moved: dict[int, dict[str, int]] = {}
        for merge_id, table, count in self._session.execute(
            select(PersonMergeMove.merge_id, PersonMergeMove.table_name, func.count())
            .where(PersonMergeMove.merge_id.in_(list(merge_ids)))
            .group_by(PersonMergeMove.merge_id, PersonMergeMove.table_name)
        ):
            moved.setdefault(merge_id, {})[table] = count
        return moved
