"""What the hub does to the register, each inside a unit of work the caller owns.

Deduplication lives here: an event id already in the register is never written again. A
redelivery of the very message that was written (same topic, partition and offset, as after a
crash before the offset was committed) is told apart from a second sending of the same event,
so the receipt of a redelivery repeats the original outcome.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.orm import Session

from hub.domain.calendar import iso_utc, norwegian_date
from hub.domain.events import AddressChange, Origin, Registration
from hub.domain.identifiers import InvalidIdentifier, parse_national_id
from hub.domain.lifecycle import Action, Fact, derive, effective_facts
from hub.domain.residence import NOT_A_MOVE, Residence, residence_history, residence_on
from hub.domain.rights import categories_from_facts
from hub.register.models import (
    AddressRecord,
    FolkeregisterLookup,
    HeldEvent,
    Person,
    PersonIdentifier,
    RegistrationRecord,
)
from hub.rules import Severity, Target, Violation

# The rule whose warning marks a registration as late.
LATE_REGISTRATION = "NIR-DEADLINE-001"

NATIONAL_ID = "national_id"
DUF = "duf"


class WriteOutcome(enum.Enum):
    ACCEPTED = "ACCEPTED"
    DUPLICATE = "DUPLICATE"


@dataclass(frozen=True)
class WriteResult:
    outcome: WriteOutcome
    registered_at: dt.datetime
    warnings: list[Violation] = field(default_factory=list)


def _identifiers(national_id: str | None, duf_number: str | None) -> list[tuple[str, str]]:
    pairs = []
    if national_id:
        pairs.append((NATIONAL_ID, national_id))
    if duf_number:
        pairs.append((DUF, duf_number))
    return pairs


def resolve_person(
    session: Session, national_id: str | None, duf_number: str | None, now: dt.datetime
) -> Person:
    """The person these identifiers belong to, created or completed as needed.

    When the identifiers turn out to belong to two persons in the register (a DUF-only record
    and a fødselsnummer record of the same person), the two are merged into the older one.
    """
    wanted = _identifiers(national_id, duf_number)
    rows = session.scalars(
        select(PersonIdentifier).where(tuple_(PersonIdentifier.kind, PersonIdentifier.value).in_(wanted))
    ).all()
    person_ids = sorted({row.person_id for row in rows})
    if not person_ids:
        person = Person(created_at=now)
        session.add(person)
        session.flush()
    else:
        person = session.get_one(Person, person_ids[0])
        if len(person_ids) > 1:
            _merge_into(session, person.id, person_ids[1:])
    known = {(row.kind, row.value) for row in rows}
    for kind, value in wanted:
        if (kind, value) not in known:
            session.add(PersonIdentifier(person_id=person.id, kind=kind, value=value, first_seen_at=now))
    session.flush()
    return person


def _merge_into(session: Session, keeper: int, others: list[int]) -> None:
    for model in (PersonIdentifier, RegistrationRecord, AddressRecord):
        session.execute(update(model).where(model.person_id.in_(others)).values(person_id=keeper))
    # The keeper is looked up again if it has not been; the others' look-ups go with them.
    session.execute(delete(FolkeregisterLookup).where(FolkeregisterLookup.person_id.in_(others)))
    session.execute(delete(Person).where(Person.id.in_(others)))


def already_registered(session: Session, registration: Registration, origin: Origin) -> WriteResult | None:
    """The earlier outcome if this event id is in the register already, else None.

    The same message delivered again (same origin) repeats ACCEPTED; another message with the
    same event id is a DUPLICATE.
    """
    existing = session.scalar(
        select(RegistrationRecord).where(RegistrationRecord.event_id == str(registration.event_id))
    )
    if existing is None:
        return None
    redelivery = (existing.topic, existing.partition, existing.offset) == (
        origin.topic,
        origin.partition,
        origin.offset,
    )
    if not redelivery:
        return WriteResult(WriteOutcome.DUPLICATE, existing.accepted_at)
    warnings = [
        Violation(w["code"], Severity.WARNING, w["message"], w.get("messageNb", ""))
        for w in existing.warnings
    ]
    return WriteResult(WriteOutcome.ACCEPTED, existing.accepted_at, warnings)


def _person_ids(session: Session, national_id: str | None, duf_number: str | None) -> list[int]:
    wanted = _identifiers(national_id, duf_number)
    if not wanted:
        return []
    return sorted(
        set(
            session.scalars(
                select(PersonIdentifier.person_id).where(
                    tuple_(PersonIdentifier.kind, PersonIdentifier.value).in_(wanted)
                )
            )
        )
    )


def fact_of(row: RegistrationRecord) -> Fact:
    """A registration row as a fact of the person's timeline."""
    return Fact(row.registration_key, row.event_type, row.fact_date, row.payload, row.id, Action(row.action))


def load_history(
    session: Session, registration: Registration
) -> tuple[tuple[Fact, ...], Target | None, tuple[Residence, ...]]:
    """For the rules: the person's facts, the registration a correction refers to, and where
    the person has lived."""
    person_ids = _person_ids(session, registration.national_id, registration.duf_number)
    rows = session.scalars(
        select(RegistrationRecord).where(RegistrationRecord.person_id.in_(person_ids))
    ).all()
    target = None
    if registration.corrects_event_id is not None:
        row = session.scalar(
            select(RegistrationRecord).where(
                RegistrationRecord.event_id == str(registration.corrects_event_id)
            )
        )
        if row is not None:
            annulled = session.scalar(
                select(RegistrationRecord.id).where(
                    RegistrationRecord.registration_key == row.registration_key,
                    RegistrationRecord.action == Action.ANNUL.value,
                )
            )
            target = Target(
                key=row.registration_key,
                event_type=row.event_type,
                same_person=row.person_id in person_ids,
                annulled=annulled is not None,
            )
    return tuple(fact_of(row) for row in rows), target, _residences(session, person_ids)


def record_registration(
    session: Session,
    registration: Registration,
    origin: Origin,
    warnings: list[Violation],
    now: dt.datetime,
    *,
    registration_key: str | None = None,
) -> WriteResult:
    """Write an accepted registration (the caller has checked it is not there already).

    `registration_key` is the original's event id for a correction or annulment.
    """
    person = resolve_person(session, registration.national_id, registration.duf_number, now)
    session.add(
        RegistrationRecord(
            **registration_values(registration, origin, warnings, now, person.id, registration_key)
        )
    )
    session.flush()
    return WriteResult(outcome=WriteOutcome.ACCEPTED, registered_at=now)


def registration_values(
    registration: Registration,
    origin: Origin,
    warnings: list[Violation],
    now: dt.datetime,
    person_id: int,
    registration_key: str | None = None,
) -> dict[str, Any]:
    """The column values of an accepted registration's row."""
    return dict(
        event_id=str(registration.event_id),
        person_id=person_id,
        action=registration.action,
        registration_key=registration_key or str(registration.event_id),
        event_type=registration.event_type,
        fact_date=registration.fact_date,
        sent_at=registration.sent_at,
        source_system=registration.source_system,
        municipality=registration.municipality,
        payload=registration.payload,
        warnings=[{"code": w.code, "message": w.message, "messageNb": w.message_nb} for w in warnings],
        late=any(w.code == LATE_REGISTRATION for w in warnings),
        writer_schema=registration.writer_schema,
        topic=origin.topic,
        partition=origin.partition,
        offset=origin.offset,
        accepted_at=now,
    )


def record_address_change(session: Session, change: AddressChange, now: dt.datetime) -> bool:
    """Add an address change to a known person's history; False when the feed item was already
    in, or the person is not known to the register (their address is looked up once they are)."""
    exists = session.scalar(
        select(AddressRecord.id).where(AddressRecord.sequence_number == change.sequence_number)
    )
    if exists is not None:
        return False
    person_id = find_person_id(session, change.national_id)
    if person_id is None:
        return False
    protected = _protected(change.protection)
    session.add(
        AddressRecord(
            sequence_number=change.sequence_number,
            person_id=person_id,
            event_type=change.event_type,
            recorded_at=change.recorded_at,
            moved_on=change.moved_on,
            municipality=change.municipality,
            protection=change.protection,
            address_kind=change.address_kind,
            # A protected address is kept only as "protected" and its municipality.
            address_line=None if protected else change.address_line,
            postal_code=None if protected else change.postal_code,
            postal_place=None if protected else change.postal_place,
            received_at=now,
        )
    )
    session.flush()
    return True


def known_national_ids(session: Session, national_ids: Iterable[str]) -> set[str]:
    """Which of these fødselsnumre and D-numbers belong to persons in the register."""
    wanted = sorted(set(national_ids))
    if not wanted:
        return set()
    return set(
        session.scalars(
            select(PersonIdentifier.value).where(
                PersonIdentifier.kind == "national_id", PersonIdentifier.value.in_(wanted)
            )
        )
    )


def pending_lookups(session: Session, now: dt.datetime, limit: int = 100) -> list[tuple[int, str]]:
    """Persons whose address has not been looked up since they became known, as (look-up id,
    national id); asks for a look-up of every such person first."""
    has_national_id = (
        select(PersonIdentifier.person_id).where(PersonIdentifier.kind == "national_id").distinct()
    )
    looked_up = select(FolkeregisterLookup.person_id)
    for (person_id,) in session.execute(
        has_national_id.where(PersonIdentifier.person_id.not_in(looked_up))
    ).all():
        session.add(FolkeregisterLookup(person_id=person_id, requested_at=now))
    session.flush()
    rows = session.execute(
        select(FolkeregisterLookup.id, FolkeregisterLookup.person_id)
        .where(FolkeregisterLookup.completed_at.is_(None))
        .order_by(FolkeregisterLookup.id)
        .limit(limit)
    ).all()
    pending = []
    for lookup_id, person_id in rows:
        national_id = session.scalar(
            select(PersonIdentifier.value)
            .where(PersonIdentifier.person_id == person_id, PersonIdentifier.kind == "national_id")
            .order_by(PersonIdentifier.id.desc())
            .limit(1)
        )
        if national_id is not None:
            pending.append((lookup_id, national_id))
    return pending


def complete_lookups(session: Session, lookup_ids: Iterable[int], now: dt.datetime) -> None:
    session.execute(
        update(FolkeregisterLookup)
        .where(FolkeregisterLookup.id.in_(list(lookup_ids)))
        .values(completed_at=now)
        .execution_options(synchronize_session=False)
    )


def _protected(protection: str) -> bool:
    return AddressChange.is_protected(protection)


def residence_of(row: AddressRecord) -> Residence | None:
    """The residence an address change starts, if it starts one."""
    if row.event_type in NOT_A_MOVE:
        return None
    since = row.moved_on or norwegian_date(row.recorded_at)
    return Residence(since, row.municipality, _protected(row.protection), row.sequence_number)


def _residences(session: Session, person_ids: list[int]) -> tuple[Residence, ...]:
    rows = session.scalars(select(AddressRecord).where(AddressRecord.person_id.in_(person_ids)))
    return tuple(r for r in map(residence_of, rows) if r is not None)


def birth_date_of(session: Session, person_id: int) -> dt.date | None:
    """From the person's fødselsnummer or D-number (already validated when stored)."""
    for value in session.scalars(
        select(PersonIdentifier.value).where(
            PersonIdentifier.person_id == person_id, PersonIdentifier.kind == "national_id"
        )
    ):
        try:
            return parse_national_id(value, allow_synthetic=True).birth_date
        except InvalidIdentifier:
            continue
    return None


def _residence_json(residence: Residence | None) -> dict[str, Any]:
    if residence is None:
        return {"from": None, "municipality": None}
    return {
        "from": residence.since.isoformat(),
        "municipality": None if residence.protected else residence.municipality,
        **({"protected": True} if residence.protected else {}),
    }


def find_person_id(session: Session, identifier: str) -> int | None:
    """The person with this fødselsnummer, D-number or DUF number, if the register has one."""
    return session.scalar(
        select(PersonIdentifier.person_id).where(PersonIdentifier.value == identifier).limit(1)
    )


def describe_person(session: Session, person_id: int, *, as_of: dt.datetime | None = None) -> dict[str, Any]:
    """Everything the register holds about one person, as JSON-ready data.

    `state` is each scheme as derived from the effective `facts` (corrections applied,
    annulments removed); `registrations` is every accepted event as it was sent. With `as_of`,
    only what the register had accepted by then counts ("what did we know on date D"), and the
    state is the one on that date.
    """
    person = session.get_one(Person, person_id)
    identifiers = session.scalars(
        select(PersonIdentifier).where(PersonIdentifier.person_id == person_id).order_by(PersonIdentifier.id)
    ).all()
    query = select(RegistrationRecord).where(RegistrationRecord.person_id == person_id)
    if as_of is not None:
        query = query.where(RegistrationRecord.accepted_at <= as_of)
    registrations = session.scalars(query.order_by(RegistrationRecord.fact_date, RegistrationRecord.id)).all()
    effective = effective_facts(fact_of(r) for r in registrations)
    states = derive(effective, on=as_of.date() if as_of is not None else None)
    addresses = session.scalars(
        select(AddressRecord)
        .where(AddressRecord.person_id == person_id)
        .order_by(AddressRecord.sequence_number)
    ).all()
    residences = [r for r in map(residence_of, addresses) if r is not None]
    day = as_of.date() if as_of is not None else norwegian_date(dt.datetime.now(dt.UTC))
    rights = categories_from_facts(effective, on=day, birth_date=birth_date_of(session, person_id))
    return {
        "personId": person.id,
        "createdAt": iso_utc(person.created_at),
        "identifiers": [
            {"kind": i.kind, "value": i.value, "firstSeenAt": iso_utc(i.first_seen_at)} for i in identifiers
        ],
        "state": {scheme.value: state.as_json() for scheme, state in states.items() if state.facts},
        "residencePermits": [
            {"grantedOn": f.fact_date.isoformat(), **f.payload}
            for f in effective
            if f.event_type == "RESIDENCE_PERMIT_REGISTERED"
        ],
        # The municipality the person lived in from each moving date (protected ones hidden).
        "affiliation": [_residence_json(r) for r in residence_history(residences)],
        "municipalityOn": {"date": day.isoformat(), **_residence_json(residence_on(residences, day))},
        "categories": None if rights is None else rights.as_json(),
        "facts": [
            {
                "registrationId": f.key,
                "eventType": f.event_type,
                "factDate": f.fact_date.isoformat(),
                "payload": f.payload,
            }
            for f in effective
        ],
        "registrations": [
            {
                "eventId": r.event_id,
                "action": r.action,
                "registrationId": r.registration_key,
                "eventType": r.event_type,
                "factDate": r.fact_date.isoformat(),
                "sentAt": iso_utc(r.sent_at),
                "sourceSystem": r.source_system,
                "municipality": r.municipality,
                "payload": r.payload,
                "warnings": r.warnings,
                "late": r.late,
                "writerSchema": r.writer_schema,
                "origin": asdict(Origin(r.topic, r.partition, r.offset)),
                "acceptedAt": iso_utc(r.accepted_at),
            }
            for r in registrations
        ],
        "addresses": [
            {
                "sequenceNumber": a.sequence_number,
                "eventType": a.event_type,
                "recordedAt": iso_utc(a.recorded_at),
                "movedOn": a.moved_on.isoformat() if a.moved_on else None,
                # Even the municipality of a protected address is not shown.
                "municipality": None if _protected(a.protection) else a.municipality,
                "protection": a.protection,
                "addressKind": a.address_kind,
                "addressLine": a.address_line,
                "postalCode": a.postal_code,
                "postalPlace": a.postal_place,
            }
            for a in addresses
        ],
    }


# --- events held for a predecessor ------------------------------------------------------------


def hold_event(
    session: Session,
    registration: Registration,
    origin: Origin,
    key: bytes | None,
    value: bytes,
    reason: Violation,
    now: dt.datetime,
) -> None:
    """Keep an event until what it depends on arrives (or the hold limit passes)."""
    held = session.scalar(select(HeldEvent).where(HeldEvent.event_id == str(registration.event_id)))
    if held is not None:
        held.attempts += 1
        return
    session.add(
        HeldEvent(
            event_id=str(registration.event_id),
            national_id=registration.national_id,
            duf_number=registration.duf_number,
            fact_date=registration.fact_date,
            topic=origin.topic,
            partition=origin.partition,
            offset=origin.offset,
            message_key=key,
            message_value=value,
            reason_code=reason.code,
            reason=reason.message,
            reason_nb=reason.message_nb,
            held_at=now,
            attempts=1,
        )
    )
    session.flush()


def held_for_person(session: Session, national_id: str | None, duf_number: str | None) -> list[HeldEvent]:
    """The events held for the person with either identifier (or any other identifier of theirs)."""
    person_ids = _person_ids(session, national_id, duf_number)
    identifiers = set(
        session.scalars(select(PersonIdentifier.value).where(PersonIdentifier.person_id.in_(person_ids)))
    ) | {i for i in (national_id, duf_number) if i}
    return list(
        session.scalars(
            select(HeldEvent)
            .where(HeldEvent.national_id.in_(identifiers) | HeldEvent.duf_number.in_(identifiers))
            .order_by(HeldEvent.fact_date, HeldEvent.id)
        )
    )


def held_for_persons(session: Session, identifiers: Iterable[str]) -> list[HeldEvent]:
    """The events held for any person with one of these identifiers (or another identifier of
    theirs), in three queries whatever their number; none at all when nothing is held."""
    if session.scalar(select(HeldEvent.id).limit(1)) is None:
        return []
    wanted = sorted(set(identifiers))
    person_ids = select(PersonIdentifier.person_id).where(PersonIdentifier.value.in_(wanted))
    known = set(
        session.scalars(select(PersonIdentifier.value).where(PersonIdentifier.person_id.in_(person_ids)))
    )
    every = sorted(known | set(wanted))
    return list(
        session.scalars(
            select(HeldEvent)
            .where(HeldEvent.national_id.in_(every) | HeldEvent.duf_number.in_(every))
            .order_by(HeldEvent.fact_date, HeldEvent.id)
        )
    )


def release_held(session: Session, event_id: str) -> None:
    session.execute(delete(HeldEvent).where(HeldEvent.event_id == event_id))


def expired_held(session: Session, held_before: dt.datetime) -> list[HeldEvent]:
    return list(
        session.scalars(select(HeldEvent).where(HeldEvent.held_at < held_before).order_by(HeldEvent.id))
    )
