"""Case tickets in the register: opened from dead letters, closed by accepted events, resolved or
discarded by support staff, or filed by hand. Each function works inside the caller's session."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from hub.domain.calendar import iso_utc, norwegian_date
from hub.domain.events import Origin, Registration
from hub.domain.identifiers import InvalidIdentifier, check_duf_number, is_ascii_digits, mask
from hub.domain.lifecycle import is_repeatable
from hub.domain.municipalities import is_municipality_number, municipality_on
from hub.domain.redaction import clean, fits
from hub.errors import DecodeError, HubError, Quarantined
from hub.pipeline.deadletter import (
    H_ERROR_CLASS,
    H_ERROR_CODE,
    H_ERROR_MESSAGE,
    H_ERROR_MESSAGE_NB,
    H_OFFSET,
    H_OMITTED,
    H_PARTITION,
    H_TOPIC,
    read_headers,
)
from hub.pipeline.decode import decode_registration
from hub.register.models import (
    ACTIVE,
    OUTCOME_ACCEPTED,
    OUTCOME_FAILED,
    CaseTicket,
    PersonIdentifier,
    RegistrationRecord,
    TicketEdit,
    TicketOutcome,
    TicketStatus,
)
from hub.rules import IDENTITY_CONFLICT
from hub.schemas.codec import SchemaCatalog
from hub.schemas.contract import to_json
from hub.support.access import audit


class TicketError(HubError):
    """A support action that does not fit the ticket (wrong state, unknown ticket)."""

    code = "NIR-TICKET"


@dataclass(frozen=True)
class TicketFilter:
    status: str | None = None
    error_code: str | None = None
    source_system: str | None = None
    municipality: str | None = None
    duf_number: str | None = None
    failed_from: dt.datetime | None = None
    failed_until: dt.datetime | None = None
    # One person's identifiers (all the numbers the register knows them by): a ticket that
    # names any of them, as its DUF number or its national id.
    identifiers: tuple[str, ...] = ()
    # The tickets a user's scope allows (`hub.support.scope.Scope.tickets`); None: every ticket.
    within: Any = None

    def apply(self, query: Any) -> Any:
        if self.within is not None:
            query = query.where(self.within)
        for column, value in (
            (CaseTicket.status, self.status),
            (CaseTicket.error_code, self.error_code),
            (CaseTicket.source_system, self.source_system),
            (CaseTicket.municipality, self.municipality),
            (CaseTicket.duf_number, self.duf_number),
        ):
            if value is not None:
                query = query.where(column == value)
        if self.identifiers:
            wanted = list(self.identifiers)
            query = query.where(or_(CaseTicket.duf_number.in_(wanted), CaseTicket.national_id.in_(wanted)))
        if self.failed_from is not None:
            query = query.where(CaseTicket.last_failed_at >= self.failed_from)
        if self.failed_until is not None:
            query = query.where(CaseTicket.last_failed_at <= self.failed_until)
        return query


def _decoded(catalog: SchemaCatalog, value: bytes | None) -> Registration | None:
    try:
        return decode_registration(catalog, value)
    except DecodeError:
        return None


def ticket_from_dead_letter(
    session: Session,
    catalog: SchemaCatalog,
    *,
    key: bytes | None,
    value: bytes | None,
    headers: tuple[tuple[str, bytes], ...],
    dead_letter: Origin,
    source_of: Any,
    now: dt.datetime,
) -> CaseTicket:
    """Open a ticket for a dead letter, or attach the failure to the event's existing ticket.

    Headers and the event are the sender's data: each value is cleaned and cut to its column
    (`hub.domain.redaction`), and an identifier or municipality number that is not one is left
    out rather than cut into another person's or municipality's."""
    h = read_headers(list(headers))
    decoded = _decoded(catalog, value)
    event = _fitted(decoded) if decoded is not None else None
    dead_letter_ref = _dead_letter_ref(dead_letter)
    topic = fits(h.get(H_TOPIC), 249)
    partition, offset = _whole_number(h.get(H_PARTITION)), _whole_number(h.get(H_OFFSET))
    if topic is None:  # not written by the hub: the dead letter itself is all there is to point to
        topic, partition, offset = dead_letter.topic, dead_letter.partition, dead_letter.offset
    error_class, error_code = fits(h.get(H_ERROR_CLASS), 32), fits(h.get(H_ERROR_CODE), 32)
    error_message = fits(h.get(H_ERROR_MESSAGE), 2000)
    error_message_nb = fits(h.get(H_ERROR_MESSAGE_NB), 2000)
    if H_OMITTED in h:
        error_message = fits(
            f"{error_message or ''} [the original, {h[H_OMITTED]} bytes, was too large to keep here; "
            f"it is on {topic} partition {partition} at offset {offset}]",
            2000,
        )
    if event is not None:  # an event id is its source's own: the same id on another topic is another event
        existing = session.scalar(
            select(CaseTicket).where(
                CaseTicket.event_id == str(event.event_id), CaseTicket.original_topic == topic
            )
        )
    else:
        existing = session.scalar(
            select(CaseTicket).where(
                CaseTicket.original_topic == topic,
                CaseTicket.original_partition == partition,
                CaseTicket.original_offset == offset,
            )
        )
    if existing is not None:
        # The very message the ticket was opened for, failing again, is that failure redelivered
        # (decided again after a crash, or after `hub recover`: a replay is a new message), and
        # so is the same dead letter read again: neither is counted, nor reopens the ticket.
        again = (existing.original_topic, existing.original_partition, existing.original_offset) == (
            topic,
            partition,
            offset,
        )
        if existing.last_dead_letter != dead_letter_ref and not again:
            existing.attempts += 1
            existing.last_failed_at = now
            existing.error_class, existing.error_code = error_class, error_code
            existing.error_message, existing.error_message_nb = error_message, error_message_nb
            existing.kind = kind_of_failure(error_code)
            # Reopened: the earlier closing is in the ticket's story, no longer its state.
            existing.status, existing.closed_at = TicketStatus.OPEN.value, None
            existing.resolution_note, existing.linked_event_id = None, None
            existing.last_dead_letter = dead_letter_ref
            _record_failure(session, existing, now)
        return existing
    ticket = CaseTicket(
        status=TicketStatus.OPEN.value,
        kind=kind_of_failure(error_code),
        event_id=str(event.event_id) if event else None,
        error_class=error_class,
        error_code=error_code,
        error_message=error_message,
        error_message_nb=error_message_nb,
        source_system=(event.source_system or None) if event else (source_of(topic) if topic else None),
        municipality=(event.municipality or None) if event else None,
        event_type=event.event_type if event else None,
        fact_date=event.fact_date if event else None,
        sent_at=event.sent_at if event else None,
        duf_number=event.duf_number if event else None,
        national_id=event.national_id if event else None,
        original_topic=topic,
        original_partition=partition,
        original_offset=offset,
        original_key=key,
        original_value=value,
        last_dead_letter=dead_letter_ref,
        first_failed_at=now,
        last_failed_at=now,
        attempts=1,
        replays=0,
    )
    session.add(ticket)
    session.flush()
    _record_failure(session, ticket, now)
    if event is not None:
        # The corrected event may already have been accepted while this dead letter waited.
        accepted = session.scalar(
            _accepted_fix(event).where(RegistrationRecord.accepted_at >= ticket.first_failed_at)
        )
        if accepted is None:
            accepted = session.scalar(_accepted_fix(event))
        if accepted is not None and accepted.event_id != ticket.event_id:
            _close(session, ticket, accepted.event_id, now)
    return ticket


# A ticket's kinds: a failed transfer, one whose numbers name two persons (IMDi decides whether
# they are one: `hub person merge`), a dead letter that could not be read into a ticket, and a
# case filed by hand.
DEAD_LETTER, IDENTITY_CONFLICT_KIND, QUARANTINED, MANUAL = (
    "dead_letter",
    "identity_conflict",
    "quarantined",
    "manual",
)


def kind_of_failure(error_code: str | None) -> str:
    """The kind of ticket a dead letter with this error code opens."""
    return IDENTITY_CONFLICT_KIND if error_code == IDENTITY_CONFLICT else DEAD_LETTER


def quarantine_dead_letter(
    session: Session, *, origin: Origin, key: bytes | None, value: bytes | None, why: str, now: dt.datetime
) -> CaseTicket:
    """A ticket for a dead letter that could not be read into one: only what cannot fail (where
    the dead letter is, its bytes as they are, and why), so support staff still see it."""
    existing = session.scalar(
        select(CaseTicket).where(
            CaseTicket.kind == QUARANTINED,
            CaseTicket.original_topic == origin.topic,
            CaseTicket.original_partition == origin.partition,
            CaseTicket.original_offset == origin.offset,
        )
    )
    if existing is not None:  # a redelivery of the same dead letter
        return existing
    ticket = CaseTicket(
        status=TicketStatus.OPEN.value,
        kind=QUARANTINED,
        error_class="quarantine",
        error_code=Quarantined.code,
        error_message=clean(
            f"this dead letter could not be made into a ticket ({why}); it is kept as it came"
        ),
        original_topic=origin.topic,
        original_partition=origin.partition,
        original_offset=origin.offset,
        original_key=key,
        original_value=value,
        last_dead_letter=_dead_letter_ref(origin),
        first_failed_at=now,
        last_failed_at=now,
        attempts=1,
        replays=0,
    )
    session.add(ticket)
    session.flush()
    _record_failure(session, ticket, now)
    return ticket


def _record_failure(session: Session, ticket: CaseTicket, now: dt.datetime) -> None:
    """A failure of the ticket's event, with its reason that time, for the ticket's story."""
    session.add(
        TicketOutcome(
            ticket_id=ticket.id,
            at=now,
            kind=OUTCOME_FAILED,
            error_code=ticket.error_code,
            error_message=ticket.error_message,
            error_message_nb=ticket.error_message_nb,
        )
    )


def _dead_letter_ref(dead_letter: Origin) -> str:
    """partition:offset of a dead letter, kept on its ticket so a redelivery is not counted twice."""
    return f"{dead_letter.partition}:{dead_letter.offset}"


def _fitted(event: Registration) -> Registration:
    """The event's fields as the ticket's columns (and queries by them) can hold them."""
    return dataclasses.replace(
        event,
        source_system=fits(event.source_system, 64) or "",
        municipality=event.municipality if is_municipality_number(event.municipality) else "",
        event_type=fits(event.event_type, 64) or "",
        duf_number=_identifier(event.duf_number),
        national_id=_identifier(event.national_id),
    )


def _whole_number(text: str | None) -> int | None:
    """A partition or offset from a header, or None if it is not one a column can hold."""
    if text is None or not 1 <= len(text) <= 19 or not is_ascii_digits(text):
        return None
    number = int(text)
    return number if number < 2**63 else None


def _identifier(value: str | None) -> str | None:
    """An identifier as sent, if it is digits 0-9 that fit the ticket's column (16); else None:
    cutting it could name another person."""
    if value is None or not 1 <= len(value) <= 16 or not is_ascii_digits(value):
        return None
    return value


def _accepted_fix(event: Registration) -> Any:
    """The newest registration of the same person, event type and source sent and accepted after
    the failed event was sent (and, for repeatable types, for the same date): an event the
    fagsystem sent before the failed one is no fix for it, however late it was accepted."""
    identifiers = [i for i in (event.national_id, event.duf_number) if i]
    same_date = [RegistrationRecord.fact_date == event.fact_date] if is_repeatable(event.event_type) else []
    return (
        select(RegistrationRecord)
        .where(
            RegistrationRecord.event_type == event.event_type,
            RegistrationRecord.source_system == event.source_system,
            RegistrationRecord.accepted_at > event.sent_at,
            RegistrationRecord.sent_at > event.sent_at,
            *same_date,
            RegistrationRecord.person_id.in_(
                select(PersonIdentifier.person_id).where(PersonIdentifier.value.in_(identifiers))
            ),
        )
        .order_by(RegistrationRecord.id.desc())
        .limit(1)
    )


def _close(session: Session, ticket: CaseTicket, accepted_event_id: str, now: dt.datetime) -> None:
    """Closed by an accepted event: the link says why, so there is no note (a note is a person's)."""
    ticket.status = TicketStatus.RESOLVED.value
    ticket.linked_event_id = accepted_event_id
    ticket.resolution_note = None
    ticket.closed_at = now
    session.add(TicketOutcome(ticket_id=ticket.id, at=now, kind=OUTCOME_ACCEPTED, event_id=accepted_event_id))


def closing_note(ticket: CaseTicket) -> str | None:
    """The note a person wrote when closing the ticket. Tickets closed by an accepted event before
    revision 0013 carry that link as a note too ("closed by the accepted event X"): that is the
    link's to say, once."""
    if (
        ticket.linked_event_id
        and ticket.resolution_note == f"closed by the accepted event {ticket.linked_event_id}"
    ):
        return None
    return ticket.resolution_note


def get_ticket(session: Session, ticket_id: int) -> CaseTicket:
    ticket = session.get(CaseTicket, ticket_id)
    if ticket is None:
        raise TicketError(f"there is no ticket {ticket_id}")
    return ticket


# What a list of tickets can be sorted by (the page's `sort` parameter); ties go by number.
SORT_COLUMNS: dict[str, Any] = {
    "last_failed": CaseTicket.last_failed_at,
    "first_failed": CaseTicket.first_failed_at,
    "id": CaseTicket.id,
    "status": CaseTicket.status,
    "code": CaseTicket.error_code,
    "municipality": CaseTicket.municipality,
    "attempts": CaseTicket.attempts,
}


def list_tickets(
    session: Session,
    where: TicketFilter,
    limit: int = 200,
    *,
    offset: int = 0,
    sort: str = "last_failed",
    descending: bool = True,
) -> list[CaseTicket]:
    """By `sort` (newest failure first by default), ties by ticket number in the same direction:
    a stable order, the same list every time."""
    column = SORT_COLUMNS[sort]
    order = (column.desc(), CaseTicket.id.desc()) if descending else (column.asc(), CaseTicket.id.asc())
    query = where.apply(select(CaseTicket)).order_by(*order).offset(offset).limit(limit)
    return list(session.scalars(query))


def count_tickets(session: Session, where: TicketFilter) -> int:
    return session.scalar(where.apply(select(func.count()).select_from(CaseTicket))) or 0


def active_tickets(session: Session, where: TicketFilter, limit: int) -> tuple[list[int], int]:
    """The numbers of the open and replayed tickets the filter matches, oldest first, at most
    `limit` of them; and how many there are in all."""
    active = CaseTicket.status.in_(ACTIVE)
    ids = session.scalars(
        where.apply(select(CaseTicket.id)).where(active).order_by(CaseTicket.id).limit(limit)
    )
    total = session.scalar(where.apply(select(func.count()).select_from(CaseTicket)).where(active)) or 0
    return list(ids), total


def counts_by_error_code(session: Session, where: TicketFilter) -> list[tuple[str, int]]:
    """How many tickets the filter matches, per error code, most frequent first."""
    code = func.coalesce(CaseTicket.error_code, "-")
    query = where.apply(select(code, func.count()).select_from(CaseTicket)).group_by(code)
    return sorted(((str(c), int(n)) for c, n in session.execute(query)), key=lambda row: (-row[1], row[0]))


def oldest_active_failure(session: Session) -> dt.datetime | None:
    """When the oldest ticket still waiting for a fix first failed (None: no such ticket)."""
    return session.scalar(select(func.min(CaseTicket.first_failed_at)).where(CaseTicket.status.in_(ACTIVE)))


def settle(
    session: Session, ticket_id: int, status: TicketStatus, note: str, now: dt.datetime, *, username: str
) -> CaseTicket:
    """Resolve or discard a ticket by hand, with a note saying why (audited)."""
    if not note.strip():
        raise TicketError("a note is required")
    ticket = get_ticket(session, ticket_id)
    if ticket.status not in ACTIVE:
        raise TicketError(f"ticket {ticket_id} is {ticket.status} already")
    ticket.status, ticket.resolution_note, ticket.closed_at = status.value, note, now
    audit(session, username, status.value, now, ticket_id=ticket_id)
    return ticket


def file_manual_case(
    session: Session, *, duf_number: str, description: str, municipality: str | None, now: dt.datetime
) -> CaseTicket:
    """A case about a person filed by hand, as support users do today: on the desk or with `hub cases
    file`, which both come here so the same number and municipality are refused by both."""
    if not description.strip():
        raise TicketError("a description is required")
    try:
        check_duf_number(duf_number, today=norwegian_date(now))
    except InvalidIdentifier as exc:
        raise TicketError(f"DUF number {exc}") from exc
    if municipality is not None and municipality_on(municipality, norwegian_date(now)) is None:
        raise TicketError("the municipality must be the number of a municipality today (four digits)")
    ticket = CaseTicket(
        status=TicketStatus.OPEN.value,
        kind=MANUAL,
        duf_number=duf_number,
        municipality=municipality,
        description=description,
        first_failed_at=now,
        last_failed_at=now,
        attempts=0,
        replays=0,
    )
    session.add(ticket)
    session.flush()
    return ticket


def add_edit(
    session: Session, ticket: CaseTicket, event: dict[str, Any], value: bytes, user: str, now: dt.datetime
) -> None:
    session.add(TicketEdit(ticket_id=ticket.id, edited_at=now, edited_by=user, event=event, value=value))
    session.flush()


def latest_edit(session: Session, ticket_id: int) -> TicketEdit | None:
    return session.scalar(
        select(TicketEdit).where(TicketEdit.ticket_id == ticket_id).order_by(TicketEdit.id.desc()).limit(1)
    )


def describe_ticket(
    session: Session, catalog: SchemaCatalog, ticket: CaseTicket, *, reveal: bool = False
) -> dict[str, Any]:
    """A ticket as JSON-ready data; the national id is masked unless `reveal`. The event and its
    edits are read and decoded only when revealed (a list of tickets needs neither)."""
    return {
        "id": ticket.id,
        "status": ticket.status,
        "kind": ticket.kind,
        "eventId": ticket.event_id,
        "error": {
            "class": ticket.error_class,
            "code": ticket.error_code,
            "message": ticket.error_message,
            "messageNb": ticket.error_message_nb,
        },
        "sourceSystem": ticket.source_system,
        "municipality": ticket.municipality,
        "eventType": ticket.event_type,
        "factDate": ticket.fact_date.isoformat() if ticket.fact_date else None,
        "dufNumber": ticket.duf_number,
        "nationalId": ticket.national_id
        if reveal
        else (mask(ticket.national_id) if ticket.national_id else None),
        "origin": {
            "topic": ticket.original_topic,
            "partition": ticket.original_partition,
            "offset": ticket.original_offset,
        },
        "firstFailedAt": iso_utc(ticket.first_failed_at),
        "lastFailedAt": iso_utc(ticket.last_failed_at),
        "attempts": ticket.attempts,
        "replays": ticket.replays,
        "description": ticket.description,
        "resolution": {
            "note": closing_note(ticket),
            "linkedEventId": ticket.linked_event_id,
            "closedAt": iso_utc(ticket.closed_at) if ticket.closed_at else None,
        },
        "event": _event_json(_decoded(catalog, ticket.original_value)) if reveal else None,
        "edits": [
            {"editedAt": iso_utc(e.edited_at), "editedBy": e.edited_by, "event": e.event}
            for e in session.scalars(
                select(TicketEdit).where(TicketEdit.ticket_id == ticket.id).order_by(TicketEdit.id)
            )
        ]
        if reveal
        else [],
    }


def event_json(catalog: SchemaCatalog, value: bytes | None) -> dict[str, Any] | None:
    """A kept message (a ticket's original, a held event) as the contract's JSON, or None if it
    cannot be read."""
    return _event_json(_decoded(catalog, value))


def _event_json(event: Registration | None) -> dict[str, Any] | None:
    if event is None:
        return None
    return to_json(
        {
            "eventId": event.event_id,
            "eventType": event.event_type,
            "factDate": event.fact_date,
            "sentAt": event.sent_at,
            "sourceSystem": event.source_system,
            "municipality": event.municipality,
            "person": {"nationalId": event.national_id, "dufNumber": event.duf_number},
            "fagsystemVersion": event.fagsystem_version,
            "action": event.action,
            "correctsEventId": event.corrects_event_id,
            "payload": event.payload,
        }
    )
