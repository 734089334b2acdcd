"""Incidents (issue 32): the active tickets of one cause (source, error code, event type,
fagsystemVersion) whose failures follow each other less than a window apart are one incident,
listed with counts, and resolved together."""

from __future__ import annotations

import datetime as dt
import itertools
import json

from sqlalchemy import select

from hub.bootstrap import Hub
from hub.domain.events import Origin
from hub.domain.transfer import Failure
from hub.pipeline.deadletter import dead_letter_headers
from hub.register.access_log import os_user
from hub.register.database import make_session_factory
from hub.register.models import AuditEntry, CaseTicket
from hub.schemas.codec import REGISTRATION
from hub.schemas.contract import from_json
from hub.support.incidents import Cause, Incident, find_incident, resolve_incident
from hub.support.tickets import DeadLetter, tickets_from_dead_letters
from tests.conftest import pipeline_hub
from tests.factories import Person, event, synthetic_person
from tests.harness import hub_command

T0 = dt.datetime(2026, 12, 1, 8, tzinfo=dt.UTC)
WINDOW = dt.timedelta(hours=24)
OSLO, VESTLAND = "oslo-fagsystem", "vestland-fagsystem"
_offsets = itertools.count()


def _topic(source: str) -> str:
    return f"nir.source.{source}.registrations"


def _fail(
    hub: Hub,
    at: dt.datetime,
    *,
    source: str,
    code: str,
    person: Person | None = None,
    municipality: str = "0301",
    version: str | None = None,
) -> int:
    """A dead letter of the source made a ticket at `at`: of an event (with its release) if a
    person is given, else of a message that cannot be decoded. The ticket's id."""
    value = b"\x00not avro"
    if person is not None:
        sent = event(person, source=source, municipality=municipality)
        if version is not None:
            sent["fagsystemVersion"] = version
        value = hub.catalog.encode(REGISTRATION, from_json(sent))
    origin = Origin(_topic(source), 0, next(_offsets))
    headers = tuple(dead_letter_headers(origin, Failure("rule", code, f"{code}: failed"), at))
    letter = DeadLetter(Origin("nir.dead-letters", 0, next(_offsets)), b"k", value, headers)
    with hub.unit_of_work() as uow:
        [ticket] = tickets_from_dead_letters(
            uow, hub.catalog, [letter], source_of=lambda t: t.split(".")[2], now=at
        )
        uow.commit()
    return ticket


def _flood(hub: Hub) -> dict[str, list[int]]:
    """Tickets of four incidents: release 5.1.0's rule failure (three tickets in three hours, two
    persons, two municipalities, and one more after a quiet longer than the window), release
    5.2.0's of the same rule, and another source's undecodable messages."""
    ola, kari = synthetic_person(), synthetic_person()
    bad = dict(source=OSLO, code="NIR-SOURCE-002", version="5.1.0")
    return {
        "5.1.0": [
            _fail(hub, T0, person=ola, **bad),
            _fail(hub, T0 + dt.timedelta(hours=1), person=kari, **bad),
            _fail(hub, T0 + dt.timedelta(hours=2), person=ola, municipality="4601", **bad),
        ],
        "5.1.0 later": [_fail(hub, T0 + dt.timedelta(hours=27), person=kari, **bad)],
        "5.2.0": [
            _fail(
                hub,
                T0 + dt.timedelta(hours=1),
                person=ola,
                source=OSLO,
                code="NIR-SOURCE-002",
                version="5.2.0",
            )
        ],
        "undecodable": [
            _fail(hub, T0 + dt.timedelta(hours=3), source=VESTLAND, code="NIR-DECODE-001"),
            _fail(hub, T0 + dt.timedelta(hours=4), source=VESTLAND, code="NIR-DECODE-001"),
        ],
    }


def _shape(incident: Incident) -> tuple[object, ...]:
    return (
        incident.cause.as_tuple(),
        incident.tickets,
        incident.first_seen - T0,
        incident.last_seen - T0,
        incident.municipalities,
        incident.persons,
    )


def _statuses(hub: Hub) -> dict[int, str]:
    with make_session_factory(hub.engine)() as session:
        return {i: s for i, s in session.execute(select(CaseTicket.id, CaseTicket.status))}


def test_failures_of_one_cause_within_the_window_are_one_incident_with_its_counts(database_url: str) -> None:
    hub = pipeline_hub(database_url)
    tickets = _flood(hub)
    h = dt.timedelta(hours=1)
    with hub.unit_of_work() as uow:
        found = uow.incidents.find(window=WINDOW)
        assert uow.session.get_one(CaseTicket, tickets["5.1.0"][0]).fagsystem_version == "5.1.0"
    released = (OSLO, "NIR-SOURCE-002", "TRAINING_CLAIM")
    assert [_shape(i) for i in found] == [  # newest last failure first
        ((*released, "5.1.0"), 1, 27 * h, 27 * h, 1, 1),
        ((VESTLAND, "NIR-DECODE-001", None, None), 2, 3 * h, 4 * h, 0, 0),
        ((*released, "5.1.0"), 3, 0 * h, 2 * h, 2, 2),
        ((*released, "5.2.0"), 1, 1 * h, 1 * h, 1, 1),
    ]
    assert [i.sample_ticket for i in found] == [
        tickets[k][0] for k in ("5.1.0 later", "undecodable", "5.1.0", "5.2.0")
    ]
    # A window longer than the quiet makes the release's failures one incident.
    with hub.unit_of_work() as uow:
        longer = uow.incidents.find(window=dt.timedelta(hours=26), limit=1)
    assert [_shape(i) for i in longer] == [((*released, "5.1.0"), 4, 0 * h, 27 * h, 2, 2)]


def test_resolving_an_incident_closes_exactly_its_tickets_in_batches_each_audited(database_url: str) -> None:
    hub = pipeline_hub(database_url)
    tickets = _flood(hub)
    cause = Cause(OSLO, "NIR-SOURCE-002", "TRAINING_CLAIM", "5.1.0")
    with hub.unit_of_work() as uow:
        # The release has two incidents: one of its tickets chooses.
        incident = find_incident(uow, window=WINDOW, cause=cause, ticket_id=tickets["5.1.0"][1])
    now = T0 + dt.timedelta(days=2)
    batches = list(resolve_incident(hub.unit_of_work, incident, "fixed in 5.1.1", now, username="s", batch=2))
    assert batches == [2, 1]
    statuses = _statuses(hub)
    assert {i: statuses[i] for i in tickets["5.1.0"]} == {i: "resolved" for i in tickets["5.1.0"]}
    others = [i for k, ids in tickets.items() if k != "5.1.0" for i in ids]
    assert {statuses[i] for i in others} == {"open"}
    with make_session_factory(hub.engine)() as session:
        audited = session.execute(select(AuditEntry.ticket_id, AuditEntry.action, AuditEntry.username))
        assert sorted(audited) == [(i, "resolved", "s") for i in sorted(tickets["5.1.0"])]
        note = session.get_one(CaseTicket, tickets["5.1.0"][0]).resolution_note
    assert note == "fixed in 5.1.1"
    with hub.unit_of_work() as uow:
        remaining = uow.incidents.find(window=WINDOW)
    assert [i.sample_ticket for i in remaining] == [
        tickets["5.1.0 later"][0],
        tickets["undecodable"][0],
        tickets["5.2.0"][0],
    ]


def test_hub_cases_incidents_lists_them_and_resolve_incident_closes_one_by_its_cause(
    database_url: str,
) -> None:
    hub = pipeline_hub(database_url)
    tickets = _flood(hub)
    listed = hub_command(hub.settings, "cases", "incidents")
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split()[:4] == ["source", "code", "event", "type"] and len(rows) == 4
    as_json = [
        json.loads(line)
        for line in hub_command(hub.settings, "cases", "incidents", "--json").stdout.splitlines()
    ]
    assert as_json[1] | {"firstSeen": None, "lastSeen": None} == {
        "sourceSystem": VESTLAND,
        "errorCode": "NIR-DECODE-001",
        "eventType": None,
        "fagsystemVersion": None,
        "tickets": 2,
        "firstSeen": None,
        "lastSeen": None,
        "sampleTicket": tickets["undecodable"][0],
        "municipalities": 0,
        "persons": 0,
    }
    # The release's cause has two incidents: it must be chosen by a ticket.
    ambiguous = hub_command(
        hub.settings, "cases", "resolve-incident", "--source", OSLO, "--code", "NIR-SOURCE-002",
        "--event-type", "TRAINING_CLAIM", "--version", "5.1.0", "--note", "n",
    )  # fmt: skip
    assert ambiguous.returncode != 0 and "2 incidents" in ambiguous.stderr
    resolved = hub_command(
        hub.settings, "cases", "resolve-incident", "--source", VESTLAND, "--code", "NIR-DECODE-001",
        "--event-type", "-", "--note", "the vendor's fault, fixed", "--user", "support-1",
    )  # fmt: skip
    assert resolved.returncode == 0, resolved.stderr
    assert "resolved 2 ticket(s)" in resolved.stdout
    statuses = _statuses(hub)
    assert {statuses[i] for i in tickets["undecodable"]} == {"resolved"}
    assert {statuses[i] for k, ids in tickets.items() if k != "undecodable" for i in ids} == {"open"}
    with make_session_factory(hub.engine)() as session:
        audited = session.execute(
            select(AuditEntry.ticket_id, AuditEntry.username, AuditEntry.os_user).where(
                AuditEntry.action == "resolved"
            )
        ).all()
    # Each resolved ticket audited as the command's user, and the OS user it ran as beside it.
    assert sorted(audited) == [(i, "support-1", os_user()) for i in sorted(tickets["undecodable"])]
