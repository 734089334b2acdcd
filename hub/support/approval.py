"""IMDi's approval of one event a rule refused, for the rules whose refusal a person may set
aside: a correction or annulment from a source that does not report for the municipality that
registered the original (NIR-CORR-004) is accepted "through the support desk by IMDi, audited".

An approval is bound to the ticket and to the very message then replayed (the SHA-256 of its
value, the newest edit or the original), so it cannot be spent on another event with the same
id, nor on the event edited afterwards: an edit clears it (`hub.support.replay.edit_ticket`).
The decision reads it from the ticket (`hub.pipeline.decide`, `RuleContext.approved`).
"""

from __future__ import annotations

import datetime as dt
import hashlib

from hub.domain.redaction import clean
from hub.register.models import ACTIVE, CaseTicket
from hub.register.unit_of_work import UnitOfWork
from hub.support.tickets import TicketError

# The rules whose refusal IMDi may set aside for one event, and why it may.
APPROVABLE = {
    "NIR-CORR-004": "IMDi may correct or annul any municipality's registration through the support desk",
}


def approve(uow: UnitOfWork, ticket: CaseTicket, *, username: str, note: str, now: dt.datetime) -> None:
    """Approve the ticket's event, as it will be replayed, past the rule that refused it (audited
    with the note)."""
    if not note.strip():
        raise TicketError("a note is required: say why IMDi approves this event")
    if ticket.status not in ACTIVE:
        raise TicketError(f"ticket {ticket.id} is {ticket.status}; only open tickets can be approved")
    if ticket.error_code not in APPROVABLE:
        raise TicketError(
            f"ticket {ticket.id} failed with {ticket.error_code or 'no rule'}, which IMDi cannot approve past; "
            f"only {', '.join(sorted(APPROVABLE))}"
        )
    value = uow.tickets.current_value(ticket)
    if value is None:
        raise TicketError(f"ticket {ticket.id} has no event to approve")
    uow.tickets.approve(ticket, digest=hashlib.sha256(value).hexdigest(), by=username, now=now)
    uow.audit.record(
        username,
        "approve",
        now,
        ticket_id=ticket.id,
        detail=clean(f"{ticket.error_code}: {note}", 500),
    )
