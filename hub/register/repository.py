"""The register repository: the one read and the one write of the registration path.

`snapshot(events)` reads everything the decisions of a batch need about its persons, in a fixed
number of statements whatever the batch's size. `apply(changes)` writes what they decided, all
changes of a kind in one statement (COPY on PostgreSQL, see `hub.register.database`), and
`release(event_ids)` lets held events go once their answers are confirmed. The decisions
themselves are made elsewhere, over the snapshot (`hub.pipeline.decide`).
"""

from __future__ import annotations

import collections
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Row, Table, case, delete, func, or_, select, update
from sqlalchemy.orm import Session

from hub.domain.calendar import as_utc, norwegian_date
from hub.domain.events import AddressChange, Origin, Registration
from hub.domain.identifiers import number_kind
from hub.domain.lifecycle import Action, Fact
from hub.domain.residence import NOT_A_MOVE, NOT_A_RESIDENCE, Residence
from hub.domain.snapshot import (
    NATIONAL_ID,
    STATES,
    AttachPersonEvent,
    Change,
    CloseTicket,
    HeldEntry,
    Hold,
    HoldAgain,
    Identifier,
    Identify,
    Merge,
    Note,
    OpenTicket,
    PendingPersonEvent,
    PersonState,
    PersonView,
    Registered,
    Snapshot,
    Write,
    content_key,
    identifiers_of,
)
from hub.domain.sources import SourceState
from hub.register.backup import Contents, contents, positions
from hub.register.database import among_parameter, insert_new, insert_rows, prebuilt
from hub.register.models import (
    ACTIVE,
    OUTCOME_ACCEPTED,
    AddressRecord,
    CaseTicket,
    FolkeregisterLookup,
    HeldEvent,
    Person,
    PersonEvent,
    PersonEventNumber,
    PersonIdentifier,
    PersonMerge,
    PersonMergeMove,
    RegistrationRecord,
    TicketOutcome,
    TicketStatus,
)
from hub.register.source_states import revoked_sources

PERSONS = cast(Table, Person.__table__)
PERSON_IDENTIFIERS = cast(Table, PersonIdentifier.__table__)
REGISTRATIONS = cast(Table, RegistrationRecord.__table__)
HELD_EVENTS = cast(Table, HeldEvent.__table__)
TICKET_OUTCOMES = cast(Table, TicketOutcome.__table__)
MERGE_MOVES = cast(Table, PersonMergeMove.__table__)


# The columns of a registration that `fact_of` and `_registered` read: the snapshot selects only
# these, as rows, instead of whole ORM objects (the snapshot's reads were a sixth of a batch's CPU).
_FACT_COLUMNS = tuple(
    REGISTRATIONS.c[name]
    for name in (
        "id",
        "person_id",
        "registration_key",
        "event_type",
        "fact_date",
        "payload",
        "action",
        "sent_at",
    )
)
_REGISTERED_COLUMNS = tuple(
    REGISTRATIONS.c[name]
    for name in (
        "person_id",
        "event_id",
        "registration_key",
        "event_type",
        "topic",
        "partition",
        "offset",
        "accepted_at",
        "warnings",
        "municipality",
        "received_at",
        "action",
        "fact_date",
        "payload",
        "national_id",
        "duf_number",
    )
)


class RegisterRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def snapshot(self, events: Sequence[Registration]) -> Snapshot:
        """What the register holds that deciding these events may need (see `Snapshot`)."""
        return self._read(
            values={v for e in events for _, v in identifiers_of(e.national_id, e.duf_number)},
            event_ids={str(e.event_id) for e in events},
            originals={str(e.corrects_event_id) for e in events if e.corrects_event_id is not None},
        )

    def revoked_sources(self) -> dict[str, SourceState]:
        """The sources IMDi has revoked (`hub sources revoke`), read with the batch they judge."""
        return revoked_sources(self.session)

    def positions(self, dead_letters: str) -> dict[tuple[str, int], int]:
        """Per partition, the first offset the register does not prove done (`hub recover`
        without a backup's manifest; `hub.register.backup.positions`)."""
        return positions(self.session, dead_letters)

    def sizes(self) -> dict[str, int]:
        """How many persons, registrations and addresses the register holds (the demo's summary)."""
        return {
            model.__tablename__: self.session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Person, RegistrationRecord, AddressRecord)
        }

    def contents(self) -> Contents:
        """What the register holds, to compare with another (`hub.register.backup.Contents`)."""
        return contents(self.session)

    def person_with(self, national_id: str | None, duf_number: str | None, at: dt.datetime) -> int:
        """The id of the person with these identifiers, created, completed or merged as an
        accepted registration would (for tools and tests that make a person known)."""
        return cast(int, self.link(identifiers_of(national_id, duf_number), at))

    def link(self, wanted: list[Identifier], at: dt.datetime, *, proof: str | None = None) -> int:
        """The id of the one person who has all these identifiers, created or completed as an
        accepted registration would: the same `Snapshot.person_for` decides. With `proof`
        (Folkeregisteret's identity change), persons who each hold one are merged, recorded."""
        snapshot = self._read({v for _, v in wanted}, set(), set())
        person, changes = snapshot.person_for(wanted, at, proof=proof)
        self.apply(changes)
        return cast(int, person.final().id)

    def knows_any(self, values: Iterable[str]) -> bool:
        """Whether a person in the register has any of these numbers."""
        return bool(self._identifiers_of_persons_with(values))

    def _read(self, values: set[str], event_ids: set[str], originals: set[str]) -> Snapshot:
        s = self.session
        identifiers = self._identifiers_of_persons_with(values)
        every = values | {value for _, _, value in identifiers}
        held: dict[str, HeldEntry] = {}
        pending: dict[int, PendingPersonEvent] = {}
        # The events held for these persons and Folkeregisteret's pending events about their
        # numbers, and then for whoever those also name (a start held with both numbers links a
        # person known by one to a start held with the other; an identity change links a
        # D-number to a fødselsnummer): rounds until no new number turns up, three statements
        # each, mostly one round.
        new, first = set(every), True
        while new:
            ids = list(event_ids) if first else []
            rows = s.scalars(prebuilt(s, _held_for), {"values": list(new), "event_ids": ids})
            found = [_held_entry(h) for h in rows]
            found = [h for h in found if h.event_id not in held]
            held.update((h.event_id, h) for h in found)
            about = _pending_events(s.execute(prebuilt(s, _pending_for), {"values": list(new)}))
            about = [p for p in about if p.id not in pending]
            pending.update((p.id, p) for p in about)
            more = (
                {v for h in found for _, v in h.identifiers} | {n for p in about for n in p.numbers}
            ) - every
            if more:
                identifiers += self._identifiers_of_persons_with(more)
            new = (more | {value for _, _, value in identifiers}) - every
            every |= new
            first = False
        person_ids = sorted({person_id for person_id, _, _ in identifiers})
        event_ids |= set(held)
        originals |= {h.corrects_event_id for h in held.values() if h.corrects_event_id is not None}
        registered = [
            (r.person_id, _registered(r))
            for r in s.execute(prebuilt(s, _registrations), {"event_ids": list(event_ids | originals)})
        ]
        # The originals of the versions a correction names: their owner and first arrival count.
        keys = {r.registration_key for _, r in registered if r.event_id in originals}
        keys -= {r.event_id for _, r in registered}
        if keys:
            registered += [
                (r.person_id, _registered(r))
                for r in s.execute(prebuilt(s, _registrations), {"event_ids": list(keys)})
            ]
        # Persons the register does not know yet (a batch of new claims) have no rows to read.
        of_persons = {"person_ids": person_ids}
        facts = s.execute(prebuilt(s, _facts), of_persons).all() if person_ids else []
        addresses = s.scalars(prebuilt(s, _addresses), of_persons).all() if person_ids else []
        tickets = s.scalars(prebuilt(s, _open_tickets), {"event_ids": list(event_ids), "values": list(every)})
        events = s.scalars(prebuilt(s, _person_states), of_persons).all() if person_ids else []
        return Snapshot.assemble(
            identifiers,
            [(row.person_id, fact_of(row)) for row in facts],
            [(a.person_id, r) for a in addresses if (r := residence_of(a)) is not None],
            registered,
            held.values(),
            [_open_ticket(t) for t in tickets],
            [(e.person_id, person_state(e)) for e in events],
            pending.values(),
        )

    def _identifiers_of_persons_with(self, values: Iterable[str]) -> list[tuple[int, str, str]]:
        """Every identifier of every person who has one of these."""
        rows = self.session.execute(prebuilt(self.session, _identifiers), {"values": list(values)})
        return [(person_id, kind, value) for person_id, kind, value in rows]

    def apply(self, changes: Iterable[Change]) -> None:
        """Write what the decisions changed, in the order the register's keys need: new persons,
        merges, identifiers, Folkeregisteret's events attached, registrations, holds, closed
        tickets."""
        by_kind: dict[type, list[Any]] = collections.defaultdict(list)
        for change in changes:
            by_kind[type(change)].append(change)
        writes: list[Write] = by_kind[Write]
        identifies: list[Identify] = by_kind[Identify]
        self._create_persons([c.person.final() for c in writes] + [c.person.final() for c in identifies])
        self._merge(by_kind[Merge])
        insert_rows(
            self.session,
            PERSON_IDENTIFIERS,
            [
                {
                    "person_id": c.person.final().id,
                    "kind": c.identifier[0],
                    "value": c.identifier[1],
                    "first_seen_at": c.at,
                    "number_kind": number_kind(c.identifier[1]),
                }
                for c in identifies
            ],
        )
        self._attach(by_kind[AttachPersonEvent])
        insert_rows(self.session, REGISTRATIONS, [registration_values(c) for c in writes])
        insert_rows(self.session, HELD_EVENTS, [_held_values(c.entry) for c in by_kind[Hold]])
        self._hold_again(by_kind[HoldAgain])
        self._close_tickets(by_kind[CloseTicket])

    def release(self, event_ids: Sequence[str]) -> None:
        """Held events leave the hold (their answers are confirmed)."""
        if event_ids:
            self.session.execute(prebuilt(self.session, _release), {"event_ids": list(event_ids)})

    def held_to_try_again(self) -> list[HeldEntry]:
        """Held events to decide again on the worker's next round, oldest first: those whose
        persons' numbers changed outside the registration flow (nudged), and those already
        registered. Such an event was accepted but is still held because its answer was never
        confirmed: the worker stopped, or a backup was taken, between the register's commit and
        the hold's release (steps 5 and 7 of `hub.pipeline.checkpoint`). Decided again it
        is the very message again: answered as before, and let go."""
        rows = self.session.scalars(
            select(HeldEvent).where(or_(HeldEvent.nudged_at.is_not(None), _registered_already)).order_by(HeldEvent.id)
        )
        return [_held_entry(h) for h in rows]

    def expired_held(self, held_before: dt.datetime) -> list[HeldEntry]:
        """Held events held since before `held_before`, oldest first; never one already registered
        (its answer is owed, not a rejection: `held_to_try_again`)."""
        rows = self.session.scalars(
            select(HeldEvent)
            .where(HeldEvent.held_at < held_before, ~_registered_already)
            .order_by(HeldEvent.id)
        )
        return [_held_entry(h) for h in rows]

    def _create_persons(self, persons: Iterable[PersonView]) -> None:
        new = list({id(p): p for p in persons if p.id is None}.values())
        ids = insert_new(self.session, PERSONS, [{"created_at": p.created_at} for p in new])
        for person, person_id in zip(new, ids, strict=True):
            person.id = person_id

    def _merge(self, merges: Sequence[Merge]) -> None:
        """Each merged person's rows move to the person they are now, recorded (what moved, the
        other person's creation and look-up, each table's highest row id) so that a split can
        put them back (`hub.register.identity`); then the other person goes."""
        for merge in merges:
            keeper, other = cast(int, merge.keeper.final().id), cast(int, merge.other.id)
            record_merge(self.session, keeper, other, merge.reason, merge.by, merge.at)

    def _attach(self, attaches: Sequence[AttachPersonEvent]) -> None:
        """Folkeregisteret's pending events become their persons'; the numbers they cease are
        marked (the identifiers were written first)."""
        for attach in attaches:
            event = attach.event
            self.session.execute(
                update(PersonEvent)
                .where(PersonEvent.id == event.id)
                .values(person_id=attach.person.final().id)
                .execution_options(synchronize_session=False)
            )
            if event.ceased:
                cease_numbers(self.session, event.ceased, event.recorded_at, event.sequence_number)

    def _hold_again(self, again: Sequence[HoldAgain]) -> None:
        attempts = collections.Counter(c.event_id for c in again)
        for times in sorted(set(attempts.values())):
            ids = [event_id for event_id, n in attempts.items() if n == times]
            self.session.execute(
                update(HeldEvent)
                .where(HeldEvent.event_id.in_(ids))
                .values(attempts=HeldEvent.attempts + times, nudged_at=None)
                .execution_options(synchronize_session=False)
            )

    def _close_tickets(self, closes: Sequence[CloseTicket]) -> None:
        if not closes:
            return
        settled_by = {c.ticket_id: c.event_id for c in closes}
        # The accepted event's link says why it closed; the note is left to a person.
        self.session.execute(
            update(CaseTicket)
            .where(CaseTicket.id.in_(list(settled_by)))
            .values(
                status=TicketStatus.RESOLVED.value,
                linked_event_id=case(settled_by, value=CaseTicket.id),
                resolution_note=None,
                closed_at=closes[0].at,
            )
            .execution_options(synchronize_session=False)
        )
        insert_rows(
            self.session,
            TICKET_OUTCOMES,
            [
                {"ticket_id": ticket_id, "at": closes[0].at, "kind": OUTCOME_ACCEPTED, "event_id": event_id}
                for ticket_id, event_id in settled_by.items()
            ],
        )


# The tables whose rows belong to a person and move with a merge, by the name a merge records.
PERSON_ROWS: dict[str, Any] = {
    "person_identifiers": PersonIdentifier,
    "registrations": RegistrationRecord,
    "addresses": AddressRecord,
    "person_events": PersonEvent,
}


def record_merge(
    session: Session,
    keeper_id: int,
    other_id: int,
    reason: str,
    by: str,
    at: dt.datetime,
    ticket_id: int | None = None,
) -> PersonMerge:
    """Move the other person's rows to the keeper and let the other go, recording what moved,
    the other's creation and Folkeregister look-up, and each table's highest row id (what
    comes after is sorted out by a split, `hub.register.identity`)."""
    other = session.get_one(Person, other_id)
    lookup = session.scalar(select(FolkeregisterLookup).where(FolkeregisterLookup.person_id == other_id))
    merge = PersonMerge(
        keeper_id=keeper_id,
        other_id=other_id,
        other_created_at=other.created_at,
        other_lookup=None
        if lookup is None
        else {
            "id": lookup.id,
            "requested_at": lookup.requested_at.isoformat(),
            "completed_at": lookup.completed_at.isoformat() if lookup.completed_at else None,
        },
        marks={name: session.scalar(select(func.max(model.id))) or 0 for name, model in PERSON_ROWS.items()},
        merged_at=at,
        merged_by=by,
        reason=reason,
        ticket_id=ticket_id,
    )
    session.add(merge)
    session.flush()
    for name, model in PERSON_ROWS.items():
        moved = session.scalars(select(model.id).where(model.person_id == other_id)).all()
        insert_rows(
            session, MERGE_MOVES, [{"merge_id": merge.id, "table_name": name, "row_id": i} for i in moved]
        )
        session.execute(
            update(model)
            .where(model.person_id == other_id)
            .values(person_id=keeper_id)
            .execution_options(synchronize_session=False)
        )
    # The keeper is looked up again if it has not been; the other's look-up is kept on the merge.
    session.execute(delete(FolkeregisterLookup).where(FolkeregisterLookup.person_id == other_id))
    session.execute(delete(Person).where(Person.id == other_id))
    return merge


def nudge_held(session: Session, person_ids: Iterable[int], now: dt.datetime) -> None:
    """These persons' numbers changed outside the registration flow (Folkeregisteret joined
    them, IMDi merged or split them): their held events are tried again on the owning worker's
    next round (`RegistrationFlow.retry_held`), as they are when a registration changes them."""
    ids = sorted(set(person_ids))
    if not ids:
        return
    numbers = select(PersonIdentifier.value).where(PersonIdentifier.person_id.in_(ids))
    session.execute(
        update(HeldEvent)
        .where(or_(HeldEvent.national_id.in_(numbers), HeldEvent.duf_number.in_(numbers)))
        .values(nudged_at=now)
        .execution_options(synchronize_session=False)
    )


def cease_numbers(session: Session, numbers: Iterable[str], at: dt.datetime, sequence_number: int) -> None:
    """Folkeregisteret stopped using these numbers (an identity change, a duplicate ceased): the
    rows stay, so the person is still found by them."""
    session.execute(
        update(PersonIdentifier)
        .where(
            PersonIdentifier.kind == NATIONAL_ID,
            PersonIdentifier.value.in_(sorted(numbers)),
            PersonIdentifier.ceased_at.is_(None),
        )
        .values(ceased_at=at, ceased_sequence=sequence_number)
        .execution_options(synchronize_session=False)
    )


def find_person_id(session: Session, identifier: str) -> int | None:
    """The person with this fødselsnummer, D-number or DUF number, if the register has one."""
    return session.scalar(
        select(PersonIdentifier.person_id).where(PersonIdentifier.value == identifier).limit(1)
    )


# The columns of a registration's row taken from the event as it is, by the same names.
_EVENT_COLUMNS = (
    "action",
    "event_type",
    "fact_date",
    "sent_at",
    "source_system",
    "municipality",
    "payload",
    "writer_schema",
)


def registration_values(write: Write) -> dict[str, Any]:
    """The column values of an accepted registration's row."""
    return {
        **{name: getattr(write.event, name) for name in _EVENT_COLUMNS},
        "event_id": str(write.event.event_id),
        "person_id": write.person.final().id,
        "registration_key": write.registration_key,
        "warnings": [
            {"code": w.code, "message": w.message, "messageNb": w.message_nb} for w in write.warnings
        ],
        "late": write.late,
        "topic": write.origin.topic,
        "partition": write.origin.partition,
        "offset": write.origin.offset,
        "accepted_at": write.at,
        "received_at": write.received_at,
        "national_id": write.event.national_id,
        "duf_number": write.event.duf_number,
    }


def fact_of(row: RegistrationRecord | Row[Any]) -> Fact:
    """A registration row as a fact of the person's timeline (an ORM object, or a row of at
    least `_FACT_COLUMNS`)."""
    return Fact(
        row.registration_key,
        row.event_type,
        row.fact_date,
        row.payload,
        row.id,
        Action(row.action),
        as_utc(row.sent_at),
    )


def residence_of(row: AddressRecord) -> Residence | None:
    """The residence an address change starts, or the new number a change without moving may
    give the residence in force (`hub.domain.residence`); None for a temporary address."""
    if row.event_type in NOT_A_RESIDENCE:
        return None
    protected = AddressChange.is_protected(row.protection)
    if row.event_type in NOT_A_MOVE:
        # Its moving date is still the last move's: the change counts from when it was recorded.
        since = norwegian_date(row.recorded_at)
        return Residence(since, row.municipality, protected, row.sequence_number, moved=False)
    since = row.moved_on or norwegian_date(row.recorded_at)
    return Residence(since, row.municipality, protected, row.sequence_number)


def person_state(row: PersonEvent) -> PersonState:
    """A death or duplicate cessation as the decisions see it: dated by the event's date, or
    the day Folkeregisteret recorded it."""
    return PersonState(
        STATES[row.event_type], row.event_date or norwegian_date(row.recorded_at), row.sequence_number
    )


def _registered(row: Row[Any]) -> Registered:
    """A row of `_REGISTERED_COLUMNS` as the decisions see an event already registered."""
    return registered_of(row._mapping)


def registered_of(row: Mapping[Any, Any]) -> Registered:
    """A registration's columns as the decisions see an event already registered (the person
    is filled in by `Snapshot.assemble`)."""
    warnings = tuple(Note(w["code"], w["message"], w.get("messageNb", "")) for w in row["warnings"])
    origin = Origin(row["topic"], row["partition"], row["offset"])
    named = (
        None
        if row["national_id"] is None and row["duf_number"] is None
        else (row["national_id"], row["duf_number"])
    )
    return Registered(
        row["event_id"],
        row["registration_key"],
        row["event_type"],
        PersonView(row["person_id"]),
        origin,
        row["accepted_at"],
        warnings,
        row["municipality"],
        as_utc(row["received_at"]),
        content_key(row["action"], row["event_type"], row["fact_date"], row["municipality"], row["payload"]),
        named,
    )


# The columns a held event's row shares with `HeldEntry`, by the same names.
_HELD_FIELDS = (
    "event_id",
    "national_id",
    "duf_number",
    "fact_date",
    "reason_code",
    "reason",
    "reason_nb",
    "corrects_event_id",
)


def _held_entry(row: HeldEvent) -> HeldEntry:
    return HeldEntry(
        **{name: getattr(row, name) for name in _HELD_FIELDS},
        held_at=as_utc(row.held_at),
        received_at=as_utc(row.received_at) if row.received_at is not None else None,
        origin=Origin(row.topic, row.partition, row.offset),
        key=row.message_key,
        value=row.message_value,
        order=row.id,
    )


def _held_values(entry: HeldEntry) -> dict[str, Any]:
    return {
        **{name: getattr(entry, name) for name in _HELD_FIELDS},
        "held_at": entry.held_at,
        "received_at": entry.received_at,
        "topic": entry.origin.topic,
        "partition": entry.origin.partition,
        "offset": entry.origin.offset,
        "message_key": entry.key,
        "message_value": entry.value,
        "attempts": 1,
    }


def _open_ticket(t: CaseTicket) -> OpenTicket:
    return OpenTicket(
        t.id,
        t.event_id,
        t.event_type,
        t.source_system,
        t.fact_date,
        t.national_id,
        t.duf_number,
        as_utc(t.sent_at) if t.sent_at is not None else None,
        as_utc(t.first_failed_at),
        t.original_topic,
        t.approved_code,
        t.approved_digest,
    )


def _pending_events(rows: Iterable[Row[Any]]) -> list[PendingPersonEvent]:
    """Rows of `_pending_for` (one per number) as the pending events they belong to."""
    events: dict[int, tuple[Row[Any], set[str], set[str]]] = {}
    for row in rows:
        _, numbers, ceased = events.setdefault(row.id, (row, set(), set()))
        numbers.add(row.value)
        if row.ceased:
            ceased.add(row.value)
    return [
        PendingPersonEvent(
            row.id,
            row.sequence_number,
            row.event_type,
            frozenset(numbers),
            frozenset(ceased),
            row.event_date,
            as_utc(row.recorded_at),
        )
        for row, numbers, ceased in events.values()
    ]


# The register's batch statements, built once per dialect (`prebuilt`), their values bound by
# name: `event_ids`, `values` (identifiers), `keys` (registration keys), `person_ids`.
def _identifiers(dialect: str) -> Any:
    persons = select(PersonIdentifier.person_id).where(
        among_parameter(dialect, PersonIdentifier.value, "values")
    )
    return select(PersonIdentifier.person_id, PersonIdentifier.kind, PersonIdentifier.value).where(
        PersonIdentifier.person_id.in_(persons)
    )


def _registrations(dialect: str) -> Any:
    return select(*_REGISTERED_COLUMNS).where(
        among_parameter(dialect, RegistrationRecord.event_id, "event_ids")
    )


def _pending_for(dialect: str) -> Any:
    """Folkeregisteret's events no person has yet that name one of these numbers, a row for
    each number they name."""
    naming = select(PersonEventNumber.person_event_id).where(
        among_parameter(dialect, PersonEventNumber.value, "values")
    )
    return (
        select(
            PersonEvent.id,
            PersonEvent.sequence_number,
            PersonEvent.event_type,
            PersonEvent.event_date,
            PersonEvent.recorded_at,
            PersonEventNumber.value,
            PersonEventNumber.ceased,
        )
        .join(PersonEventNumber, PersonEventNumber.person_event_id == PersonEvent.id)
        .where(PersonEvent.person_id.is_(None), PersonEvent.id.in_(naming))
    )


def _facts(dialect: str) -> Any:
    return select(*_FACT_COLUMNS).where(among_parameter(dialect, RegistrationRecord.person_id, "person_ids"))


def _addresses(dialect: str) -> Any:
    return select(AddressRecord).where(among_parameter(dialect, AddressRecord.person_id, "person_ids"))


def _person_states(dialect: str) -> Any:
    return (
        select(PersonEvent)
        .where(
            among_parameter(dialect, PersonEvent.person_id, "person_ids"), PersonEvent.event_type.in_(STATES)
        )
        .order_by(PersonEvent.sequence_number)
    )


# A held event whose event the register holds already (see `held_to_try_again`).
_registered_already = (
    select(RegistrationRecord.id).where(RegistrationRecord.event_id == HeldEvent.event_id).exists()
)


def _release(dialect: str) -> Any:
    return delete(HeldEvent).where(among_parameter(dialect, HeldEvent.event_id, "event_ids"))


def _open_tickets(dialect: str) -> Any:
    return select(CaseTicket).where(
        CaseTicket.status.in_(ACTIVE),
        or_(
            among_parameter(dialect, CaseTicket.event_id, "event_ids"),
            among_parameter(dialect, CaseTicket.national_id, "values"),
            among_parameter(dialect, CaseTicket.duf_number, "values"),
        ),
    )


def _held_for(dialect: str) -> Any:
    return select(HeldEvent).where(
        or_(
            among_parameter(dialect, HeldEvent.national_id, "values"),
            among_parameter(dialect, HeldEvent.duf_number, "values"),
            among_parameter(dialect, HeldEvent.event_id, "event_ids"),
        )
    )
