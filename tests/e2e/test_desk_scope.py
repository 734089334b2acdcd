"""Least privilege on the support desk, end to end: events posted through the gateway to the real
broker, the worker's dead letters made tickets, on SQLite and on PostgreSQL.

A ticket belongs to the source whose topic its event came on, whatever the event claims; a
municipality user replays only what their municipality and their sources may send; and a
municipality user sees of the register only what their municipality registered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from hub.dev.localrun import LocalBroker
from hub.register.database import make_session_factory
from hub.register.models import AuditEntry, CaseTicket, User
from hub.register.unit_of_work import UnitOfWork
from hub.schemas.contract import ContractError
from hub.support import desk
from hub.support.access import NoSuchTicket, Role, create_user
from hub.support.replay import OUT_OF_SCOPE, replay_tickets
from hub.support.scope import OutOfScope, Scope, Sources
from hub.support.tickets import TicketFilter
from tests.factories import event, synthetic_person
from tests.gateway import SOURCE_A, SOURCE_B, GatewayUnderTest, gateway_harness, gateway_under_test
from tests.harness import HubHarness

SECRET = "a long enough secret"
OSLO, BERGEN = "0301", "4601"  # SOURCE_A reports for Oslo, SOURCE_B for Bergen (tests.gateway)


@pytest.fixture
def harness(kafka_broker: LocalBroker, database_url: str, tmp_path: Path) -> Iterator[HubHarness]:
    with gateway_harness(kafka_broker, database_url, tmp_path) as h:
        yield h


@pytest.fixture
def gateway(harness: HubHarness, tmp_path: Path) -> Iterator[GatewayUnderTest]:
    with gateway_under_test(
        harness.settings, tmp_path, gateway_rate_per_second=1000.0, gateway_rate_burst=1000
    ) as under_test:
        yield under_test.start()


def users(harness: HubHarness) -> None:
    with harness.hub.unit_of_work() as uow:
        now = harness.hub.clock()
        create_user(uow, "oslo", SECRET, Role.MUNICIPALITY_SUPERUSER, OSLO, now)
        create_user(uow, "bergen", SECRET, Role.MUNICIPALITY_SUPERUSER, BERGEN, now)
        create_user(uow, "imdi", SECRET, Role.IMDI_SUPPORT, None, now)
        uow.commit()


def user(uow: UnitOfWork, username: str) -> User:
    return uow.session.scalars(select(User).where(User.username == username)).one()


def post(gateway: GatewayUnderTest, source: str, body: dict[str, Any]) -> None:
    posted = gateway.call("POST", "/v1/events", token=gateway.granted_token(source), body={"events": [body]})
    assert posted.status == 202, posted


def ticket_of(harness: HubHarness, event_id: str) -> CaseTicket:
    def found() -> CaseTicket | None:
        with make_session_factory(harness.hub.engine)() as session:
            return session.scalars(select(CaseTicket).where(CaseTicket.event_id == event_id)).one_or_none()

    harness.wait_until(lambda: found() is not None, timeout=90, what=f"the ticket of {event_id}")
    ticket = found()
    assert ticket is not None
    return ticket


def listed(harness: HubHarness, username: str) -> list[int]:
    with harness.hub.unit_of_work() as uow:
        shown = desk.ticket_list(
            uow,
            harness.hub.catalog,
            user(uow, username),
            TicketFilter(),
            sources=Sources.of(harness.hub),
        )
        return [t["id"] for t in shown]


def replay_as(harness: HubHarness, username: str, ticket_id: int) -> Any:
    with harness.hub.unit_of_work() as uow:
        scope = Scope.of(user(uow, username), Sources.of(harness.hub))
    return asyncio.run(replay_tickets(harness.hub, [ticket_id], user=username, scope=scope))


def test_a_ticket_lands_in_the_queue_of_the_source_that_sent_it_and_its_users_replay_only_within_their_scope(
    harness: HubHarness, gateway: GatewayUnderTest
) -> None:
    harness.start_worker()
    users(harness)
    sources = Sources.of(harness.hub)
    # Oslo's source posts an event that claims Bergen's municipality: the worker refuses it.
    planted = event(synthetic_person(), source=SOURCE_A, municipality=BERGEN)
    post(gateway, SOURCE_A, planted)
    # Bergen's source posts one that fails too (a period that ends before it starts).
    bergens = event(synthetic_person(), "ASYLUM_SEEKER_TRAINING_HOURS", source=SOURCE_B, municipality=BERGEN)
    bergens["payload"]["periodEnd"] = "2000-01-01"
    post(gateway, SOURCE_B, bergens)
    ticket, bergen_ticket = ticket_of(harness, planted["eventId"]), ticket_of(harness, bergens["eventId"])
    assert ticket.error_code == "NIR-SOURCE-002"
    assert ticket.municipality == BERGEN  # what the event claims, shown, and trusted for nothing

    # The ticket is in Oslo's queue, not Bergen's; Bergen cannot open it either.
    assert listed(harness, "oslo") == [ticket.id]
    assert listed(harness, "bergen") == [bergen_ticket.id]
    assert set(listed(harness, "imdi")) == {ticket.id, bergen_ticket.id}
    with harness.hub.unit_of_work() as uow, pytest.raises(NoSuchTicket):
        desk.view_ticket(
            uow,
            harness.hub.catalog,
            user(uow, "bergen"),
            ticket.id,
            harness.hub.clock(),
            sources=sources,
        )

    # Oslo's user may not send the event as it is (for Bergen), nor keep an edit that still is,
    # nor make it another source's.
    refused = replay_as(harness, "oslo", ticket.id)
    assert refused.replayed == [] and refused.skipped[ticket.id].skipped == OUT_OF_SCOPE
    assert refused.skipped[ticket.id].why == "scope.municipality"
    with harness.hub.unit_of_work() as uow:
        oslo = user(uow, "oslo")
        shown = desk.view_ticket(
            uow, harness.hub.catalog, oslo, ticket.id, harness.hub.clock(), sources=sources
        )
        assert shown["sender"] == SOURCE_A
        draft = shown["editable"]
        with pytest.raises(OutOfScope):
            desk.edit_as(
                uow,
                harness.hub.catalog,
                oslo,
                ticket.id,
                {**draft, "fagsystemVersion": "2"},
                harness.hub.clock(),
                sources=sources,
            )
        with pytest.raises(ContractError, match="sourceSystem"):
            desk.edit_as(
                uow,
                harness.hub.catalog,
                oslo,
                ticket.id,
                {**draft, "sourceSystem": SOURCE_B, "municipality": OSLO},
                harness.hub.clock(),
                sources=sources,
            )
    # Bergen's ticket is another source's: Oslo's user cannot replay it.
    other = replay_as(harness, "oslo", bergen_ticket.id)
    assert other.replayed == [] and other.skipped[bergen_ticket.id].why == "scope.source"

    # An edit IMDi kept (IMDi may edit anything) is checked again when Oslo's user replays it.
    with harness.hub.unit_of_work() as uow:
        desk.edit_as(
            uow,
            harness.hub.catalog,
            user(uow, "imdi"),
            ticket.id,
            {**draft, "fagsystemVersion": "imdi"},
            harness.hub.clock(),
            sources=sources,
        )
        uow.commit()
    assert replay_as(harness, "oslo", ticket.id).skipped[ticket.id].why == "scope.municipality"
    with make_session_factory(harness.hub.engine)() as session:
        refusals = session.scalars(select(AuditEntry).where(AuditEntry.action == "out_of_scope")).all()
        assert [(a.username, a.ticket_id) for a in refusals] == [
            ("oslo", ticket.id),
            ("oslo", bergen_ticket.id),
            ("oslo", ticket.id),
        ]
        assert all(planted["person"]["nationalId"] not in (a.detail or "") for a in refusals)

    # For Oslo, it is kept and sent, and the worker accepts it.
    with harness.hub.unit_of_work() as uow:
        desk.edit_as(
            uow,
            harness.hub.catalog,
            user(uow, "oslo"),
            ticket.id,
            {**draft, "municipality": OSLO},
            harness.hub.clock(),
            sources=sources,
        )
        uow.commit()
    assert replay_as(harness, "oslo", ticket.id).replayed == [ticket.id]
    harness.wait_until(
        lambda: ticket_of(harness, planted["eventId"]).status == "resolved", timeout=90, what="the acceptance"
    )
    assert [(r.municipality, r.source_system) for r in harness.registrations()] == [(OSLO, SOURCE_A)]


def test_a_municipality_user_filing_a_case_sees_none_of_another_municipality_s_registrations(
    harness: HubHarness, gateway: GatewayUnderTest
) -> None:
    harness.start_worker()
    users(harness)
    sources = Sources.of(harness.hub)
    person = synthetic_person()
    registered = event(person, source=SOURCE_B, municipality=BERGEN)  # registered only by Bergen
    post(gateway, SOURCE_B, registered)
    harness.wait_until(lambda: harness.registration_count() == 1, timeout=90, what="the registration")

    shown: dict[str, Any] = {}
    with harness.hub.unit_of_work() as uow:
        now = harness.hub.clock()
        for username in ("oslo", "bergen", "imdi"):
            filer = user(uow, username)
            case = desk.file_case_as(
                uow,
                filer,
                duf_number=person.duf_number,
                description="the person called",
                municipality=None,
                now=now,
            )
            shown[username] = desk.view_ticket(uow, harness.hub.catalog, filer, case.id, now, sources=sources)
        uow.commit()
    assert shown["oslo"]["register"] == {"hidden": True}  # not a registration, not a number, nothing
    assert person.national_id not in repr(shown["oslo"]["register"])
    assert [r["eventId"] for r in shown["bergen"]["register"]["registrations"]] == [registered["eventId"]]
    assert [r["eventId"] for r in shown["imdi"]["register"]["registrations"]] == [registered["eventId"]]
    with make_session_factory(harness.hub.engine)() as session:
        views = session.scalars(select(AuditEntry.username).where(AuditEntry.action == "view_ticket")).all()
        assert sorted(views) == ["bergen", "imdi", "oslo"]
