"""Case tickets against a real SQLite register: opening, attaching, closing and settling."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from hub.bootstrap import Hub
from hub.config import Settings
from hub.domain.events import Origin
from hub.domain.transfer import Message
from hub.errors import DecodeError
from hub.register.database import make_session_factory
from hub.register.models import CaseTicket, TicketOutcome
from hub.schemas.codec import REGISTRATION, catalog
from hub.schemas.contract import from_json
from hub.sources import SourceRegistry
from hub.support import desk
from hub.support.tickets import TicketError, TicketStatus, describe_ticket, file_manual_case, settle
from hub.wiring import dead_letter_flow, registration_flow
from tests.factories import event, synthetic_person
from tests.fakes import RecordingPublisher
from tests.harness import hub_command

TOPIC = "nir.source.oslo-fagsystem.registrations"


@pytest.fixture
def hub(sqlite_url: str, tmp_path: Path) -> Hub:
    settings = dataclasses.replace(Settings(), database_url=sqlite_url, allow_synthetic_identifiers=True)
    return Hub(settings=settings, registry=SourceRegistry.load(settings.sources_file), catalog=catalog())


def run(hub: Hub, publisher: RecordingPublisher, value: bytes, offset: int) -> None:
    """Process a registration, then hand every new dead letter to the ticket flow."""
    before = len(publisher.on("nir.dead-letters"))
    asyncio.run(registration_flow(hub, publisher).process(Message(Origin(TOPIC, 0, offset), b"k", value)))
    for n, (_, key, letter, headers) in enumerate(publisher.on("nir.dead-letters")[before:], start=before):
        raw = tuple((k, v.encode()) for k, v in headers.items())
        asyncio.run(
            dead_letter_flow(hub, publisher).process(
                Message(Origin("nir.dead-letters", 0, n), key, letter, raw)
            )
        )


def all_tickets(hub: Hub) -> list[CaseTicket]:
    with make_session_factory(hub.engine)() as session:
        return list(session.scalars(select(CaseTicket).order_by(CaseTicket.id)))


def encoded(e: dict) -> bytes:  # type: ignore[type-arg]
    return catalog().encode(REGISTRATION, from_json(e))


def test_failures_of_one_event_attach_to_one_ticket_and_a_redelivered_dead_letter_is_not_counted_twice(
    hub: Hub,
) -> None:
    publisher = RecordingPublisher()
    bad = event(synthetic_person(), municipality="4601")
    run(hub, publisher, encoded(bad), 0)
    run(hub, publisher, encoded(bad), 1)  # sent again, fails again
    [ticket] = all_tickets(hub)
    assert (ticket.attempts, ticket.error_code, ticket.original_offset) == (2, "NIR-SOURCE-002", 0)
    _, key, letter, headers = publisher.on("nir.dead-letters")[1]
    raw = tuple((k, v.encode()) for k, v in headers.items())
    asyncio.run(
        dead_letter_flow(hub, publisher).process(Message(Origin("nir.dead-letters", 0, 1), key, letter, raw))
    )
    assert all_tickets(hub)[0].attempts == 2


def test_the_same_message_failing_again_after_a_crash_or_a_recovery_is_one_failure_of_its_ticket(
    hub: Hub,
) -> None:
    publisher = RecordingPublisher()
    bad = event(synthetic_person(), municipality="4601")
    run(hub, publisher, encoded(bad), 0)
    run(hub, publisher, encoded(bad), 0)  # the very message decided again: a second dead letter
    assert len(publisher.on("nir.dead-letters")) == 2
    [ticket] = all_tickets(hub)
    assert (ticket.attempts, ticket.status, ticket.original_offset) == (1, "open", 0)
    with make_session_factory(hub.engine)() as session:
        assert len(list(session.scalars(select(TicketOutcome)))) == 1


def test_an_undecodable_message_gets_a_ticket_by_where_it_was_read(hub: Hub) -> None:
    publisher = RecordingPublisher()
    run(hub, publisher, b"garbage", 7)
    [ticket] = all_tickets(hub)
    assert (ticket.event_id, ticket.error_class, ticket.original_offset) == (None, "decode", 7)
    assert ticket.source_system == "oslo-fagsystem" and ticket.original_value == b"garbage"


def test_a_ticket_whose_fix_was_accepted_before_the_dead_letter_was_read_opens_closed(hub: Hub) -> None:
    publisher = RecordingPublisher()
    person = synthetic_person()
    bad = event(person, "TRAINING_CLAIM")
    bad["payload"] = {"claimedWithinDeadline": True}
    bad["municipality"] = "4601"
    asyncio.run(registration_flow(hub, publisher).process(Message(Origin(TOPIC, 0, 0), b"k", encoded(bad))))
    fix = event(person, "TRAINING_CLAIM")
    asyncio.run(registration_flow(hub, publisher).process(Message(Origin(TOPIC, 0, 1), b"k", encoded(fix))))
    _, key, letter, headers = publisher.on("nir.dead-letters")[0]
    raw = tuple((k, v.encode()) for k, v in headers.items())
    asyncio.run(
        dead_letter_flow(hub, publisher).process(Message(Origin("nir.dead-letters", 0, 0), key, letter, raw))
    )
    [ticket] = all_tickets(hub)
    assert (ticket.status, ticket.linked_event_id) == ("resolved", fix["eventId"])


def test_support_can_file_resolve_and_discard_cases_but_not_twice(hub: Hub) -> None:
    now = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
    with hub.unit_of_work() as uow:
        ticket = file_manual_case(
            uow,
            duf_number="201812345604",
            description="Wrong start date",
            municipality="0301",
            now=now,
        )
        uow.commit()
    with hub.unit_of_work() as uow:
        with pytest.raises(TicketError, match="note"):
            settle(uow, ticket.id, TicketStatus.RESOLVED, " ", now, username="s1")
        settle(uow, ticket.id, TicketStatus.DISCARDED, "duplicate of case 12", now, username="s1")
        uow.commit()
    with hub.unit_of_work() as uow:
        with pytest.raises(TicketError, match="discarded already"):
            settle(uow, ticket.id, TicketStatus.RESOLVED, "again", now, username="s1")
        shown = describe_ticket(uow, catalog(), uow.session.get_one(CaseTicket, ticket.id))
    assert (shown["kind"], shown["dufNumber"], shown["status"]) == ("manual", "201812345604", "discarded")


def test_a_listed_ticket_masks_the_national_id_and_shows_the_duf_number(hub: Hub) -> None:
    publisher = RecordingPublisher()
    person = synthetic_person()
    run(hub, publisher, encoded(event(person, municipality="4601")), 0)
    with hub.unit_of_work() as uow:
        listed = describe_ticket(uow, catalog(), all_tickets(hub)[0])
        revealed = describe_ticket(uow, catalog(), all_tickets(hub)[0], reveal=True)
    assert listed["dufNumber"] == person.duf_number
    assert person.national_id not in str(listed) and listed["event"] is None
    assert revealed["event"]["person"]["nationalId"] == person.national_id


def test_an_earlier_event_accepted_late_does_not_close_the_ticket_of_a_later_failure(hub: Hub) -> None:
    """Issue 15, fault 7: matching only checked that the other event was accepted after the
    failed one was sent, so an earlier, unrelated event closed the ticket."""
    publisher = RecordingPublisher()
    person = synthetic_person()
    now = dt.datetime.now(dt.UTC)
    bad = {
        **event(person, "TRAINING_CLAIM", municipality="4601"),
        "sentAt": (now - dt.timedelta(minutes=30)).isoformat(),
    }
    earlier = {**event(person, "TRAINING_CLAIM"), "sentAt": (now - dt.timedelta(minutes=60)).isoformat()}
    asyncio.run(registration_flow(hub, publisher).process(Message(Origin(TOPIC, 0, 0), b"k", encoded(bad))))
    asyncio.run(
        registration_flow(hub, publisher).process(Message(Origin(TOPIC, 0, 1), b"k", encoded(earlier)))
    )
    _, key, letter, headers = publisher.on("nir.dead-letters")[0]
    raw = tuple((k, v.encode()) for k, v in headers.items())
    asyncio.run(
        dead_letter_flow(hub, publisher).process(Message(Origin("nir.dead-letters", 0, 0), key, letter, raw))
    )
    [ticket] = all_tickets(hub)
    assert (ticket.status, ticket.linked_event_id) == ("open", None)


def test_an_open_ticket_is_closed_by_the_fix_sent_after_it(hub: Hub) -> None:
    """The decision core compares the fix's sentAt with the failed event's, kept on the ticket:
    on SQLite that one comes back without its zone (a naive datetime), which must not break it."""
    publisher = RecordingPublisher()
    person = synthetic_person()
    run(hub, publisher, encoded(event(person, "TRAINING_CLAIM", municipality="4601")), 0)
    [ticket] = all_tickets(hub)
    assert ticket.status == "open" and ticket.sent_at is not None
    fix = event(person, "TRAINING_CLAIM")
    run(hub, publisher, encoded(fix), 1)
    [ticket] = all_tickets(hub)
    assert (ticket.status, ticket.linked_event_id) == ("resolved", fix["eventId"])


def test_the_register_figures_the_workers_export_come_from_the_register_alone(hub: Hub) -> None:
    """Open tickets, the oldest open one and replays are read from the register, so every worker
    exports the same figures and a replay sent by `hub cases replay` counts like the page's."""
    from hub.ops.observability import _register_figures

    now = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
    hub = dataclasses.replace(hub, clock=lambda: now)
    with hub.unit_of_work() as uow:
        for days, status in ((10, TicketStatus.RESOLVED), (3, TicketStatus.REPLAYED), (1, TicketStatus.OPEN)):
            ticket = file_manual_case(
                uow,
                duf_number="201812345604",
                description="x",
                municipality="0301",
                now=now - dt.timedelta(days=days),
            )
            ticket.status, ticket.replays = status.value, 2
        uow.audit.record("kari", "replay_failed", now, ticket_id=ticket.id)
        uow.commit()

    figures = _register_figures(hub)
    assert figures.open_tickets == {"-": 2}  # open and replayed; no error code on a filed case
    assert figures.oldest_open_ticket_age == dt.timedelta(days=3).total_seconds()  # not the resolved one
    assert figures.replays == {"sent": 6, "failed": 1}


def test_hub_cases_list_has_a_header_a_stable_order_json_and_a_limit_that_says_when_more_exist(
    hub: Hub,
) -> None:
    earlier, later = dt.datetime(2026, 11, 25, tzinfo=dt.UTC), dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
    with hub.unit_of_work() as uow:
        for duf_number, failed_at in (
            ("201812345604", later),
            ("201812345612", earlier),
            ("201812345620", later),
        ):
            file_manual_case(
                uow, duf_number=duf_number, description="by hand", municipality="0301", now=failed_at
            )
        uow.commit()
    ids = [t.id for t in all_tickets(hub)]
    # Newest failure first; the two that failed at the same time, newest ticket first.
    newest_first = [ids[2], ids[0], ids[1]]

    listed = hub_command(hub.settings, "cases", "list", "--reason", "test")
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == [
        "ticket",
        "status",
        "code",
        "source",
        "municipality",
        "event",
        "type",
        "DUF",
        "number",
        "attempts",
    ]
    assert [int(row.split()[0]) for row in rows] == newest_first
    assert "…5604" in rows[1] and "201812345604" not in listed.stdout and listed.stderr == ""

    as_json = hub_command(hub.settings, "cases", "list", "--json", "--reason", "test")
    assert [json.loads(line)["id"] for line in as_json.stdout.splitlines()] == newest_first

    limited = hub_command(hub.settings, "cases", "list", "--limit", "2", "--reason", "test")
    assert [int(row.split()[0]) for row in limited.stdout.splitlines()[1:]] == newest_first[:2]
    assert "only the first 2 tickets are shown; there are more (--limit)" in limited.stderr
    exact = hub_command(hub.settings, "cases", "list", "--limit", "3", "--reason", "test")
    assert exact.stderr == ""


def test_a_ticket_keeps_why_its_event_failed_in_norwegian_as_well(hub: Hub) -> None:
    """The support page speaks Norwegian by default: a rule's Norwegian message travels on the
    dead letter to the ticket and its story; a failure without one gives its Norwegian title."""
    publisher = RecordingPublisher()
    run(hub, publisher, encoded(event(synthetic_person(), municipality="4601")), 0)
    run(hub, publisher, b"garbage", 1)
    rejected, undecodable = all_tickets(hub)
    assert rejected.error_message and rejected.error_message.startswith("NIR-SOURCE-002: ")
    assert rejected.error_message_nb and rejected.error_message_nb.startswith("NIR-SOURCE-002: ")
    assert rejected.error_message_nb != rejected.error_message
    assert undecodable.error_message_nb == DecodeError.title_nb
    with hub.unit_of_work() as uow:
        [failed] = desk.ticket_story(uow, rejected)
        assert failed["messageNb"] == rejected.error_message_nb
