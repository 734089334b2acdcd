"""Person events from Folkeregisteret: identity changes, deaths and duplicate cessations, as the
address flow writes them to the register inside a unit of work the caller owns.

- **Identity change** (`IDENTITY_CHANGED`, from `endringIIdentifikasjonsnummer`): the new number
  and the ceased ones belong to one person. They are linked through `Snapshot.person_for`, the
  same decision that joins a DUF number and a fødselsnummer sent in one registration: a number
  not yet in the register is added to the person who holds another, and two persons who each
  hold one are merged into the older. The ceased numbers stay in the identifier history, marked
  ceased (`ceased_at`, `ceased_sequence`), so a fagsystem that still sends the old number
  reaches the same person. Nothing is written for a person the register does not know.
- **Death** (`PERSON_DIED`, `personErDoed`) and **duplicate cessation**
  (`PERSON_CEASED_AS_DUPLICATE`, `personErOpphoertSomDublett`) are the person's states, kept
  with their date and feed sequence number; a ceased duplicate's number is also marked ceased.
  Nothing is deleted and no registration is refused because of them: an error in NIR must never
  stop a person from taking part (DOMAIN.md), and Folkeregisteret can correct both. The rules
  warn instead (NIR-PERSON-001, NIR-PERSON-002), and the reports count a dead person as such
  (`hub.register.reports`).

Every event is idempotent on the feed's sequence number.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hub.domain.events import AddressChange
from hub.domain.snapshot import NATIONAL_ID
from hub.register.models import PersonEvent, PersonIdentifier
from hub.register.repository import RegisterRepository, find_person_id

IDENTITY_CHANGED = "IDENTITY_CHANGED"
PERSON_DIED = "PERSON_DIED"
PERSON_CEASED_AS_DUPLICATE = "PERSON_CEASED_AS_DUPLICATE"
PERSON_EVENTS = (IDENTITY_CHANGED, PERSON_DIED, PERSON_CEASED_AS_DUPLICATE)


def record_person_event(session: Session, change: AddressChange, now: dt.datetime) -> bool:
    """Write a person event to a known person; False when the feed item was already in, or the
    register knows none of the numbers it names."""
    seen = session.scalar(select(PersonEvent.id).where(PersonEvent.sequence_number == change.sequence_number))
    if seen is not None:
        return False
    if change.event_type == IDENTITY_CHANGED:
        numbers = list(dict.fromkeys((*change.former_national_ids, change.national_id)))
        person_id = RegisterRepository(session).link(
            [(NATIONAL_ID, n) for n in numbers], now, known_only=True
        )
        ceased = [n for n in numbers if n != change.national_id]
    else:
        person_id = find_person_id(session, change.national_id)
        ceased = [change.national_id] if change.event_type == PERSON_CEASED_AS_DUPLICATE else []
    if person_id is None:
        return False
    if ceased:
        session.execute(
            update(PersonIdentifier)
            .where(
                PersonIdentifier.kind == NATIONAL_ID,
                PersonIdentifier.value.in_(ceased),
                PersonIdentifier.ceased_at.is_(None),
            )
            .values(ceased_at=change.recorded_at, ceased_sequence=change.sequence_number)
            .execution_options(synchronize_session=False)
        )
    session.add(
        PersonEvent(
            sequence_number=change.sequence_number,
            person_id=person_id,
            event_type=change.event_type,
            event_date=change.event_date,
            recorded_at=change.recorded_at,
            received_at=now,
        )
    )
    session.flush()
    return True
