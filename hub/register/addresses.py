"""Address changes from Folkeregisteret and the look-ups of persons' addresses: what the
Folkeregister connector and the address flow do to the register, each inside a unit of work the
caller owns."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hub.domain.events import AddressChange
from hub.domain.snapshot import NATIONAL_ID
from hub.register.models import AddressRecord, FolkeregisterLookup, PersonIdentifier
from hub.register.repository import find_person_id


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
    protected = AddressChange.is_protected(change.protection)
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
            national_id=change.national_id,  # whose number it came for: a split places it by it
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
                PersonIdentifier.kind == NATIONAL_ID, PersonIdentifier.value.in_(wanted)
            )
        )
    )


def pending_lookups(session: Session, now: dt.datetime, limit: int = 100) -> list[tuple[int, str]]:
    """Persons whose address has not been looked up since they became known, as (look-up id,
    national id); asks for a look-up of every such person first."""
    has_national_id = (
        select(PersonIdentifier.person_id).where(PersonIdentifier.kind == NATIONAL_ID).distinct()
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
            .where(PersonIdentifier.person_id == person_id, PersonIdentifier.kind == NATIONAL_ID)
            # The number in use: one Folkeregisteret ceased (a D-number that became a
            # fødselsnummer) finds no current address; the newest of the others otherwise.
            .order_by(PersonIdentifier.ceased_at.is_not(None), PersonIdentifier.id.desc())
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
