"""A ticket's whole story on the support desk: every failure, edit, replay and closing with who,
when and the outcome; edits as differences; the person's register beside the error; the rule's
advice; a close note said once."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from hub.bootstrap import Hub
from hub.config import Settings
from hub.register.database import make_session_factory
from hub.register.models import CaseTicket, User
from hub.schemas.codec import catalog
from hub.sources import SourceRegistry
from hub.support import desk
from hub.support.access import Role, create_user
from hub.support.replay import _mark
from hub.support.scope import Sources
from hub.support.tickets import TicketStatus
from tests.factories import TODAY, event, synthetic_person
from tests.fakes import RecordingPublisher
from tests.integration.test_tickets import encoded, run

NOW = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)


@pytest.fixture
def hub(database_url: str, tmp_path: Path) -> Hub:
    settings = dataclasses.replace(Settings(), database_url=database_url, allow_synthetic_identifiers=True)
    return Hub(settings=settings, registry=SourceRegistry.load(settings.sources_file), catalog=catalog())


def second_start(hub: Hub) -> tuple[RecordingPublisher, dict, int]:  # type: ignore[type-arg]
    """A person whose training started; a second start of it fails (NIR-LIFE-002)."""
    publisher, person = RecordingPublisher(), synthetic_person()
    for offset, (event_type, days_ago) in enumerate(
        (("TRAINING_CLAIM", 40), ("TRAINING_DECISION", 35), ("TRAINING_STARTED", 30))
    ):
        run(
            hub,
            publisher,
            encoded(event(person, event_type, fact_date=TODAY - dt.timedelta(days=days_ago))),
            offset,
        )
    again = event(person, "TRAINING_STARTED", fact_date=TODAY - dt.timedelta(days=5))
    run(hub, publisher, encoded(again), 3)
    with make_session_factory(hub.engine)() as session:
        [ticket] = session.query(CaseTicket).all()
        assert ticket.error_code == "NIR-LIFE-002"
        return publisher, again, ticket.id


def test_the_ticket_shows_the_rule_s_advice_and_the_person_s_register_beside_the_error(hub: Hub) -> None:
    _, _, ticket_id = second_start(hub)
    with hub.unit_of_work() as uow:
        imdi = create_user(uow, "imdi", "a long enough secret", Role.IMDI_SUPPORT, None, NOW)
        shown = desk.view_ticket(uow, hub.catalog, imdi, ticket_id, NOW, sources=Sources.of(hub))
    assert shown["rule"]["title"]["nb"] == "Ingen ny start av et program eller en opplæring som er i gang"
    assert "already running" in shown["rule"]["advice"]["en"] and "i gang" in shown["rule"]["advice"]["nb"]
    register = shown["register"]
    assert register["schemes"]["norwegianAndSocialStudies"]["status"] == "running"
    assert [r["eventType"] for r in register["registrations"]] == [
        "TRAINING_STARTED",
        "TRAINING_DECISION",
        "TRAINING_CLAIM",
    ]
    assert register["on"] == shown["factDate"]  # residence and category on the fact's date


def test_every_failure_edit_replay_and_the_acceptance_are_in_the_story_with_who_and_the_outcome(
    hub: Hub,
) -> None:
    publisher, again, ticket_id = second_start(hub)
    with hub.unit_of_work() as uow:
        oslo = create_user(uow, "oslo", "a long enough secret", Role.MUNICIPALITY_SUPERUSER, "0301", hub.clock())
        fixed = desk.view_ticket(
            uow, hub.catalog, oslo, ticket_id, hub.clock(), sources=Sources.of(hub)
        )["editable"]
        fixed["eventType"] = "TRAINING_ENDED"
        fixed["payload"] = event(synthetic_person(), "TRAINING_ENDED")["payload"]
        desk.edit_as(uow, hub.catalog, oslo, ticket_id, fixed, hub.clock(), sources=Sources.of(hub))
        _mark(uow, ticket_id, TicketStatus.REPLAYED, 1, "oslo", hub.clock())  # as a replay marks it
        uow.commit()
    run(hub, publisher, encoded(again), 4)  # the replayed event failed again
    with hub.unit_of_work() as uow:
        user = uow.session.query(User).filter_by(username="oslo").one()
        desk.settle_as(
            uow,
            user,
            ticket_id,
            TicketStatus.RESOLVED,
            "fixed by phone",
            hub.clock(),
            sources=Sources.of(hub),
        )
        shown = desk.view_ticket(uow, hub.catalog, user, ticket_id, hub.clock(), sources=Sources.of(hub))
        uow.commit()
    story = [(s["what"], s.get("who"), s.get("code")) for s in shown["story"]]
    assert story == [
        ("failed", None, "NIR-LIFE-002"),
        ("edit", "oslo", None),
        ("replay", "oslo", None),
        ("failed", None, "NIR-LIFE-002"),
        ("resolved", "oslo", None),
    ]
    replay = shown["story"][2]
    assert replay["outcome"]["what"] == "failed" and replay["outcome"]["code"] == "NIR-LIFE-002"
    [edit] = shown["edits"]
    paths = {c["path"]: c for c in edit["changes"]}
    assert paths["eventType"] == {
        "path": "eventType",
        "before": "TRAINING_STARTED",
        "after": "TRAINING_ENDED",
    }
    assert "eventId" not in paths  # only what changed
    assert shown["resolution"]["note"] == "fixed by phone"


def test_a_ticket_closed_by_an_accepted_event_says_so_once(hub: Hub) -> None:
    publisher, person = RecordingPublisher(), synthetic_person()
    bad = event(person, municipality="4601")  # NIR-SOURCE-002: Oslo's source, Bergen's municipality
    run(hub, publisher, encoded(bad), 0)
    fixed = {**bad, "municipality": "0301", "eventId": bad["eventId"][:-4] + "ffff"}
    fixed["sentAt"] = (dt.datetime.fromisoformat(bad["sentAt"]) + dt.timedelta(seconds=1)).isoformat()
    run(hub, publisher, encoded(fixed), 1)
    with hub.unit_of_work() as uow:
        ticket = uow.session.query(CaseTicket).one()
        assert (ticket.status, ticket.linked_event_id, ticket.resolution_note) == (
            "resolved",
            fixed["eventId"],
            None,
        )
        imdi = create_user(uow, "imdi", "a long enough secret", Role.IMDI_SUPPORT, None, NOW)
        # A ticket closed before revision 0013 kept the link as its note too: shown once.
        ticket.resolution_note = f"closed by the accepted event {fixed['eventId']}"
        shown = desk.view_ticket(uow, hub.catalog, imdi, ticket.id, NOW, sources=Sources.of(hub))
        uow.audit.record("imdi", "view_ticket", NOW)
    assert shown["resolution"]["note"] is None and shown["resolution"]["linkedEventId"] == fixed["eventId"]
    assert [s["what"] for s in shown["story"]] == ["failed", "accepted"]
    assert shown["story"][1]["eventId"] == fixed["eventId"]
