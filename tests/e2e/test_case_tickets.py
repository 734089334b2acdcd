"""Dead letters become case tickets that support staff fix and replay, on the real broker."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import subprocess
from pathlib import Path
from typing import Any

from sqlalchemy import select

from hub.dev.localrun import LocalBroker
from hub.register.database import make_session_factory
from hub.register.models import AuditEntry, CaseTicket
from hub.support.replay import replay_tickets
from tests.conftest import make_settings
from tests.factories import event, synthetic_person
from tests.harness import HubHarness
from tests.harness import hub_command as run_hub


def hub_command(harness: HubHarness, *args: str) -> subprocess.CompletedProcess[str]:
    return run_hub(harness.settings, *args)


def tickets(harness: HubHarness) -> list[CaseTicket]:
    with make_session_factory(harness.hub.engine)() as session:
        return list(session.scalars(select(CaseTicket).order_by(CaseTicket.id)))


def reversed_period(person: Any) -> dict[str, Any]:
    e = event(person, "ASYLUM_SEEKER_TRAINING_HOURS")
    e["payload"]["periodEnd"] = "2000-01-01"  # before periodStart: NIR-DATE-003
    return e


def test_a_rejected_event_fixed_by_edit_and_replay_is_registered_once_and_its_ticket_closes(
    harness: HubHarness, tmp_path: Path
) -> None:
    bad = reversed_period(synthetic_person())
    harness.start_worker()
    harness.publish([bad])
    harness.wait_until(lambda: len(tickets(harness)) == 1, timeout=60, what="the ticket")
    [ticket] = tickets(harness)
    assert (ticket.status, ticket.error_code, ticket.event_id) == ("open", "NIR-DATE-003", bad["eventId"])
    assert (ticket.duf_number, ticket.source_system, ticket.municipality) == (
        bad["person"]["dufNumber"],
        "oslo-fagsystem",
        "0301",
    )

    # Replayed unchanged, it fails again: the same ticket, reopened with a second attempt.
    replayed = hub_command(harness, "cases", "replay", str(ticket.id))
    assert replayed.returncode == 0, replayed.stderr
    harness.wait_until(lambda: tickets(harness)[0].attempts == 2, timeout=60, what="the second failure")
    assert [t.status for t in tickets(harness)] == ["open"]

    shown = json.loads(hub_command(harness, "cases", "show", str(ticket.id), "--reason", "test").stdout)
    fixed = shown["event"]
    fixed["payload"]["periodEnd"] = fixed["payload"]["periodStart"]
    edit = tmp_path / "fixed.json"
    edit.write_text(json.dumps(fixed))
    result = hub_command(
        harness, "cases", "replay", str(ticket.id), "--edit", str(edit), "--user", "support-1"
    )
    assert result.returncode == 0, result.stderr
    harness.wait_until(
        lambda: tickets(harness)[0].status == "resolved", timeout=60, what="the ticket to close"
    )

    [row] = harness.registrations()
    assert row.event_id == bad["eventId"] and row.payload["periodEnd"] == fixed["payload"]["periodStart"]
    [closed] = tickets(harness)
    assert closed.linked_event_id == bad["eventId"] and closed.replays == 2
    shown = json.loads(hub_command(harness, "cases", "show", str(ticket.id), "--reason", "test").stdout)
    assert shown["event"]["payload"]["periodEnd"] == "2000-01-01"  # the original is kept
    assert [e["editedBy"] for e in shown["edits"]] == ["support-1"]
    with make_session_factory(harness.hub.engine)() as session:
        audited = [
            (a.username, a.action) for a in session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        ]
    assert ("support-1", "edit") in audited and ("support-1", "replay") in audited
    assert [action for _, action in audited].count("view_ticket") == 2  # every view of personal data
    listed = hub_command(harness, "cases", "list", "--status", "resolved", "--reason", "test")
    duf_number = bad["person"]["dufNumber"]
    assert "…" + duf_number[-4:] in listed.stdout  # masked to its last digits: issue 30
    assert duf_number not in listed.stdout and bad["person"]["nationalId"] not in listed.stdout


def test_an_edit_that_breaks_the_contract_is_refused_before_anything_is_sent(
    harness: HubHarness, tmp_path: Path
) -> None:
    bad = reversed_period(synthetic_person())
    harness.start_worker()
    harness.publish([bad])
    harness.wait_until(lambda: len(tickets(harness)) == 1, timeout=60, what="the ticket")
    edit = tmp_path / "broken.json"
    edit.write_text(json.dumps({**bad, "factDate": "not a date"}))
    result = hub_command(harness, "cases", "replay", str(tickets(harness)[0].id), "--edit", str(edit))
    assert result.returncode == 2
    assert "factDate: must be a date written YYYY-MM-DD" in result.stderr
    assert tickets(harness)[0].replays == 0


def test_a_ticket_closes_by_itself_when_the_source_sends_a_corrected_event(harness: HubHarness) -> None:
    person = synthetic_person()
    bad = reversed_period(person)
    harness.start_worker()
    harness.publish([bad])
    harness.wait_until(lambda: len(tickets(harness)) == 1, timeout=60, what="the ticket")
    corrected = event(
        person,
        "ASYLUM_SEEKER_TRAINING_HOURS",
        fact_date=dt.date.fromisoformat(bad["factDate"]),
    )
    harness.publish([corrected])
    harness.wait_until(
        lambda: tickets(harness)[0].status == "resolved", timeout=60, what="the ticket to close"
    )
    assert tickets(harness)[0].linked_event_id == corrected["eventId"]


def test_a_bulk_replay_of_a_thousand_tickets_registers_every_event_once(
    kafka_broker: LocalBroker, sqlite_url: str, tmp_path: Path
) -> None:
    # The registry lacked a municipality the source serves: a thousand events were rejected.
    narrow = tmp_path / "narrow.toml"
    narrow.write_text('[sources.oslo-fagsystem]\nmunicipalities = ["0301"]\n')
    wide = tmp_path / "wide.toml"
    wide.write_text('[sources.oslo-fagsystem]\nmunicipalities = ["0301", "3401"]\n')
    settings = dataclasses.replace(
        make_settings(kafka_broker, sqlite_url, tmp_path), sources_file=str(narrow)
    )
    harness = HubHarness(settings, tmp_path)
    try:
        events = [event(synthetic_person(), "TRAINING_CLAIM", municipality="3401") for _ in range(1000)]
        harness.start_worker()
        harness.publish(events)
        harness.wait_until(lambda: len(tickets(harness)) == 1000, timeout=240, what="a thousand tickets")
        assert {t.error_code for t in tickets(harness)} == {"NIR-SOURCE-002"}
        harness.stop_all()

        fixed = dataclasses.replace(settings, sources_file=str(wide))
        harness.settings = fixed
        harness.start_worker()
        dry = hub_command(harness, "cases", "replay", "--code", "NIR-SOURCE-002", "--dry-run")
        assert dry.returncode == 0 and "would replay 1000, skipped 0" in dry.stdout
        assert {t.status for t in tickets(harness)} == {"open"}
        from hub.bootstrap import Hub

        hub = Hub.from_settings(fixed)
        report = asyncio.run(replay_tickets(hub, [t.id for t in tickets(harness)], per_second=2000))
        assert len(report.replayed) == 1000
        harness.wait_until(
            lambda: {t.status for t in tickets(harness)} == {"resolved"},
            timeout=240,
            what="every ticket to close",
        )
        rows = harness.registrations()
        assert sorted(r.event_id for r in rows) == sorted(e["eventId"] for e in events)
    finally:
        harness.stop_all()
