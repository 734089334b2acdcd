"""Case tickets in the register, as the unit of work's `uow.tickets`: their rows, outcomes and
edits, the queries a filter of them makes, and the set-based opening of a batch of dead letters'
tickets. What a ticket means to support staff (who may close one, with what note, how it is
shown) is `hub.support.tickets`."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Row, Table, and_, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from hub.domain.events import Origin, Registration
from hub.domain.lifecycle import is_repeatable
from hub.errors import Quarantined
from hub.register.database import among_parameter, insert_new, insert_rows, prebuilt
from hub.register.models import (
    ACTIVE,
    OUTCOME_ACCEPTED,
    OUTCOME_FAILED,
    AuditEntry,
    CaseTicket,
    PersonIdentifier,
    RegistrationRecord,
    TicketEdit,
    TicketOutcome,
    TicketStatus,
)

# A ticket's kinds: a failed transfer, one whose numbers name two persons (IMDi decides whether
# they are one: `hub person merge`), a dead letter that could not be read into a ticket, and a
# case filed by hand.
DEAD_LETTER, IDENTITY_CONFLICT_KIND, QUARANTINED, MANUAL = (
    "dead_letter",
    "identity_conflict",
    "quarantined",
    "manual",
)


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


@dataclass(frozen=True)
class DeadLetterReading:
    """A dead letter read for its ticket (`hub.support.tickets` reads it): the event (if it
    decodes), where the original was read, the dead letter's own place (`ref`), why it failed,
    each fitted to its column, and the kind of ticket that failure opens."""

    key: bytes | None
    value: bytes | None
    event: Registration | None
    origin: tuple[str, int | None, int | None]
    ref: str
    error: dict[str, str | None]
    kind: str

    @property
    def topic(self) -> str:
        return self.origin[0]

    @property
    def error_code(self) -> str | None:
        return self.error["error_code"]


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


class TicketsRepository:
    """The case tickets in one unit of work."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, ticket_id: int) -> CaseTicket | None:
        return self._session.get(CaseTicket, ticket_id)

    def read_again(self, ticket_id: int) -> CaseTicket:
        """The ticket as the database has it now: tickets written with Core statements
        (`from_dead_letters`) may be held by the session as they were."""
        return self._session.get_one(CaseTicket, ticket_id, populate_existing=True)

    def from_dead_letters(
        self, readings: Sequence[DeadLetterReading], *, source_of: Any, now: dt.datetime
    ) -> list[int]:
        """Open a ticket for each dead letter, or attach its failure to its event's existing
        ticket; returns the tickets' ids, in the letters' order.

        Set-based, as a flood of dead letters needs: the batch's tickets are found with one
        indexed statement (by event id, else by where the message was read), then decided in order
        as if the letters came one at a time (two letters of one message or one event in a batch
        are one ticket), and written with one insert of the new tickets, one executemany of the
        changed ones and one insert of their outcomes."""
        session = self._session
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
                        kind=r.kind,
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
                [
                    {"ticket_id": i, **{f"new_{c}": t.row[c] for c in _FAILING_AGAIN}}
                    for i, t in changed.items()
                ],
            )
        insert_rows(session, TICKET_OUTCOMES, [{"ticket_id": t.id, **row} for t, row in outcomes])
        return [cast(int, t.id) for t in chosen]

    def quarantine(
        self,
        *,
        origin: Origin,
        ref: str,
        key: bytes | None,
        value: bytes | None,
        message: str,
        now: dt.datetime,
    ) -> CaseTicket:
        """A ticket for a dead letter that could not be read into one (kind `QUARANTINED`), or the
        one it already has: a redelivery of the same dead letter. Only what cannot fail: where the
        dead letter is (`ref`), its bytes as they are, and `message`, why."""
        existing = self._session.scalar(
            select(CaseTicket).where(
                CaseTicket.kind == QUARANTINED,
                CaseTicket.original_topic == origin.topic,
                CaseTicket.original_partition == origin.partition,
                CaseTicket.original_offset == origin.offset,
            )
        )
        if existing is not None:
            return existing
        ticket = CaseTicket(
            status=TicketStatus.OPEN.value,
            kind=QUARANTINED,
            error_class="quarantine",
            error_code=Quarantined.code,
            error_message=message,
            original_topic=origin.topic,
            original_partition=origin.partition,
            original_offset=origin.offset,
            original_key=key,
            original_value=value,
            last_dead_letter=ref,
            first_failed_at=now,
            last_failed_at=now,
            attempts=1,
            replays=0,
        )
        self._session.add(ticket)
        self._session.flush()
        # A failure of the ticket's event, with its reason that time, for the ticket's story.
        self._session.add(
            TicketOutcome(
                ticket_id=ticket.id,
                at=now,
                kind=OUTCOME_FAILED,
                error_code=ticket.error_code,
                error_message=ticket.error_message,
                error_message_nb=ticket.error_message_nb,
            )
        )
        return ticket

    def add_manual_case(
        self, *, duf_number: str, description: str, municipality: str | None, now: dt.datetime
    ) -> CaseTicket:
        """A case about a person filed by hand (kind `MANUAL`), open."""
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
        self._session.add(ticket)
        self._session.flush()
        return ticket

    def close(self, ticket: CaseTicket, status: TicketStatus, note: str | None, now: dt.datetime) -> None:
        """Close the ticket by hand, with the note its closer wrote."""
        ticket.status, ticket.resolution_note, ticket.closed_at = status.value, note, now

    def approve(self, ticket: CaseTicket, *, digest: str, by: str, now: dt.datetime) -> None:
        """IMDi's approval of the ticket's event past the rule that refused it: bound to that rule
        and to the SHA-256 of the very message to be replayed (`hub.support.approval`)."""
        ticket.approved_code, ticket.approved_digest = ticket.error_code, digest
        ticket.approved_by, ticket.approved_at = by, now

    def withdraw_approval(self, ticket: CaseTicket) -> None:
        """The ticket's approval, gone: it was for its event as it was before an edit."""
        ticket.approved_code = ticket.approved_digest = ticket.approved_by = ticket.approved_at = None

    def count_replays(self, ticket: CaseTicket, status: TicketStatus, count: int) -> None:
        """The ticket's replays, `count` more (a failed send takes its count back), and its status."""
        ticket.status = status.value
        ticket.replays += count

    def replay_counts(self) -> tuple[int, int]:
        """How many replays were sent (the sum of the tickets' replay counts), and how many
        failed (the audit log's entries for failed replays)."""
        sent = self._session.scalar(select(func.coalesce(func.sum(CaseTicket.replays), 0)))
        failed = self._session.scalar(select(func.count()).where(AuditEntry.action == "replay_failed"))
        return int(sent or 0), int(failed or 0)

    def outcomes(self, ticket_id: int) -> list[TicketOutcome]:
        """The ticket's outcomes (each failure and acceptance of its event), oldest first."""
        return list(
            self._session.scalars(
                select(TicketOutcome).where(TicketOutcome.ticket_id == ticket_id).order_by(TicketOutcome.id)
            )
        )

    def audit_entries(self, ticket_id: int, actions: Iterable[str] | None = None) -> list[AuditEntry]:
        """The audit log's entries about the ticket (only of `actions`, if given), oldest first."""
        query = select(AuditEntry).where(AuditEntry.ticket_id == ticket_id)
        if actions is not None:
            query = query.where(AuditEntry.action.in_(list(actions)))
        return list(self._session.scalars(query.order_by(AuditEntry.id)))

    def find(
        self,
        where: TicketFilter,
        limit: int = 200,
        *,
        offset: int = 0,
        sort: str = "last_failed",
        descending: bool = True,
    ) -> list[CaseTicket]:
        """By `sort` (newest failure first by default), ties by ticket number in the same
        direction: a stable order, the same list every time."""
        column = SORT_COLUMNS[sort]
        order = (column.desc(), CaseTicket.id.desc()) if descending else (column.asc(), CaseTicket.id.asc())
        query = where.apply(select(CaseTicket)).order_by(*order).offset(offset).limit(limit)
        return list(self._session.scalars(query))

    def count(self, where: TicketFilter) -> int:
        return self._session.scalar(where.apply(select(func.count()).select_from(CaseTicket))) or 0

    def active(self, where: TicketFilter, limit: int) -> tuple[list[int], int]:
        """The numbers of the open and replayed tickets the filter matches, oldest first, at most
        `limit` of them; and how many there are in all."""
        active = CaseTicket.status.in_(ACTIVE)
        ids = self._session.scalars(
            where.apply(select(CaseTicket.id)).where(active).order_by(CaseTicket.id).limit(limit)
        )
        total = (
            self._session.scalar(where.apply(select(func.count()).select_from(CaseTicket)).where(active)) or 0
        )
        return list(ids), total

    def counts_by_error_code(self, where: TicketFilter) -> list[tuple[str, int]]:
        """How many tickets the filter matches, per error code, most frequent first."""
        code = func.coalesce(CaseTicket.error_code, "-")
        query = where.apply(select(code, func.count()).select_from(CaseTicket)).group_by(code)
        counted = ((str(c), int(n)) for c, n in self._session.execute(query))
        return sorted(counted, key=lambda row: (-row[1], row[0]))

    def oldest_active_failure(self) -> dt.datetime | None:
        """When the oldest ticket still waiting for a fix first failed (None: no such ticket)."""
        return self._session.scalar(
            select(func.min(CaseTicket.first_failed_at)).where(CaseTicket.status.in_(ACTIVE))
        )

    def add_edit(
        self, ticket_id: int, event: dict[str, Any], value: bytes, user: str, now: dt.datetime
    ) -> None:
        self._session.add(
            TicketEdit(ticket_id=ticket_id, edited_at=now, edited_by=user, event=event, value=value)
        )
        self._session.flush()

    def latest_edit(self, ticket_id: int) -> TicketEdit | None:
        return self._session.scalar(
            select(TicketEdit)
            .where(TicketEdit.ticket_id == ticket_id)
            .order_by(TicketEdit.id.desc())
            .limit(1)
        )

    def current_value(self, ticket: CaseTicket) -> bytes | None:
        """The ticket's event as it now stands: its newest edit's bytes, or the original's (None
        for a case filed by hand)."""
        edit = self.latest_edit(ticket.id)
        return edit.value if edit is not None else ticket.original_value

    def edits(self, ticket_id: int) -> list[TicketEdit]:
        """The ticket's edits, oldest first."""
        return list(
            self._session.scalars(
                select(TicketEdit).where(TicketEdit.ticket_id == ticket_id).order_by(TicketEdit.id)
            )
        )


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


def _tickets_of(session: Session, readings: Sequence[DeadLetterReading]) -> list[Row[Any]]:
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


def _new_ticket_row(r: DeadLetterReading, source_of: Any, now: dt.datetime) -> dict[str, Any]:
    event, (topic, partition, offset) = r.event, r.origin
    return {
        "status": TicketStatus.OPEN.value,
        "kind": r.kind,
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


def _failed_outcome(r: DeadLetterReading, now: dt.datetime) -> dict[str, Any]:
    """A failure of the ticket's event, with its reason that time, for the ticket's story."""
    return {"at": now, "kind": OUTCOME_FAILED, **_reason(r.error), "event_id": None}


def _accepted_outcome(event_id: str, now: dt.datetime) -> dict[str, Any]:
    return {"at": now, "kind": OUTCOME_ACCEPTED, **_reason({}), "event_id": event_id}


def _reason(error: dict[str, str | None]) -> dict[str, str | None]:
    return {k: error.get(k) for k in ("error_code", "error_message", "error_message_nb")}


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
