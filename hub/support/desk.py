"""Support work as a signed-in user does it: every ticket is reached through the user's scope,
and every view of personal data and every action is written to the audit log.

The support page calls these; each works inside the caller's unit of work. A ticket outside the
user's scope gets the same answer as one that does not exist, so numbers cannot be probed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from hub.domain.calendar import as_utc, norwegian_date
from hub.domain.identifiers import last_digits
from hub.errors import FAILURE_CODES, title
from hub.register.access_log import Reader
from hub.register.identity import IdentityError, SplitReport
from hub.register.models import (
    ACTIVE,
    OUTCOME_ACCEPTED,
    OUTCOME_FAILED,
    CaseTicket,
    PersonMerge,
    User,
)
from hub.register.unit_of_work import UnitOfWork
from hub.rules import rule_for
from hub.schemas.codec import SchemaCatalog
from hub.support import persons
from hub.support.access import NoSuchTicket, Role
from hub.support.approval import APPROVABLE, approve
from hub.support.export import export_number, export_person
from hub.support.incidents import Incident, find_incident
from hub.support.replay import check_replayable, edit_ticket
from hub.support.scope import OutOfScope, Scope, Sources
from hub.support.tickets import (
    IDENTITY_CONFLICT_KIND,
    MANUAL,
    TicketError,
    TicketFilter,
    TicketStatus,
    describe_ticket,
    file_manual_case,
    settle,
)


def scoped(user: User, where: TicketFilter, sources: Sources) -> TicketFilter:
    """The filter narrowed to what the user may see (`hub.support.scope`). A municipality user's
    filter by municipality is dropped: their scope is their municipality already, and the
    municipality a ticket shows is the event's claim, never its scope."""
    scope = Scope.of(user, sources)
    if scope.imdi:
        return where
    return dataclasses.replace(where, municipality=None, within=scope.tickets())


def by_person(uow: UnitOfWork, where: TicketFilter) -> TicketFilter:
    """A search by one whole identifier widened to every number of the same person."""
    if len(where.identifiers) != 1:
        return where
    return dataclasses.replace(where, identifiers=uow.person_data.same_person_numbers(where.identifiers[0]))


def record_search(uow: UnitOfWork, user: User, number: str, now: dt.datetime) -> None:
    """A search by a whole identifier tells whether that person has cases: audited (without the
    number), and in the access log by whom it was about (`hub.register.access_log`)."""
    uow.audit.record(user.username, "search_person", now)
    uow.access_log.record_number_read(Reader.desk(user.username), "search_person", now, number)


def ticket_list(
    uow: UnitOfWork,
    catalog: SchemaCatalog,
    user: User,
    where: TicketFilter,
    limit: int = 200,
    *,
    offset: int = 0,
    sort: str = "last_failed",
    descending: bool = True,
    sources: Sources,
) -> list[dict[str, Any]]:
    """Tickets the user may see, one page of them, identifiers shown by their last digits only
    (so a list is not a view of personal data, and still lets a person recognise a caller's case)."""
    tickets = uow.tickets.find(
        scoped(user, by_person(uow, where), sources),
        limit,
        offset=offset,
        sort=sort,
        descending=descending,
    )
    return [
        {
            **describe_ticket(uow, catalog, t),
            "dufNumber": last_digits(t.duf_number),
            "nationalId": last_digits(t.national_id),
        }
        for t in tickets
    ]


def ticket_count(uow: UnitOfWork, user: User, where: TicketFilter, *, sources: Sources) -> int:
    """How many tickets the user may see match the filter (every page together)."""
    return uow.tickets.count(scoped(user, by_person(uow, where), sources))


# The most tickets one bulk action works on; more are left for the next, and the page says so.
BULK_LIMIT = 1000


def bulk_targets(
    uow: UnitOfWork, user: User, where: TicketFilter, now: dt.datetime, *, sources: Sources
) -> tuple[list[int], int]:
    """The open and replayed tickets the filter matches that the user may act on (at most
    BULK_LIMIT, oldest first), and how many there are in all. A filter by a person tells what
    cases they have: in the access log, by whom."""
    if len(where.identifiers) == 1:
        uow.access_log.record_number_read(
            Reader.desk(user.username), "bulk_by_person", now, where.identifiers[0]
        )
    return uow.tickets.active(scoped(user, by_person(uow, where), sources), BULK_LIMIT)


def settle_many_as(
    uow: UnitOfWork,
    user: User,
    ticket_ids: list[int],
    status: TicketStatus,
    note: str,
    now: dt.datetime,
    *,
    sources: Sources,
) -> int:
    """Resolve or discard each ticket (each in the user's scope, each audited); how many."""
    for ticket_id in ticket_ids:
        settle_as(uow, user, ticket_id, status, note, now, sources=sources)
    return len(ticket_ids)


def incidents_as(
    uow: UnitOfWork, user: User, window: dt.timedelta, limit: int, *, sources: Sources
) -> list[Incident]:
    """The incidents of the tickets the user sees, grouped and counted over those alone."""
    return uow.incidents.find(window=window, limit=limit, within=Scope.of(user, sources).tickets())


def incident_as(
    uow: UnitOfWork, user: User, ticket_id: int, window: dt.timedelta, *, sources: Sources
) -> Incident:
    """The incident of one ticket the user sees (`NoSuchTicket` for one they do not), among the
    tickets they see; `TicketError` if the ticket is in none (closed)."""
    ticket_in_scope(uow, user, ticket_id, sources=sources)
    within = Scope.of(user, sources).tickets()
    return find_incident(uow, window=window, ticket_id=ticket_id, within=within)


def error_code_counts(
    uow: UnitOfWork, user: User, where: TicketFilter, *, sources: Sources
) -> list[tuple[str, int]]:
    """Counts by error code of what the filter (without its own error code) matches."""
    return uow.tickets.counts_by_error_code(
        scoped(user, by_person(uow, dataclasses.replace(where, error_code=None)), sources)
    )


def ticket_in_scope(uow: UnitOfWork, user: User, ticket_id: int, *, sources: Sources) -> CaseTicket:
    """The ticket, if the user's scope has it; else `NoSuchTicket`, as if there were none."""
    ticket = uow.tickets.get(ticket_id)
    if ticket is None or not Scope.of(user, sources).sees(ticket):
        raise NoSuchTicket(ticket_id)
    return ticket


def record_refusal(
    uow: UnitOfWork, user: User, ticket_id: int | None, now: dt.datetime, refused: Exception | None = None
) -> None:
    """Audit a request the user may not make: a ticket they may not see (`denied`), or an edit
    or replay outside their scope (`out_of_scope`, with why). In its own transaction: the
    request's own work is rolled back."""
    if isinstance(refused, OutOfScope):
        uow.audit.record(user.username, "out_of_scope", now, ticket_id=ticket_id, detail=refused.detail)
    else:
        uow.audit.record(user.username, "denied", now, ticket_id=ticket_id)


def check_replay_as(
    uow: UnitOfWork, catalog: SchemaCatalog, user: User, ticket_id: int, *, sources: Sources, today: dt.date
) -> None:
    """`OutOfScope` unless the user may replay the ticket's event as it now stands (the newest
    edit, or the original) to the topic it came on (`Scope.check_replay`)."""
    ticket = ticket_in_scope(uow, user, ticket_id, sources=sources)
    check_replayable(catalog, Scope.of(user, sources), ticket, uow.tickets.current_value(ticket), today)


def view_ticket(
    uow: UnitOfWork,
    catalog: SchemaCatalog,
    user: User,
    ticket_id: int,
    now: dt.datetime,
    *,
    sources: Sources,
) -> dict[str, Any]:
    """The ticket with identifiers and the decoded event in clear (audited), and the event as
    the next edit would start from: the newest edit, else the original. Beside it: its story,
    each edit as a difference from the original, the rule's title and advice, and the person's
    register around the fact's date.

    An identity conflict shows IMDi's support staff each person the ticket's numbers name
    (`identity`), and a municipality's user neither: IMDi decides whether they are one person, and
    the other may be someone the municipality does not know. The persons' merges (and so what a
    split would undo) are IMDi's to see; whether the ticket may be approved past its rule too.
    A municipality user sees of the register only their own (`register_context`)."""
    ticket = ticket_in_scope(uow, user, ticket_id, sources=sources)
    scope = Scope.of(user, sources)
    imdi = scope.imdi
    shown = describe_ticket(uow, catalog, ticket, reveal=True)
    edit = uow.tickets.latest_edit(ticket_id)
    shown["editable"] = edit.event if edit is not None else shown["event"]
    for e in shown["edits"]:
        e["changes"] = edit_changes(shown["event"], e["event"])
    shown["story"] = ticket_story(uow, ticket)
    shown["rule"] = _rule_texts(ticket.error_code)
    shown["identity"] = None
    if ticket.kind == IDENTITY_CONFLICT_KIND:
        shown["register"] = None
        if imdi:
            shown["identity"] = identity_context(uow, ticket)
    else:
        shown["register"] = register_context(uow, ticket, scope, norwegian_date(now))
        if shown["register"] is not None and not imdi and not shown["register"]["hidden"]:
            shown["register"]["merges"] = []
    shown["sender"] = sender.id if (sender := sources.sender(ticket)) is not None else None
    shown["mayDecide"] = imdi
    shown["approvable"] = imdi and ticket.error_code in APPROVABLE and ticket.status in ACTIVE
    shown["approval"] = (
        {"code": ticket.approved_code, "by": ticket.approved_by, "at": as_utc(ticket.approved_at)}
        if ticket.approved_code and ticket.approved_at
        else None
    )
    uow.audit.record(user.username, "view_ticket", now, ticket_id=ticket_id)
    uow.access_log.record_ticket_read(Reader.desk(user.username), "view_ticket", now, ticket)
    return shown


# The audit log's actions on a ticket that belong to its story (views and refusals do not).
_STORY_ACTIONS = (
    "file_case",
    "edit",
    "approve",
    "replay",
    "replay_failed",
    "resolved",
    "discarded",
    "merge_persons",
    "split_persons",
)


def ticket_story(uow: UnitOfWork, ticket: CaseTicket) -> list[dict[str, Any]]:
    """Everything that happened to the ticket, oldest first: each failure with its reason, each
    edit, replay (with its outcome: the failure or acceptance that followed), closing and
    acceptance, with who and when."""
    outcomes = uow.tickets.outcomes(ticket.id)
    entries: list[dict[str, Any]] = [
        {
            "at": as_utc(o.at),
            "what": o.kind,
            "who": None,
            "code": o.error_code,
            "message": o.error_message,
            "messageNb": o.error_message_nb,
            "eventId": o.event_id,
        }
        for o in outcomes
    ]
    if not outcomes and ticket.kind != MANUAL:  # a ticket from before its outcomes were kept
        entries.append(
            {"at": as_utc(ticket.first_failed_at), "what": OUTCOME_FAILED, "code": ticket.error_code}
        )
        if ticket.attempts > 1:
            entries.append(
                {"at": as_utc(ticket.last_failed_at), "what": OUTCOME_FAILED, "code": ticket.error_code}
            )
        if ticket.linked_event_id and ticket.closed_at:
            entries.append(
                {"at": as_utc(ticket.closed_at), "what": OUTCOME_ACCEPTED, "eventId": ticket.linked_event_id}
            )
    for act in uow.tickets.audit_entries(ticket.id, _STORY_ACTIONS):
        entries.append({"at": as_utc(act.at), "what": act.action, "who": act.username})
    entries.sort(key=lambda e: e["at"])
    for index, entry in enumerate(entries):
        if entry["what"] == "replay":
            after = (e for e in entries[index + 1 :] if e["what"] in (OUTCOME_FAILED, OUTCOME_ACCEPTED))
            entry["outcome"] = next(after, {"what": "waiting"})
    return entries


def edit_changes(original: Any, edited: Any) -> list[dict[str, Any]]:
    """What an edit changed from the original event, field by field (`payload.periodEnd`), each
    with its value before and after (left out on the side where the field is absent)."""
    before, after = dict(_leaves(original, "")), dict(_leaves(edited, ""))
    return [
        {
            "path": path,
            **({"before": before[path]} if path in before else {}),
            **({"after": after[path]} if path in after else {}),
        }
        for path in sorted(before.keys() | after.keys())
        if path not in before or path not in after or before[path] != after[path]
    ]


def _leaves(value: Any, path: str) -> list[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        return [
            leaf for key, child in value.items() for leaf in _leaves(child, f"{path}.{key}" if path else key)
        ]
    if isinstance(value, list) and value:
        return [leaf for i, child in enumerate(value) for leaf in _leaves(child, f"{path}[{i}]")]
    return [(path, value)]


def _rule_texts(code: str | None) -> dict[str, dict[str, str] | None] | None:
    """The rule's title and what to do, in both languages (the page picks the user's)."""
    found = rule_for(code)
    if found is not None:
        return {
            "title": {"en": found.title, "nb": found.title_nb},
            "advice": {"en": found.advice.en, "nb": found.advice.nb},
        }
    failure = next((error for error in FAILURE_CODES if error.code == code), None)
    if failure is not None:
        return {"title": {"en": title(failure), "nb": failure.title_nb}, "advice": None}
    return None


# How many of the person's newest registrations a ticket shows beside its error.
RECENT_REGISTRATIONS = 6


# The ticket's numbers by the names the page and its forms give them.
NATIONAL_ID, DUF = "national_id", "duf"
NUMBER_KINDS = (NATIONAL_ID, DUF)


def ticket_number(ticket: CaseTicket, kind: str) -> str | None:
    """The ticket's fødselsnummer/D-number (`national_id`) or DUF number (`duf`)."""
    return ticket.national_id if kind == NATIONAL_ID else ticket.duf_number if kind == DUF else None


def _persons_of(uow: UnitOfWork, ticket: CaseTicket) -> list[tuple[int, list[str]]]:
    """Each register person the ticket's numbers name, with which of its numbers name them
    (the national id's person first)."""
    found: dict[int, list[str]] = {}
    for kind in NUMBER_KINDS:
        number = ticket_number(ticket, kind)
        person_id = uow.identity.person_id_of(number) if number else None
        if person_id is not None:
            found.setdefault(person_id, []).append(kind)
    return list(found.items())


def _person_summary(person: dict[str, Any]) -> dict[str, Any]:
    """What a ticket shows of one person of the register (from `describe_person`)."""
    return {
        "personId": person["personId"],
        "identifiers": person["identifiers"],
        "states": person["states"],
        "schemes": person["state"],
        "registrations": list(reversed(person["registrations"][-RECENT_REGISTRATIONS:])),
        "registrationCount": len(person["registrations"]),
        "chains": person["chains"],
        "merges": person["merges"],
    }


def register_context(
    uow: UnitOfWork, ticket: CaseTicket, scope: Scope, today: dt.date
) -> dict[str, Any] | None:
    """What the register holds about the ticket's person, for understanding its error without
    another tool: each scheme's state, the newest registrations, each corrected or annulled
    registration with its versions, where they lived and their categories on the fact's date,
    Folkeregisteret's word on them, and the merges into them. `foundBy` is which of the ticket's
    numbers found them. None if the person is not in the register.

    A municipality user sees only their own: the registrations their municipality or their
    sources made (and the states and categories those alone make), and the person's residence if
    it is in their municipality. A person with neither is not theirs to see at all: `{"hidden":
    True}`, nothing more, not even whether the register knows them. IMDi's support staff see all."""
    found = _persons_of(uow, ticket)
    if not found:
        return None if scope.imdi else _hidden()
    person_id, kinds = found[0]
    person = uow.person_data.describe(person_id, on=ticket.fact_date, only=scope.registrations(today))
    residence = person["municipalityOn"]
    lives_here = scope.lives_here(residence.get("municipality"), today)
    if not scope.imdi:
        if not person["registrations"] and not lives_here:
            return _hidden()
        if not lives_here:  # where they live is another municipality's to know
            residence = {"date": residence["date"], "from": None, "municipality": None}
    return {
        **_person_summary(person),
        "foundBy": kinds,
        "on": person["municipalityOn"]["date"],
        "residence": residence,
        "categories": person["categories"],
        "hidden": False,
    }


def _hidden() -> dict[str, Any]:
    """What a municipality user is shown of a person who is not theirs (or not in the register:
    the same answer, so the desk does not tell whether another municipality knows them)."""
    return {"hidden": True}


def identity_context(uow: UnitOfWork, ticket: CaseTicket) -> dict[str, Any]:
    """Each person an identity conflict's numbers name, side by side with their numbers in
    full (`persons`, each with `foundBy`: which of the ticket's numbers found them), and the
    ticket's numbers no person in the register has (`notFound`: a second number of one kind for
    a person who has another, when the other person is not there)."""
    found = _persons_of(uow, ticket)
    named = {kind for _, kinds in found for kind in kinds}
    return {
        "persons": [
            {**_person_summary(uow.person_data.describe(person_id, on=ticket.fact_date)), "foundBy": kinds}
            for person_id, kinds in found
        ],
        "notFound": [kind for kind in NUMBER_KINDS if ticket_number(ticket, kind) and kind not in named],
    }


def edit_as(
    uow: UnitOfWork,
    catalog: SchemaCatalog,
    user: User,
    ticket_id: int,
    event: dict[str, Any],
    now: dt.datetime,
    *,
    sources: Sources,
) -> None:
    """Keep a corrected event on the ticket (checked against the contract and, for a
    municipality user, against their scope as a replay would be: `OutOfScope`; audited)."""
    ticket = ticket_in_scope(uow, user, ticket_id, sources=sources)
    edit_ticket(
        uow,
        catalog,
        ticket,
        event,
        user.username,
        now,
        scope=Scope.of(user, sources),
        sender=sources.sender(ticket),
    )


def _number_of(ticket: CaseTicket, kind: str) -> str:
    number = ticket_number(ticket, kind)
    if number is None:
        raise IdentityError(f"ticket {ticket.id} has no {'DUF number' if kind == DUF else 'national id'}")
    return number


def export_as(
    uow: UnitOfWork,
    catalog: SchemaCatalog,
    user: User,
    ticket_id: int,
    *,
    number: str,
    now: dt.datetime,
    sources: Sources,
) -> dict[str, Any]:
    """Everything the register holds about the person the ticket's `number` (`national_id` or
    `duf`) names, for their request of access (`hub.support.export`): IMDi's support staff only,
    and in the access log. `IdentityError` if the register does not know that person."""
    ticket = ticket_in_scope(uow, user, ticket_id, sources=sources)
    persons.require_imdi(user)
    value = _number_of(ticket, number)
    person_id = uow.identity.person_id_of(value)
    reader = dataclasses.replace(Reader.desk(user.username), reason=f"request of access, ticket {ticket_id}")
    if person_id is None:  # never registered: the ticket (at least) and its reads are theirs
        found = export_number(uow, catalog, reader, value, now)
        if found is None:
            raise IdentityError(f"the register has no person with the ticket's {number.replace('_', ' ')}")
        return found
    return export_person(uow, catalog, reader, person_id, now)


def merge_as(
    uow: UnitOfWork,
    user: User,
    ticket_id: int,
    *,
    keep: str,
    reason: str,
    now: dt.datetime,
    sources: Sources,
) -> PersonMerge:
    """Settle an open identity conflict by joining the person the ticket's other number names
    into the one its `keep` number (`national_id` or `duf`) names: IMDi's support staff only
    (audited by `hub.support.persons`)."""
    ticket = ticket_in_scope(uow, user, ticket_id, sources=sources)
    persons.require_imdi(user)
    if ticket.kind != IDENTITY_CONFLICT_KIND:
        raise IdentityError(f"ticket {ticket.id} is not an identity conflict")
    if ticket.status not in ACTIVE:
        raise TicketError(f"ticket {ticket.id} is {ticket.status}; only open tickets are settled by a merge")
    other = DUF if keep == NATIONAL_ID else NATIONAL_ID
    return persons.merge(
        uow,
        user.username,
        _number_of(ticket, keep),
        _number_of(ticket, other),
        reason=reason,
        now=now,
        ticket_id=ticket.id,
    )


def split_as(
    uow: UnitOfWork,
    user: User,
    ticket_id: int,
    *,
    number: str,
    merge_id: int | None,
    reason: str,
    mixed_to: str | None,
    now: dt.datetime,
    sources: Sources,
) -> SplitReport:
    """Undo a merge in force into the person the ticket's `number` (`national_id` or `duf`)
    names: IMDi's support staff only (audited by `hub.support.persons`)."""
    ticket = ticket_in_scope(uow, user, ticket_id, sources=sources)
    persons.require_imdi(user)
    return persons.split(
        uow,
        user.username,
        _number_of(ticket, number),
        reason=reason,
        now=now,
        merge_id=merge_id,
        mixed_to=mixed_to,
    )


def approve_as(
    uow: UnitOfWork, user: User, ticket_id: int, *, note: str, now: dt.datetime, sources: Sources
) -> None:
    """Approve the ticket's event past the rule that refused it (`hub.support.approval`): IMDi's
    support staff only."""
    ticket = ticket_in_scope(uow, user, ticket_id, sources=sources)
    persons.require_imdi(user)
    approve(uow, ticket, username=user.username, note=note, now=now)


def settle_as(
    uow: UnitOfWork,
    user: User,
    ticket_id: int,
    status: TicketStatus,
    note: str,
    now: dt.datetime,
    *,
    sources: Sources,
) -> None:
    ticket_in_scope(uow, user, ticket_id, sources=sources)
    settle(uow, ticket_id, status, note, now, username=user.username)


def file_case_as(
    uow: UnitOfWork,
    user: User,
    *,
    duf_number: str,
    description: str,
    municipality: str | None,
    now: dt.datetime,
) -> CaseTicket:
    """File a case by hand; a municipality's super user files for their own municipality."""
    duf_number = duf_number.strip()
    if user.role != Role.IMDI_SUPPORT.value:
        municipality = user.municipality
    ticket = file_manual_case(
        uow, duf_number=duf_number, description=description, municipality=municipality or None, now=now
    )
    uow.audit.record(user.username, "file_case", now, ticket_id=ticket.id)
    return ticket
