"""A person's right of access (GDPR art. 15): everything the register holds about them, as JSON
for machines and as a page in Norwegian for the person (`hub person export`, and the button on
the support desk's ticket page for IMDi's support staff).

What it holds, built on `hub.register.people.describe_person` (nothing assembled twice): the
person's identifiers with their kinds and history, Folkeregisteret's word on them, every
registration as received and each corrected or annulled one's chain of versions, the states and
categories derived from them, addresses and where they lived, the merges into them, the case
tickets about any of their numbers, and the access log of who has read their data
(`hub.register.access_log.reads_of`), this export's own read included.

Decisions:
- A protected address (strengt fortrolig and the like) is included whole, municipality too: the
  protection keeps the address from others, and this export is for the person themself. Whoever
  hands it over must hand it to them alone.
- A ticket that also names another person (an identity conflict: one number theirs, one
  someone else's) is listed with the other number left out and without its event, which holds
  both; the export for one person holds nothing about another.
- The access log names who read and why; it is the person's data about the reads of their data.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from hub.domain.calendar import iso_utc, norwegian_day_text, norwegian_time_text
from hub.register import access_log
from hub.register.access_log import Reader
from hub.register.models import CaseTicket, PersonIdentifier
from hub.register.people import describe_person
from hub.schemas.codec import SchemaCatalog
from hub.support.tickets import describe_ticket

FORMATS = ("json", "html")
EXPORT_ACTION = "person_export"


def export_person(
    session: Session, catalog: SchemaCatalog, reader: Reader, person_id: int, now: dt.datetime
) -> dict[str, Any]:
    """Everything the register holds about the person, as JSON-ready data; the export is itself
    a read, logged first so that it is in the access log it carries."""
    numbers = set(
        session.scalars(select(PersonIdentifier.value).where(PersonIdentifier.person_id == person_id))
    )
    access_log.record_read(session, reader, EXPORT_ACTION, now, person_id=person_id)
    session.flush()
    tickets = session.scalars(
        select(CaseTicket)
        .where(or_(CaseTicket.duf_number.in_(numbers), CaseTicket.national_id.in_(numbers)))
        .order_by(CaseTicket.id)
    )
    return {
        "exportedAt": iso_utc(now),
        "person": describe_person(session, person_id, protected_shown=True),
        "tickets": [_ticket(session, catalog, t, numbers) for t in tickets],
        "accessLog": access_log.reads_of(session, person_id),
    }


def _ticket(
    session: Session, catalog: SchemaCatalog, ticket: CaseTicket, numbers: set[str]
) -> dict[str, Any]:
    """A ticket about the person; one that names another person too without that person's
    number and without the event that holds both."""
    own = all(n in numbers for n in (ticket.duf_number, ticket.national_id) if n)
    shown = describe_ticket(session, catalog, ticket, reveal=own)
    if not own:
        shown["dufNumber"] = ticket.duf_number if ticket.duf_number in numbers else None
        shown["nationalId"] = ticket.national_id if ticket.national_id in numbers else None
        shown["event"] = None
        shown["edits"] = [{k: v for k, v in e.items() if k != "event"} for e in shown["edits"]]
        shown["namesAnotherPerson"] = True
    return shown


_templates = Environment(
    loader=PackageLoader("hub.support", "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_templates.filters["moment"] = lambda v: norwegian_time_text(dt.datetime.fromisoformat(v)) if v else "-"
_templates.filters["day"] = lambda v: norwegian_day_text(dt.date.fromisoformat(v)) if v else "-"


def export_html(export: dict[str, Any]) -> str:
    """The export as a page for the person, in Norwegian."""
    return _templates.get_template("person_export.html").render(x=export, p=export["person"])
