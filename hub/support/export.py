"""A person's right of access (GDPR art. 15): everything the register holds about them, as JSON
for machines and as a page in Norwegian for the person (`hub person export`, and the button on
the support desk's ticket page for IMDi's support staff).

What it holds, built on `hub.register.people.describe_person` (nothing assembled twice): the
person's identifiers with their kinds and history, Folkeregisteret's word on them, every
registration as received and each corrected or annulled one's chain of versions, the states and
categories derived from them, addresses and where they lived, the merges into them. Beside it:

- `folkeregister`: the connector's look-ups of the person (theirs, and those of a record merged
  into them, kept on the merge) and each person event from Folkeregisteret (identity change,
  death, duplicate cessation) with the numbers it named;
- `heldEvents`: registrations about any of their numbers that wait for an earlier fact, each
  with why, since when, how often tried, and the event as it arrived;
- `merges`: each merge into them or out of which they were split again, with what moved;
- `tickets`: the case tickets about any of their numbers, each with its story (failures, edits,
  approvals, replays and their outcomes, closing: the desk's `ticket_story`), its approval, and
  every audit-log entry about it;
- `accessLog`: who has read their data (`uow.access_log.reads_of`), this export's own
  read included.

A number the register has no person for (a registration that failed or waits before the person
was ever registered) has its own export, `export_number`: the same shape, without what only a
registered person has.

Which table of the register is in the export, and which is not about a person, is written down
in tests/integration/test_person_export.py (`EXPORTED`, `NOT_ABOUT_A_PERSON`): a new table fails
that test until it is placed in one or the other.

Decisions:
- A protected address (strengt fortrolig and the like) is included whole, municipality too: the
  protection keeps the address from others, and this export is for the person themself. Whoever
  hands it over must hand it to them alone.
- A ticket or held event that also names another person (an identity conflict: one number
  theirs, one someone else's) is listed with the other number left out and without its event,
  which holds both, nor anything that may name the other (an accepted event's id, an audit
  entry's detail); the export for one person holds nothing about another. A person event's
  numbers are shown only where they are the person's own (after a split one may not be), and
  a merge they were split out of without the person it was into.
- The access log names who read and why; it is the person's data about the reads of their data.
- Not in it: the connector's feed position (on a Kafka topic, not about a person) and support
  staff's own data (users, sessions, sign-ins): a support user's request of access is answered
  from those tables, not by this export.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from hub.domain.calendar import iso_utc, norwegian_day_text, norwegian_time_text
from hub.domain.identifiers import number_kind
from hub.register.access_log import Reader
from hub.register.models import CaseTicket, HeldEvent
from hub.register.unit_of_work import UnitOfWork
from hub.schemas.codec import SchemaCatalog
from hub.support.i18n import NORWEGIAN, translator
from hub.support.tickets import describe_ticket, event_json

FORMATS = ("json", "html")
EXPORT_ACTION = "person_export"


def export_person(
    uow: UnitOfWork, catalog: SchemaCatalog, reader: Reader, person_id: int, now: dt.datetime
) -> dict[str, Any]:
    """Everything the register holds about the person, as JSON-ready data; the export is itself
    a read, logged first so that it is in the access log it carries."""
    data = uow.person_data
    numbers = data.numbers_of(person_id)
    uow.access_log.record_read(reader, EXPORT_ACTION, now, person_id=person_id)
    tickets = data.tickets_naming(numbers)
    held = data.held_naming(numbers)
    return {
        "exportedAt": iso_utc(now),
        "person": data.describe(person_id, protected_shown=True),
        "folkeregister": _folkeregister(uow, person_id, numbers),
        "heldEvents": [_held(catalog, h, numbers) for h in held],
        "merges": _merges(uow, person_id),
        "tickets": [_ticket(uow, catalog, t, numbers) for t in tickets],
        "accessLog": uow.access_log.reads_of(person_id),
    }


def export_number(
    uow: UnitOfWork, catalog: SchemaCatalog, reader: Reader, number: str, now: dt.datetime
) -> dict[str, Any] | None:
    """What the register holds about a number it has no person for: a registration that failed
    (its ticket) or waits (a held event) before the person was ever registered, an event from
    Folkeregisteret kept before its person was known, and who read it (searches, ticket views).
    The same shape as `export_person`, with a person of this one number and nothing derived;
    None when the register holds nothing about the number. Logged first, as `export_person`."""
    numbers = {number}
    data = uow.person_data
    tickets = data.tickets_naming(numbers)
    held = data.held_naming(numbers)
    folkeregister = _folkeregister(uow, None, numbers)
    reads = uow.access_log.reads_of(None, numbers)
    if not (tickets or held or folkeregister["personEvents"] or reads):
        return None
    uow.access_log.record_read(reader, EXPORT_ACTION, now, numbers=numbers)
    return {
        "exportedAt": iso_utc(now),
        "person": {
            "personId": None,  # the register has no person for the number: nothing derived
            "identifiers": [
                {"kind": number_kind(number), "value": number, "firstSeenAt": None, "ceasedAt": None}
            ],
            "states": [],
            "state": {},
            "registrations": [],
            "chains": [],
            "addresses": [],
        },
        "folkeregister": folkeregister,
        "heldEvents": [_held(catalog, h, numbers) for h in held],
        "merges": [],
        "tickets": [_ticket(uow, catalog, t, numbers) for t in tickets],
        "accessLog": uow.access_log.reads_of(None, numbers),
    }


def _folkeregister(uow: UnitOfWork, person_id: int | None, numbers: set[str]) -> dict[str, Any]:
    """What the Folkeregister connector looked up and recorded about the person, besides their
    addresses (which `describe_person` holds)."""
    lookups: list[dict[str, Any]] = []
    if person_id is not None:  # a number without a person was never looked up
        lookups += [
            {
                "mergeId": None,
                "requestedAt": iso_utc(lookup.requested_at),
                "completedAt": _moment(lookup.completed_at),
            }
            for lookup in uow.person_data.lookups_of(person_id)
        ]
        # A record merged into the person had its own look-up; the merge keeps it (see `record_merge`).
        lookups += [
            {
                "mergeId": m.id,
                "requestedAt": m.other_lookup.get("requested_at"),
                "completedAt": m.other_lookup.get("completed_at"),
            }
            for m in uow.identity.merges_of(person_id)
            if m.other_lookup
        ]
    # An event kept before its person was known names their number but not yet their id.
    events = uow.person_data.person_events(person_id, numbers)
    named: dict[int, list[dict[str, Any]]] = {}
    for n in uow.person_data.event_numbers(e.id for e in events):
        if n.value in numbers:
            named.setdefault(n.person_event_id, []).append({"value": n.value, "ceased": n.ceased})
    return {
        "lookups": lookups,
        "personEvents": [
            {
                "sequenceNumber": e.sequence_number,
                "eventType": e.event_type,
                "eventDate": e.event_date.isoformat() if e.event_date else None,
                "recordedAt": iso_utc(e.recorded_at),
                "receivedAt": iso_utc(e.received_at),
                "numbers": named.get(e.id, []),
            }
            for e in events
        ],
    }


def _held(catalog: SchemaCatalog, held: HeldEvent, numbers: set[str]) -> dict[str, Any]:
    """A registration about the person that waits for an earlier fact; one that names another
    person too without that person's number and without the event that holds both."""
    own = all(n in numbers for n in (held.duf_number, held.national_id) if n)
    return {
        "eventId": held.event_id,
        "dufNumber": held.duf_number if held.duf_number in numbers else None,
        "nationalId": held.national_id if held.national_id in numbers else None,
        "factDate": held.fact_date.isoformat(),
        "heldAt": iso_utc(held.held_at),
        "attempts": held.attempts,
        "reason": {"code": held.reason_code, "message": held.reason, "messageNb": held.reason_nb},
        "correctsEventId": held.corrects_event_id,
        "nudgedAt": _moment(held.nudged_at),
        "origin": {"topic": held.topic, "partition": held.partition, "offset": held.offset},
        "event": event_json(catalog, held.message_value) if own else None,
        **({} if own else {"namesAnotherPerson": True}),
    }


def _merges(uow: UnitOfWork, person_id: int) -> list[dict[str, Any]]:
    """Each merge into the person (`into`) and each they were split out of again (`out`), with
    how many rows of each table moved; the person an `out` merge was into is left out."""
    merges = uow.person_data.merges_of_either_side(person_id)
    moved = uow.person_data.moved_by(m.id for m in merges)
    return [
        {
            "mergeId": m.id,
            "direction": "into" if m.keeper_id == person_id else "out",
            "otherPersonId": m.other_id if m.keeper_id == person_id else None,
            "otherCreatedAt": iso_utc(m.other_created_at),
            "mergedAt": iso_utc(m.merged_at),
            "mergedBy": m.merged_by,
            "reason": m.reason,
            "ticketId": m.ticket_id,
            "splitAt": _moment(m.split_at),
            "splitBy": m.split_by,
            "splitReason": m.split_reason,
            "moved": dict(sorted(moved.get(m.id, {}).items())),
        }
        for m in merges
    ]


def _moment(value: dt.datetime | None) -> str | None:
    return iso_utc(value) if value is not None else None


def _ticket(uow: UnitOfWork, catalog: SchemaCatalog, ticket: CaseTicket, numbers: set[str]) -> dict[str, Any]:
    """A ticket about the person; one that names another person too without that person's
    number and without the event that holds both."""
    # The desk imports this module for its export button: its story is imported when used.
    from hub.support.desk import ticket_story

    own = all(n in numbers for n in (ticket.duf_number, ticket.national_id) if n)
    shown = describe_ticket(uow, catalog, ticket, reveal=own)
    shown["story"] = [_json_ready(entry) for entry in ticket_story(uow, ticket)]
    shown["approval"] = (
        {"code": ticket.approved_code, "by": ticket.approved_by, "at": _moment(ticket.approved_at)}
        if ticket.approved_code
        else None
    )
    # Every audit entry about the ticket: its story's acts, and the views and refusals the
    # story leaves out (a view is in the access log too).
    shown["auditLog"] = [
        {"at": iso_utc(a.at), "who": a.username, "action": a.action, "detail": a.detail}
        for a in uow.tickets.audit_entries(ticket.id)
    ]
    if not own:
        shown["dufNumber"] = ticket.duf_number if ticket.duf_number in numbers else None
        shown["nationalId"] = ticket.national_id if ticket.national_id in numbers else None
        shown["event"] = None
        shown["edits"] = [{k: v for k, v in e.items() if k != "event"} for e in shown["edits"]]
        # The event that settled it, or a merge's or split's detail, may be the other person's.
        shown["story"] = [_without(e, "eventId") for e in shown["story"]]
        shown["auditLog"] = [{**a, "detail": None} for a in shown["auditLog"]]
        shown["namesAnotherPerson"] = True
    return shown


def _without(entry: dict[str, Any], key: str) -> dict[str, Any]:
    kept = {k: v for k, v in entry.items() if k != key}
    if isinstance(kept.get("outcome"), dict):
        kept["outcome"] = _without(kept["outcome"], key)
    return kept


def _json_ready(value: Any) -> Any:
    """A story entry with its moments as ISO text, as the rest of the export has them."""
    if isinstance(value, dt.datetime):
        return iso_utc(value)
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    return value


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
    return _templates.get_template("person_export.html").render(
        x=export, p=export["person"], t=translator(NORWEGIAN)
    )
