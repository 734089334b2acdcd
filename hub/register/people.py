"""One person's register as people read it: `hub person show` and the support page.

What the register holds, as JSON-ready data: identifiers (each with its kind: fødselsnummer,
D-number, H-number or DUF number, and when Folkeregisteret ceased it), the person's states from
Folkeregisteret (dead, ceased as a duplicate) and the identity changes that linked their numbers,
each scheme's state derived from the effective facts, residence permits, where the person lived,
their categories under the integration act, every registration and address change as it was
received, each corrected or annulled registration's chain of versions, and the merges into the
person (by Folkeregisteret or IMDi, split ones too).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from hub.domain.calendar import as_utc, iso_utc, norwegian_date
from hub.domain.events import AddressChange, Origin
from hub.domain.identifiers import InvalidIdentifier, parse_national_id
from hub.domain.lifecycle import derive, effective_facts, version_effects
from hub.domain.residence import Residence, residence_history, residence_on
from hub.domain.rights import categories_from_facts
from hub.domain.snapshot import NATIONAL_ID
from hub.register.identity import merges_of
from hub.register.models import AddressRecord, Person, PersonEvent, PersonIdentifier, RegistrationRecord
from hub.register.repository import STATES, fact_of, find_person_id, person_state, residence_of


def same_person_identifiers(session: Session, identifier: str) -> tuple[str, ...]:
    """`identifier` and every other number the register knows its person by (a DUF number, a
    D-number, a fødselsnummer: the same person), so a search by one finds the others' cases."""
    person_id = find_person_id(session, identifier)
    if person_id is None:
        return (identifier,)
    known = session.scalars(select(PersonIdentifier.value).where(PersonIdentifier.person_id == person_id))
    return tuple(sorted({identifier, *known}))


def birth_date_of(session: Session, person_id: int) -> dt.date | None:
    """From the person's fødselsnummer or D-number (already validated when stored)."""
    for value in session.scalars(
        select(PersonIdentifier.value).where(
            PersonIdentifier.person_id == person_id, PersonIdentifier.kind == NATIONAL_ID
        )
    ):
        try:
            return parse_national_id(value, allow_synthetic=True).birth_date
        except InvalidIdentifier:
            continue
    return None


def _residence_json(residence: Residence | None, *, protected_shown: bool = False) -> dict[str, Any]:
    if residence is None:
        return {"from": None, "municipality": None}
    return {
        "from": residence.since.isoformat(),
        "municipality": None if residence.protected and not protected_shown else residence.municipality,
        **({"protected": True} if residence.protected else {}),
        **({"withoutMoving": True} if not residence.moved else {}),
    }


def _shown_history(residences: list[Residence], *, protected_shown: bool = False) -> list[Residence]:
    """The residences as people may see them: a protected address's change of municipality
    without moving is left out, as even that it changed tells something about where it is."""
    return [r for r in residence_history(residences) if r.moved or not r.protected or protected_shown]


def describe_person(
    session: Session,
    person_id: int,
    *,
    as_of: dt.datetime | None = None,
    on: dt.date | None = None,
    only: ColumnElement[bool] | None = None,
    protected_shown: bool = False,
) -> dict[str, Any]:
    """Everything the register holds about one person, as JSON-ready data.

    `state` is each scheme as derived from the effective `facts` (corrections applied,
    annulments removed); `registrations` is every accepted event as it was sent. With `as_of`,
    only what the register had accepted by then counts ("what did we know on date D"), and the
    state is the one on that date. `municipalityOn` and `categories` are for the day `on` (a
    fact's date, for a ticket), else `as_of`'s, else today. With `only`, only the registrations
    it selects count, for everything made of them (a municipality user's view on the support desk,
    `hub.support.scope`). With `protected_shown`, a protected address's municipality is shown as
    well: only for the person themself (their export, `hub.support.export`).
    """
    person = session.get_one(Person, person_id)
    known = select(PersonIdentifier).where(PersonIdentifier.person_id == person_id)
    query = select(RegistrationRecord).where(RegistrationRecord.person_id == person_id)
    if only is not None:
        query = query.where(only)
    received = select(AddressRecord).where(AddressRecord.person_id == person_id)
    if as_of is not None:  # identifiers and addresses too: what the register knew then
        known = known.where(PersonIdentifier.first_seen_at <= as_of)
        query = query.where(RegistrationRecord.accepted_at <= as_of)
        received = received.where(AddressRecord.received_at <= as_of)
    identifiers = session.scalars(known.order_by(PersonIdentifier.id)).all()
    registrations = session.scalars(query.order_by(RegistrationRecord.fact_date, RegistrationRecord.id)).all()
    effective = effective_facts(fact_of(r) for r in registrations)
    states = derive(effective, on=norwegian_date(as_of) if as_of is not None else None)
    addresses = session.scalars(received.order_by(AddressRecord.sequence_number)).all()
    shown = _shown_history(
        [r for r in map(residence_of, addresses) if r is not None], protected_shown=protected_shown
    )
    events_query = select(PersonEvent).where(PersonEvent.person_id == person_id)
    if as_of is not None:
        events_query = events_query.where(PersonEvent.received_at <= as_of)
    events = session.scalars(events_query.order_by(PersonEvent.sequence_number)).all()
    day = on or norwegian_date(as_of if as_of is not None else dt.datetime.now(dt.UTC))

    def by_then(moment: dt.datetime | None) -> str | None:
        """A moment the person's history records (a number ceased, a merge split), if it had
        happened by `as_of`: what came later was not yet known then."""
        return iso_utc(moment) if moment is not None and (as_of is None or as_utc(moment) <= as_of) else None

    rights = categories_from_facts(effective, on=day, birth_date=birth_date_of(session, person_id))
    return {
        "personId": person.id,
        "createdAt": iso_utc(person.created_at),
        # `kind` is what the number is (fodselsnummer, d-number, h-number, duf).
        "identifiers": [
            {
                "kind": i.number_kind,
                "value": i.value,
                "firstSeenAt": iso_utc(i.first_seen_at),
                "ceasedAt": by_then(i.ceased_at),
            }
            for i in identifiers
        ],
        # Folkeregisteret's word on the person: dead, ceased as a duplicate (see
        # `hub.register.person_events`); neither stops a registration.
        "states": [
            {"state": state.state, "on": state.on.isoformat(), "sequenceNumber": state.sequence_number}
            for state in (person_state(e) for e in events if e.event_type in STATES)
        ],
        "personEvents": [
            {
                "sequenceNumber": e.sequence_number,
                "eventType": e.event_type,
                "eventDate": e.event_date.isoformat() if e.event_date else None,
                "recordedAt": iso_utc(e.recorded_at),
            }
            for e in events
        ],
        "state": {scheme.json_key: state.as_json() for scheme, state in states.items() if state.facts},
        "residencePermits": [
            {"grantedOn": f.fact_date.isoformat(), **f.payload}
            for f in effective
            if f.event_type == "RESIDENCE_PERMIT_REGISTERED"
        ],
        # The municipality the person lived in from each moving date, and from each change of
        # its number without moving (protected ones hidden).
        "affiliation": [_residence_json(r, protected_shown=protected_shown) for r in shown],
        "municipalityOn": {
            "date": day.isoformat(),
            **_residence_json(residence_on(shown, day), protected_shown=protected_shown),
        },
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
        # Each registration that was corrected or annulled, with its versions in the order they
        # count (`hub.domain.lifecycle.version_effects`) and whether it stands.
        "chains": _chains(registrations),
        # The merges into this person (by Folkeregisteret or IMDi), split ones included.
        "merges": [
            {
                "mergeId": m.id,
                "otherPersonId": m.other_id,
                "mergedAt": iso_utc(m.merged_at),
                "mergedBy": m.merged_by,
                "reason": m.reason,
                "ticketId": m.ticket_id,
                "splitAt": by_then(m.split_at),
                "splitBy": m.split_by if by_then(m.split_at) else None,
                "splitReason": m.split_reason if by_then(m.split_at) else None,
            }
            for m in merges_of(session, person_id)
            if as_of is None or as_utc(m.merged_at) <= as_of
        ],
        "registrations": [
            {
                "eventId": r.event_id,
                "action": r.action,
                "registrationId": r.registration_key,
                "eventType": r.event_type,
                "factDate": r.fact_date.isoformat(),
                "sentAt": iso_utc(r.sent_at),
                "receivedAt": iso_utc(r.received_at),
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
                "municipality": None
                if AddressChange.is_protected(a.protection) and not protected_shown
                else a.municipality,
                "protection": a.protection,
                "addressKind": a.address_kind,
                "addressLine": a.address_line,
                "postalCode": a.postal_code,
                "postalPlace": a.postal_place,
            }
            for a in addresses
        ],
    }


def _chains(registrations: Sequence[RegistrationRecord]) -> list[dict[str, Any]]:
    by_key: dict[str, list[RegistrationRecord]] = {}
    for r in registrations:
        by_key.setdefault(r.registration_key, []).append(r)
    chains = []
    for key, rows in by_key.items():
        if len(rows) < 2:
            continue
        row_of = {r.id: r for r in rows}
        effects = version_effects(fact_of(r) for r in rows)
        chains.append(
            {
                "registrationId": key,
                "eventType": rows[0].event_type,
                "standing": effects[-1][1] != "annulled",
                "versions": [
                    {
                        "eventId": row_of[fact.sequence].event_id,
                        "action": fact.action.value,
                        "effect": effect,
                        "factDate": fact.fact_date.isoformat(),
                        "sentAt": iso_utc(row_of[fact.sequence].sent_at),
                        "sourceSystem": row_of[fact.sequence].source_system,
                        "municipality": row_of[fact.sequence].municipality,
                    }
                    for fact, effect in effects
                ],
            }
        )
    return chains
