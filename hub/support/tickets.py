"""Case tickets in the register: opened from dead letters, closed by accepted events, resolved or
discarded by support staff, or filed by hand. Each function works inside the caller's session."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Row, Table, and_, bindparam, func, or_, select, update
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
from hub.register.database import among_parameter, insert_new, insert_rows, prebuilt
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


@dataclass(frozen=True)
class DeadLetter:
    """A dead letter as the ticket flow reads it: where it is on the dead-letter topic, and the
    original message's key and value with the headers that say why and where it failed."""

    origin: Origin
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


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
    """Open a ticket for a dead letter, or attach the failure to the event's existing ticket
    (`tickets_from_dead_letters` for one)."""
    [ticket_id] = tickets_from_dead_letters(
        session, catalog, [DeadLetter(dead_letter, key, value, headers)], source_of=source_of, now=now
    )
    # Written with Core statements: a ticket this session holds already is read again.
    return session.get_one(CaseTicket, ticket_id, populate_existing=True)


def tickets_from_dead_letters(
    session: Session,
    catalog: SchemaCatalog,
    letters: Sequence[DeadLetter],
    *,
    source_of: Any,
    now: dt.datetime,
) -> list[int]:
    """Open a ticket for each dead letter, or attach its failure to its event's existing ticket;
    returns the tickets' ids, in the letters' order.

    Set-based, as a flood of dead letters needs: the batch's tickets are found with one indexed
    statement (by event id, else by where the message was read), then decided in order as if
    the letters came one at a time (two letters of one message or one event in a batch are one
    ticket), and written with one insert of the new tickets, one executemany of the changed
    ones and one insert of their outcomes.

    Headers and the event are the sender's data: each value is cleaned and cut to its column
    (`hub.domain.redaction`), and an identifier or municipality number that is not one is left
    out rather than cut into another person's or municipality's."""
    readings = [_read_dead_letter(catalog, letter) for letter in letters]
    by_event: dict[tuple[str, str], _Ticket] = {}
    by_origin: dict[tuple[str, int | None, int | None], _Ticket] = {}
    for row in _tickets_of(session, readings):  # by id: of several at one origin, the first
        found = _Ticket(row.id, {c: getattr(row, c) for c in _LOOKED_UP})
        found.index(by_event, by_origin)
    new: list[_Ticket] = []
    changed: dict[int, _Ticket] = {}
    outcomes: list[tuple[_Ticket, dict[str, Any]]] = []
    chosen: list[_Ticket] = []
    for r in readings:
        # An event id is its source's own: the same id on another topic is another event.
        if r.event is not None:
            existing = by_event.get((r.topic, str(r.event.event_id)))
        else:
            existing = by_origin.get(r.origin)
        if existing is not None:
            # The very message the ticket was opened for, failing again, is that failure
            # redelivered (decided again after a crash, or after `hub recover`: a replay is a new
            # message), and so is the same dead letter read again: neither is counted, nor
            # reopens the ticket.
            again = existing.origin == r.origin
            if existing.row["last_dead_letter"] != r.ref and not again:
                existing.row.update(
                    attempts=existing.row["attempts"] + 1,
                    last_failed_at=now,
                    kind=kind_of_failure(r.error_code),
                    # Reopened: the earlier closing is in the ticket's story, no longer its state.
                    status=TicketStatus.OPEN.value,
                    closed_at=None,
                    resolution_note=None,
                    linked_event_id=None,
                    last_dead_letter=r.ref,
                    # The release of this failure's event (an undecodable message names none: the
                    # ticket keeps what it knew).
                    fagsystem_version=r.event.fagsystem_version
                    if r.event is not None
                    else existing.row["fagsystem_version"],
                    **r.error,
                )
                if existing.id is not None:
                    changed[existing.id] = existing
                outcomes.append((existing, _failed_outcome(r, now)))
            chosen.append(existing)
            continue
        ticket = _Ticket(None, _new_ticket_row(r, source_of, now))
        ticket.index(by_event, by_origin)
        new.append(ticket)
        outcomes.append((ticket, _failed_outcome(r, now)))
        chosen.append(ticket)
        if r.event is not None:
            # The corrected event may already have been accepted while this dead letter waited.
            accepted = session.scalar(_accepted_fix(r.event).where(RegistrationRecord.accepted_at >= now))
            if accepted is None:
                accepted = session.scalar(_accepted_fix(r.event))
            if accepted is not None and accepted.event_id != ticket.row["event_id"]:
                # Closed by an accepted event: the link says why, so there is no note (a note is a person's).
                ticket.row.update(
                    status=TicketStatus.RESOLVED.value,
                    linked_event_id=accepted.event_id,
                    resolution_note=None,
                    closed_at=now,
                )
                outcomes.append((ticket, _accepted_outcome(accepted.event_id, now)))
    ids = insert_new(session, CASE_TICKETS, [t.row for t in new])
    for ticket, ticket_id in zip(new, ids, strict=True):
        ticket.id = ticket_id
    if changed:
        session.execute(
            prebuilt(session, _fail_again),
            [{"ticket_id": i, **{f"new_{c}": t.row[c] for c in _FAILING_AGAIN}} for i, t in changed.items()],
        )
    insert_rows(session, TICKET_OUTCOMES, [{"ticket_id": t.id, **row} for t, row in outcomes])
    return [cast(int, t.id) for t in chosen]


CASE_TICKETS = cast(Table, CaseTicket.__table__)
TICKET_OUTCOMES = cast(Table, TicketOutcome.__table__)

# What the flow reads of a batch's existing tickets (not their messages), and what a failure
# again changes.
_LOOKED_UP = (
    "event_id",
    "original_topic",
    "original_partition",
    "original_offset",
    "last_dead_letter",
    "attempts",
    "fagsystem_version",
)
_FAILING_AGAIN = (
    "attempts",
    "last_failed_at",
    "kind",
    "status",
    "closed_at",
    "resolution_note",
    "linked_event_id",
    "last_dead_letter",
    "fagsystem_version",
    "error_class",
    "error_code",
    "error_message",
    "error_message_nb",
)


@dataclass(frozen=True)
class _Reading:
    """A dead letter read for its ticket: the event (if it decodes), where the original was read,
    the dead letter's own place, and why it failed, each fitted to its column."""

    key: bytes | None
    value: bytes | None
    event: Registration | None
    origin: tuple[str, int | None, int | None]
    ref: str
    error: dict[str, str | None]

    @property
    def topic(self) -> str:
        return self.origin[0]

    @property
    def error_code(self) -> str | None:
        return self.error["error_code"]


class _Ticket:
    """A ticket as a batch decides it: an existing one's looked-up columns (then its changes), or
    a new one's row; `id` is None until a new one is inserted."""

    def __init__(self, ticket_id: int | None, row: dict[str, Any]) -> None:
        self.id = ticket_id
        self.row = row

    @property
    def origin(self) -> tuple[str, int | None, int | None]:
        return (self.row["original_topic"], self.row["original_partition"], self.row["original_offset"])

    def index(
        self,
        by_event: dict[tuple[str, str], _Ticket],
        by_origin: dict[tuple[str, int | None, int | None], _Ticket],
    ) -> None:
        if self.row["event_id"] is not None:
            by_event.setdefault((self.row["original_topic"], self.row["event_id"]), self)
        by_origin.setdefault(self.origin, self)


def _read_dead_letter(catalog: SchemaCatalog, letter: DeadLetter) -> _Reading:
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
    return _Reading(
        key=letter.key,
        value=letter.value,
        event=_fitted(decoded) if decoded is not None else None,
        origin=(topic, partition, offset),
        ref=_dead_letter_ref(letter.origin),
        error={
            "error_class": fits(h.get(H_ERROR_CLASS), 32),
            "error_code": fits(h.get(H_ERROR_CODE), 32),
            "error_message": error_message,
            "error_message_nb": fits(h.get(H_ERROR_MESSAGE_NB), 2000),
        },
    )


def _tickets_of(session: Session, readings: Sequence[_Reading]) -> list[Row[Any]]:
    """The existing tickets of a batch of dead letters, by id: those of its events (by topic and
    event id) and those opened where its undecodable messages were read, in one statement whose
    every arm an index answers (the origin one `ix_case_tickets_origin`, with IS NULL for a
    partition or offset the headers did not give)."""
    events = {(r.topic, str(r.event.event_id)) for r in readings if r.event is not None}
    origins = {r.origin for r in readings if r.event is None}
    values: dict[str, list[Any]] = {}
    if events:
        values["event_topics"] = sorted({t for t, _ in events})
        values["event_ids"] = sorted({e for _, e in events})
    for name, shape in _ORIGIN_SHAPES.items():
        these = [o for o in origins if (o[1] is None, o[2] is None) == shape]
        if these:
            values[f"topics_{name}"] = sorted({t for t, _, _ in these})
            if not shape[0]:
                values[f"partitions_{name}"] = sorted({cast(int, p) for _, p, _ in these})
            if not shape[1]:
                values[f"offsets_{name}"] = sorted({cast(int, o) for _, _, o in these})
    if not values:
        return []
    arms = (bool(events), *(f"topics_{name}" in values for name in _ORIGIN_SHAPES))
    statement = prebuilt(session, _lookup_for(arms))
    return list(session.execute(statement, values))


# An origin's shapes, by its name: whether its partition, and its offset, are missing (None:
# the headers did not give one).
_ORIGIN_SHAPES = {
    "whole": (False, False),
    "no_partition": (True, False),
    "no_offset": (False, True),
    "neither": (True, True),
}


@functools.cache
def _lookup_for(arms: tuple[bool, ...]) -> Callable[[str], Any]:
    """The batch look-up with the arms a batch needs (its events; each shape of origin), as a
    builder for `prebuilt`: a handful of statements, each built once per process."""

    def build(dialect: str) -> Any:
        c = CaseTicket
        conditions = []
        if arms[0]:
            conditions.append(
                and_(
                    among_parameter(dialect, c.original_topic, "event_topics"),
                    among_parameter(dialect, c.event_id, "event_ids"),
                )
            )
        for (name, shape), wanted in zip(_ORIGIN_SHAPES.items(), arms[1:], strict=True):
            if not wanted:
                continue
            no_partition, no_offset = shape
            conditions.append(
                and_(
                    among_parameter(dialect, c.original_topic, f"topics_{name}"),
                    c.original_partition.is_(None)
                    if no_partition
                    else among_parameter(dialect, c.original_partition, f"partitions_{name}"),
                    c.original_offset.is_(None)
                    if no_offset
                    else among_parameter(dialect, c.original_offset, f"offsets_{name}"),
                )
            )
        columns = [getattr(c, name) for name in _LOOKED_UP]
        return select(c.id, *columns).where(or_(*conditions)).order_by(c.id)

    return build


def _fail_again(dialect: str) -> Any:
    """A ticket failing again, for an executemany of the batch's."""
    return (
        update(CASE_TICKETS)
        .where(CASE_TICKETS.c.id == bindparam("ticket_id"))
        .values({c: bindparam(f"new_{c}") for c in _FAILING_AGAIN})
    )


def _new_ticket_row(r: _Reading, source_of: Any, now: dt.datetime) -> dict[str, Any]:
    event, (topic, partition, offset) = r.event, r.origin
    return {
        "status": TicketStatus.OPEN.value,
        "kind": kind_of_failure(r.error_code),
        "event_id": str(event.event_id) if event else None,
        **r.error,
        "source_system": (event.source_system or None) if event else (source_of(topic) if topic else None),
        "municipality": (event.municipality or None) if event else None,
        "event_type": event.event_type if event else None,
        "fagsystem_version": event.fagsystem_version if event else None,
        "fact_date": event.fact_date if event else None,
        "sent_at": event.sent_at if event else None,
        "duf_number": event.duf_number if event else None,
        "national_id": event.national_id if event else None,
        "original_topic": topic,
        "original_partition": partition,
        "original_offset": offset,
        "original_key": r.key,
        "original_value": r.value,
        "last_dead_letter": r.ref,
        "first_failed_at": now,
        "last_failed_at": now,
        "attempts": 1,
        "replays": 0,
        "resolution_note": None,
        "linked_event_id": None,
        "closed_at": None,
    }


def _failed_outcome(r: _Reading, now: dt.datetime) -> dict[str, Any]:
    """A failure of the ticket's event, with its reason that time, for the ticket's story."""
    return {"at": now, "kind": OUTCOME_FAILED, **_reason(r.error), "event_id": None}


def _accepted_outcome(event_id: str, now: dt.datetime) -> dict[str, Any]:
    return {"at": now, "kind": OUTCOME_ACCEPTED, **_reason({}), "event_id": event_id}


def _reason(error: dict[str, str | None]) -> dict[str, str | None]:
    return {k: error.get(k) for k in ("error_code", "error_message", "error_message_nb")}


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
