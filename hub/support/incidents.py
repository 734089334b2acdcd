"""Incidents: the active case tickets of one cause, seen together (issue 32).

When a fagsystem release goes wrong every event it sends fails the same way, and support staff
should handle the thousands of tickets as one thing. A ticket's cause is its source, error code,
event type and the fagsystem release that sent it (`fagsystemVersion`), as of its last failure;
tickets of one cause whose last failures follow each other less than a window apart
(`NIR_INCIDENT_WINDOW_HOURS`) are one incident, and a longer quiet starts the next.

The grouping is one SQL statement on both databases, the unit of work's `uow.incidents`
(`hub.register.incidents`); only the incidents leave the database, never the tickets, and the
persons affected are counted, never listed. Here: what support may do with an incident.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

from sqlalchemy import ColumnElement

from hub.domain.calendar import as_utc
from hub.register.incidents import Cause, Incident
from hub.register.models import ACTIVE, TicketStatus
from hub.register.unit_of_work import UnitOfWork
from hub.support.tickets import TicketError, get_ticket

__all__ = ["RESOLVE_BATCH", "Cause", "Incident"]  # the incident's values are the register's

# The most tickets one transaction of `resolve_incident` closes: a large incident is closed in
# many short transactions, so the dead-letter flow writing beside it never waits long.
RESOLVE_BATCH = 1000


def find_incident(
    uow: UnitOfWork,
    *,
    window: dt.timedelta,
    cause: Cause | None = None,
    ticket_id: int | None = None,
    within: ColumnElement[bool] | None = None,
) -> Incident:
    """The incident of `cause`, or the one ticket `ticket_id` belongs to (then of its cause):
    `TicketError` if there is none, or if the cause has several and no ticket chooses. With
    `within`, among the tickets it keeps (`uow.incidents.find`); the caller checks the ticket is."""
    if ticket_id is not None:
        ticket = get_ticket(uow, ticket_id)
        if ticket.status not in ACTIVE:
            raise TicketError(f"ticket {ticket_id} is {ticket.status}: it is in no incident")
        own = Cause(ticket.source_system, ticket.error_code, ticket.event_type, ticket.fagsystem_version)
        if cause is not None and cause != own:
            raise TicketError(f"ticket {ticket_id} is not of that cause")
        at = as_utc(ticket.last_failed_at)
        for incident in uow.incidents.find(window=window, cause=own, within=within):
            if incident.first_seen <= at <= incident.last_seen:
                return incident
        raise TicketError(f"ticket {ticket_id} is in no incident")  # closed meanwhile
    if cause is None:
        raise TicketError("give the incident's cause or one of its tickets")
    found = uow.incidents.find(window=window, cause=cause, within=within)
    if not found:
        raise TicketError("there is no incident of that cause with open tickets")
    if len(found) > 1:
        samples = ", ".join(str(i.sample_ticket) for i in found)
        raise TicketError(f"that cause has {len(found)} incidents: choose one by a ticket of it ({samples})")
    return found[0]


def resolve_batch(
    uow: UnitOfWork, ticket_ids: list[int], note: str, now: dt.datetime, *, username: str
) -> int:
    """Resolve these tickets with the note, each audited as `hub cases resolve` audits one, with
    one update and one insert; a ticket closed meanwhile is left as it is. How many."""
    if not note.strip():
        raise TicketError("a note is required")
    closed = uow.incidents.resolve(ticket_ids, note, now)
    uow.audit.record_each(username, TicketStatus.RESOLVED.value, now, closed, detail="incident")
    return len(closed)


def resolve_incident(
    units: Callable[[], UnitOfWork],
    incident: Incident,
    note: str,
    now: dt.datetime,
    *,
    username: str,
    batch: int = RESOLVE_BATCH,
    within: ColumnElement[bool] | None = None,
) -> Iterator[int]:
    """Resolve every active ticket of the incident as it was found, `batch` per transaction;
    yields how many each transaction closed. Tickets of its cause that fail after its last
    failure are not in it, and stay open; with `within`, neither do those it does not keep."""
    while True:
        with units() as uow:
            ids = uow.incidents.tickets_of(incident, batch, within=within)
            if not ids:
                return
            count = resolve_batch(uow, ids, note, now, username=username)
            uow.commit()
        yield count
