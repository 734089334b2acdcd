"""Many registrations in one transaction with a fixed number of statements: what the register
holds about the batch's persons is read in a handful of queries, the rules run in memory, and
the accepted rows are inserted together.

This is the common case only. `plan_batch` returns None whenever a registration needs what the
one-by-one path does (a correction or annulment, an event id seen before, two persons to merge,
identifiers shared in ways only the one-by-one order settles, a held event or a case ticket to
settle), and the caller then takes the batch one by one. The outcomes are the same either way;
tests/integration/test_batch.py compares the two.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, or_, select
from sqlalchemy.orm import Session

from hub.domain.events import Origin, Registration
from hub.domain.lifecycle import Action, Fact
from hub.domain.residence import Residence
from hub.register.database import among, insert_new, insert_rows
from hub.register.models import (
    AddressRecord,
    CaseTicket,
    HeldEvent,
    Person,
    PersonIdentifier,
    RegistrationRecord,
)
from hub.register.operations import _identifiers, fact_of, registration_values, residence_of
from hub.rules import Violation

ACTIVE_TICKETS = ("open", "replayed")
# The tables the batch inserts into, for SQLAlchemy Core.
PERSONS = cast(Table, Person.__table__)
PERSON_IDENTIFIERS = cast(Table, PersonIdentifier.__table__)
REGISTRATIONS = cast(Table, RegistrationRecord.__table__)
Identity = tuple[tuple[str, str], ...]  # a registration's (kind, value) identifiers


@dataclass
class _Slot:
    """One person of the batch: one already in the register, or one the batch creates."""

    person_id: int | None
    identity: Identity
    facts: list[Fact] = field(default_factory=list)
    residences: tuple[Residence, ...] = ()
    new_identifiers: list[tuple[str, str]] = field(default_factory=list)
    accepted: bool = False  # whether one of its registrations is accepted (persons are made for those)


@dataclass
class BatchPlan:
    slots: list[_Slot]  # one per registration, in order (shared by registrations of one person)
    _rows: list[tuple[_Slot, dict[str, Any]]] = field(default_factory=list)
    _sequence: itertools.count[int] = field(default_factory=lambda: itertools.count(2**40))

    def history(self, index: int) -> tuple[tuple[Fact, ...], tuple[Residence, ...]]:
        slot = self.slots[index]
        return tuple(slot.facts), slot.residences

    def accept(
        self,
        index: int,
        registration: Registration,
        origin: Origin,
        warnings: list[Violation],
        now: dt.datetime,
    ) -> None:
        """Keep the registration for the batch's insert, and let later ones see it."""
        slot = self.slots[index]
        if slot.person_id is None and not slot.accepted:
            slot.new_identifiers = list(slot.identity)
        slot.accepted = True
        row = registration_values(registration, origin, warnings, now, 0)
        self._rows.append((slot, row))
        slot.facts.append(
            Fact(
                row["registration_key"],
                row["event_type"],
                row["fact_date"],
                row["payload"],
                next(self._sequence),
            )
        )

    def write(self, session: Session, now: dt.datetime) -> None:
        """Insert the new persons, their identifiers and the accepted registrations, one
        statement each (SQLAlchemy Core, and COPY on PostgreSQL: the rows are plain values, the ORM
        has nothing to add)."""
        slots = _unique(slot for slot, _ in self._rows)
        new = [slot for slot in slots if slot.person_id is None]
        ids = insert_new(session, PERSONS, [{"created_at": now} for _ in new])
        for slot, person_id in zip(new, ids, strict=True):
            slot.person_id = person_id
        identifiers = [
            {"person_id": slot.person_id, "kind": kind, "value": value, "first_seen_at": now}
            for slot in slots
            for kind, value in slot.new_identifiers
        ]
        insert_rows(session, PERSON_IDENTIFIERS, identifiers)
        insert_rows(
            session, REGISTRATIONS, [{**row, "person_id": slot.person_id} for slot, row in self._rows]
        )
        self._rows.clear()


def _unique(slots: Iterable[_Slot]) -> list[_Slot]:
    seen: dict[int, _Slot] = {}
    for slot in slots:
        seen.setdefault(id(slot), slot)
    return list(seen.values())


def plan_batch(session: Session, registrations: list[Registration]) -> BatchPlan | None:
    """Read what the batch needs in a few queries; None when the batch must go one by one."""
    if any(r.action != Action.REGISTER.value or r.corrects_event_id is not None for r in registrations):
        return None
    event_ids = [str(r.event_id) for r in registrations]
    if len(set(event_ids)) != len(event_ids):
        return None
    if session.scalar(
        select(RegistrationRecord.id).where(among(session, RegistrationRecord.event_id, event_ids)).limit(1)
    ):
        return None
    if session.scalar(select(HeldEvent.id).where(among(session, HeldEvent.event_id, event_ids)).limit(1)):
        return None
    identities: list[Identity] = [tuple(_identifiers(r.national_id, r.duf_number)) for r in registrations]
    values = sorted({value for identity in identities for _, value in identity})
    if session.scalar(
        select(CaseTicket.id)
        .where(
            CaseTicket.status.in_(ACTIVE_TICKETS),
            or_(
                among(session, CaseTicket.event_id, event_ids),
                among(session, CaseTicket.duf_number, values),
                among(session, CaseTicket.national_id, values),
            ),
        )
        .limit(1)
    ):
        return None  # a ticket this batch may close: the one-by-one path settles it

    known: dict[tuple[str, str], int] = {
        (kind, value): person_id
        for kind, value, person_id in session.execute(
            select(PersonIdentifier.kind, PersonIdentifier.value, PersonIdentifier.person_id).where(
                among(session, PersonIdentifier.value, values)
            )
        )
    }
    slots_by_identity: dict[Identity, _Slot] = {}
    users: dict[tuple[str, str], set[Identity]] = defaultdict(set)
    for identity in identities:
        for identifier in identity:
            users[identifier].add(identity)
    for identity in set(identities):
        persons = {known[i] for i in identity if i in known}
        if len(persons) > 1:
            return None  # two persons to merge
        for identifier in identity:
            sharing = users[identifier] - {identity}
            if sharing and not all(i in known for other in sharing for i in other + identity):
                return None  # which person an identifier joins depends on the order of acceptance
        person_id = next(iter(persons), None)
        slots_by_identity[identity] = _Slot(
            person_id, identity, new_identifiers=[i for i in identity if i not in known] if person_id else []
        )
    # Identities of one existing person share its history.
    by_person: dict[int, list[_Slot]] = defaultdict(list)
    for slot in slots_by_identity.values():
        if slot.person_id is not None:
            by_person[slot.person_id].append(slot)
    if by_person:
        person_ids = list(by_person)
        facts: dict[int, list[Fact]] = defaultdict(list)
        for row in session.scalars(
            select(RegistrationRecord).where(among(session, RegistrationRecord.person_id, person_ids))
        ):
            facts[row.person_id].append(fact_of(row))
        residences: dict[int, list[Residence]] = defaultdict(list)
        for address in session.scalars(
            select(AddressRecord).where(among(session, AddressRecord.person_id, person_ids))
        ):
            residence = residence_of(address)
            if residence is not None:
                residences[address.person_id].append(residence)
        for person_id, slots in by_person.items():
            shared = facts[person_id]
            for slot in slots:
                slot.facts = shared  # one list: what one identity adds, the others see
                slot.residences = tuple(residences[person_id])
    return BatchPlan([slots_by_identity[identity] for identity in identities])
