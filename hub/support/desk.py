"""Support work as a signed-in user does it: every ticket is reached through the user's scope,
and every view of personal data and every action is written to the audit log.

The support page calls these; each works inside the caller's session. A ticket outside the
user's scope gets the same answer as one that does not exist, so numbers cannot be probed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from hub.domain.identifiers import InvalidIdentifier, check_duf_number, mask
from hub.register.models import CaseTicket, User
from hub.schemas.codec import SchemaCatalog
from hub.support.access import AccessDenied, Role, audit, require_access
from hub.support.replay import edit_ticket
from hub.support.tickets import (
    TicketError,
    TicketFilter,
    TicketStatus,
    counts_by_error_code,
    describe_ticket,
    file_manual_case,
    latest_edit,
    list_tickets,
    settle,
)


def scoped(user: User, where: TicketFilter) -> TicketFilter:
    """The filter narrowed to what the user may see."""
    if user.role == Role.IMDI_SUPPORT.value:
        return where
    return dataclasses.replace(where, municipality=user.municipality)


def ticket_list(
    session: Session, catalog: SchemaCatalog, user: User, where: TicketFilter, limit: int = 200
) -> list[dict[str, Any]]:
    """Tickets the user may see, identifiers masked (so a list is not a view of personal data)."""
    tickets = list_tickets(session, scoped(user, where), limit)
    return [
        {**describe_ticket(session, catalog, t), "dufNumber": mask(t.duf_number) if t.duf_number else None}
        for t in tickets
    ]


def error_code_counts(session: Session, user: User, where: TicketFilter) -> list[tuple[str, int]]:
    """Counts by error code of what the filter (without its own error code) matches."""
    return counts_by_error_code(session, scoped(user, dataclasses.replace(where, error_code=None)))


def ticket_in_scope(session: Session, user: User, ticket_id: int) -> CaseTicket:
    ticket = session.get(CaseTicket, ticket_id)
    if ticket is None:
        raise AccessDenied(f"there is no ticket {ticket_id}")
    require_access(user, ticket)
    return ticket


def record_refusal(session: Session, user: User, ticket_id: int, now: dt.datetime) -> None:
    """Audit a request for a ticket the user may not see (in its own transaction: the request's
    own work is rolled back)."""
    audit(session, user.username, "denied", now, ticket_id=ticket_id)


def view_ticket(
    session: Session, catalog: SchemaCatalog, user: User, ticket_id: int, now: dt.datetime
) -> dict[str, Any]:
    """The ticket with identifiers and the decoded event in clear (audited), and the event as
    the next edit would start from: the newest edit, else the original."""
    ticket = ticket_in_scope(session, user, ticket_id)
    shown = describe_ticket(session, catalog, ticket, reveal=True)
    edit = latest_edit(session, ticket_id)
    shown["editable"] = edit.event if edit is not None else shown["event"]
    audit(session, user.username, "view_ticket", now, ticket_id=ticket_id)
    return shown


def edit_as(
    session: Session,
    catalog: SchemaCatalog,
    user: User,
    ticket_id: int,
    event: dict[str, Any],
    now: dt.datetime,
) -> None:
    """Keep a corrected event on the ticket (checked against the contract; audited)."""
    edit_ticket(session, catalog, ticket_in_scope(session, user, ticket_id), event, user.username, now)


def settle_as(
    session: Session, user: User, ticket_id: int, status: TicketStatus, note: str, now: dt.datetime
) -> None:
    ticket_in_scope(session, user, ticket_id)
    settle(session, ticket_id, status, note, now, username=user.username)


def file_case_as(
    session: Session,
    user: User,
    *,
    duf_number: str,
    description: str,
    municipality: str | None,
    now: dt.datetime,
) -> CaseTicket:
    """File a case by hand; a municipality's super user files for their own municipality."""
    duf_number = duf_number.strip()
    try:
        check_duf_number(duf_number, today=now.date())
    except InvalidIdentifier as exc:
        raise TicketError(f"DUF number {exc}") from exc
    if user.role != Role.IMDI_SUPPORT.value:
        municipality = user.municipality
    ticket = file_manual_case(
        session, duf_number=duf_number, description=description, municipality=municipality or None, now=now
    )
    audit(session, user.username, "file_case", now, ticket_id=ticket.id)
    return ticket
