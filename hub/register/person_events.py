"""Person events from Folkeregisteret: identity changes, deaths and duplicate cessations, as the
address flow writes them to the register inside a unit of work the caller owns.

- **Identity change** (`IDENTITY_CHANGED`, from `endringIIdentifikasjonsnummer`): the new number
  and the ceased ones belong to one person. That is proof, and the only proof besides the same
  number, that numbers are one person's: they are linked through `Snapshot.person_for` with it,
  so a number not yet in the register is added to the person who holds another, and two persons
  who each hold one are merged into the older, the merge recorded (`hub person split` can undo
  it). The ceased numbers stay in the identifier history, marked ceased (`ceased_at`,
  `ceased_sequence`), so a fagsystem that still sends the old number reaches the same person.
- **Death** (`PERSON_DIED`, `personErDoed`) and **duplicate cessation**
  (`PERSON_CEASED_AS_DUPLICATE`, `personErOpphoertSomDublett`) are the person's states, kept
  with their date and feed sequence number; a ceased duplicate's number is also marked ceased.
  Nothing is deleted and no registration is refused because of them: an error in NIR must never
  stop a person from taking part (DOMAIN.md), and Folkeregisteret can correct both. The rules
  warn instead (NIR-PERSON-001, NIR-PERSON-002), and the reports count a dead person as such
  (`hub.register.reports`).
- **Before the person is known.** An event about numbers no person in the register has is
  kept all the same (`person_id` None, its numbers beside it) and becomes the person's when one
  of them first appears: the decision that creates the person links the identity change's
  numbers and gives them the death (`hub.domain.snapshot`, `PendingPersonEvent`).

Every event is idempotent on the feed's sequence number (with its type: a look-up's identity
change and death share the look-up's).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.domain.events import AddressChange
from hub.domain.snapshot import (
    IDENTITY_CHANGED,
    NATIONAL_ID,
    PERSON_CEASED_AS_DUPLICATE,
    PERSON_DIED,
)
from hub.register.models import PersonEvent, PersonEventNumber
from hub.register.repository import RegisterRepository, cease_numbers, find_person_id, nudge_held

PERSON_EVENTS = (IDENTITY_CHANGED, PERSON_DIED, PERSON_CEASED_AS_DUPLICATE)


def record_person_event(session: Session, change: AddressChange, now: dt.datetime) -> bool:
    """Write a person event, to its person or kept until they appear; False when the feed item
    was already in."""
    seen = session.scalar(
        select(PersonEvent.id).where(
            PersonEvent.sequence_number == change.sequence_number, PersonEvent.event_type == change.event_type
        )
    )
    if seen is not None:
        return False
    numbers = list(dict.fromkeys((*change.former_national_ids, change.national_id)))
    if change.event_type == IDENTITY_CHANGED:
        ceased = [n for n in numbers if n != change.national_id]
    else:
        numbers = [change.national_id]
        ceased = [change.national_id] if change.event_type == PERSON_CEASED_AS_DUPLICATE else []
    repository = RegisterRepository(session)
    person_id: int | None = None
    if repository.knows_any(numbers):
        if change.event_type == IDENTITY_CHANGED:
            proof = f"Folkeregisteret: identity change (feed item {change.sequence_number})"
            person_id = repository.link([(NATIONAL_ID, n) for n in numbers], now, proof=proof)
            nudge_held(session, [person_id], now)  # what waited under one number may now fit
        else:
            person_id = find_person_id(session, change.national_id)
        if ceased:
            cease_numbers(session, ceased, change.recorded_at, change.sequence_number)
    event = PersonEvent(
        sequence_number=change.sequence_number,
        person_id=person_id,
        event_type=change.event_type,
        event_date=change.event_date,
        recorded_at=change.recorded_at,
        received_at=now,
    )
    session.add(event)
    session.flush()
    session.add_all(PersonEventNumber(person_event_id=event.id, value=n, ceased=n in ceased) for n in numbers)
    session.flush()
    return True
