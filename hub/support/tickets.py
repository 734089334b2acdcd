"""Case tickets as support works them: opened from dead letters, closed by accepted events,
resolved or discarded by support staff, or filed by hand. Each function works inside the caller's
unit of work; the tickets' rows and queries are its `uow.tickets` (`hub.register.tickets`), what a
dead letter says, who may close a ticket and with what, and how a ticket is shown are here."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hub.domain.calendar import iso_utc, norwegian_date
from hub.domain.events import Origin, Registration
from hub.domain.identifiers import InvalidIdentifier, check_duf_number, is_ascii_digits, mask
from hub.domain.municipalities import is_municipality_number, municipality_on
from hub.domain.redaction import clean, fits
from hub.errors import DecodeError, HubError
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
from hub.register.models import ACTIVE, CaseTicket, TicketStatus
from hub.register.tickets import (
    DEAD_LETTER,
    IDENTITY_CONFLICT_KIND,
    MANUAL,
    QUARANTINED,
    SORT_COLUMNS,
    DeadLetterReading,
    TicketFilter,
)
from hub.register.unit_of_work import UnitOfWork
from hub.rules import IDENTITY_CONFLICT
from hub.schemas.codec import SchemaCatalog
from hub.schemas.contract import to_json

# Importable from here, as the desk, the command line and the tests always have.
__all__ = [
    "ACTIVE",
    "DEAD_LETTER",
    "IDENTITY_CONFLICT_KIND",
    "MANUAL",
    "QUARANTINED",
    "SORT_COLUMNS",
    "DeadLetter",
    "TicketError",
    "TicketFilter",
    "TicketStatus",
]


class TicketError(HubError):
    """A support action that does not fit the ticket (wrong state, unknown ticket)."""

    code = "NIR-TICKET"


def _decoded(catalog: SchemaCatalog, value: bytes | None) -> Registration | None:
    try:
        return decode_registration(catalog, value)
    except DecodeError:
        return None


@dataclass(frozen=True)
class DeadLetter:
    """A dead letter as the ticket flow reads it: where it is on the dead-letter topic, and the
    original message's key and value with the headers that say why and where it failed."""

    origin: Origin
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


def ticket_from_dead_letter(
    uow: UnitOfWork,
    catalog: SchemaCatalog,
    *,
    key: bytes | None,
    value: bytes | None,
    headers: tuple[tuple[str, bytes], ...],
    dead_letter: Origin,
    source_of: Any,
    now: dt.datetime,
) -> CaseTicket:
    """Open a ticket for a dead letter, or attach the failure to the event's existing ticket
    (`tickets_from_dead_letters` for one)."""
    [ticket_id] = tickets_from_dead_letters(
        uow, catalog, [DeadLetter(dead_letter, key, value, headers)], source_of=source_of, now=now
    )
    return uow.tickets.read_again(ticket_id)


def tickets_from_dead_letters(
    uow: UnitOfWork,
    catalog: SchemaCatalog,
    letters: Sequence[DeadLetter],
    *,
    source_of: Any,
    now: dt.datetime,
) -> list[int]:
    """Open a ticket for each dead letter, or attach its failure to its event's existing ticket;
    returns the tickets' ids, in the letters' order (set-based: `TicketsRepository.from_dead_letters`).

    Headers and the event are the sender's data: each value is cleaned and cut to its column
    (`hub.domain.redaction`), and an identifier or municipality number that is not one is left
    out rather than cut into another person's or municipality's."""
    readings = [_read_dead_letter(catalog, letter) for letter in letters]
    return uow.tickets.from_dead_letters(readings, source_of=source_of, now=now)


def _read_dead_letter(catalog: SchemaCatalog, letter: DeadLetter) -> DeadLetterReading:
    h = read_headers(list(letter.headers))
    decoded = _decoded(catalog, letter.value)
    topic = fits(h.get(H_TOPIC), 249)
    partition, offset = _whole_number(h.get(H_PARTITION)), _whole_number(h.get(H_OFFSET))
    if topic is None:  # not written by the hub: the dead letter itself is all there is to point to
        topic, partition, offset = letter.origin.topic, letter.origin.partition, letter.origin.offset
    error_message = fits(h.get(H_ERROR_MESSAGE), 2000)
    if H_OMITTED in h:
        error_message = fits(
            f"{error_message or ''} [the original, {h[H_OMITTED]} bytes, was too large to keep here; "
            f"it is on {topic} partition {partition} at offset {offset}]",
            2000,
        )
    error_code = fits(h.get(H_ERROR_CODE), 32)
    return DeadLetterReading(
        key=letter.key,
        value=letter.value,
        event=_fitted(decoded) if decoded is not None else None,
        origin=(topic, partition, offset),
        ref=_dead_letter_ref(letter.origin),
        error={
            "error_class": fits(h.get(H_ERROR_CLASS), 32),
            "error_code": error_code,
            "error_message": error_message,
            "error_message_nb": fits(h.get(H_ERROR_MESSAGE_NB), 2000),
        },
        kind=kind_of_failure(error_code),
    )


def kind_of_failure(error_code: str | None) -> str:
    """The kind of ticket a dead letter with this error code opens."""
    return IDENTITY_CONFLICT_KIND if error_code == IDENTITY_CONFLICT else DEAD_LETTER


def quarantine_dead_letter(
    uow: UnitOfWork, *, origin: Origin, key: bytes | None, value: bytes | None, why: str, now: dt.datetime
) -> CaseTicket:
    """A ticket for a dead letter that could not be read into one: only what cannot fail (where
    the dead letter is, its bytes as they are, and why), so support staff still see it."""
    return uow.tickets.quarantine(
        origin=origin,
        ref=_dead_letter_ref(origin),
        key=key,
        value=value,
        message=clean(f"this dead letter could not be made into a ticket ({why}); it is kept as it came"),
        now=now,
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
        fagsystem_version=fits(event.fagsystem_version, 64),
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


def get_ticket(uow: UnitOfWork, ticket_id: int) -> CaseTicket:
    ticket = uow.tickets.get(ticket_id)
    if ticket is None:
        raise TicketError(f"there is no ticket {ticket_id}")
    return ticket


def settle(
    uow: UnitOfWork, ticket_id: int, status: TicketStatus, note: str, now: dt.datetime, *, username: str
) -> CaseTicket:
    """Resolve or discard a ticket by hand, with a note saying why (audited)."""
    if not note.strip():
        raise TicketError("a note is required")
    ticket = get_ticket(uow, ticket_id)
    if ticket.status not in ACTIVE:
        raise TicketError(f"ticket {ticket_id} is {ticket.status} already")
    uow.tickets.close(ticket, status, note, now)
    uow.audit.record(username, status.value, now, ticket_id=ticket_id)
    return ticket


def file_manual_case(
    uow: UnitOfWork, *, duf_number: str, description: str, municipality: str | None, now: dt.datetime
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
    return uow.tickets.add_manual_case(
        duf_number=duf_number, description=description, municipality=municipality, now=now
    )


def describe_ticket(
    uow: UnitOfWork, catalog: SchemaCatalog, ticket: CaseTicket, *, reveal: bool = False
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
        "fagsystemVersion": ticket.fagsystem_version,
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
            for e in uow.tickets.edits(ticket.id)
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
