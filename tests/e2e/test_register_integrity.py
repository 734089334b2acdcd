"""The register's integrity (issue 27) end to end, on the real broker, SQLite and PostgreSQL: an
identity conflict opens its own ticket, IMDi merges the two records from it and the event is then
registered, and a split undoes the merge; another municipality's annulment is refused with its
own code until IMDi approves it; an annulled registration is restored by a correction, and
`hub person show` tells the story.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from typing import Any

from sqlalchemy import select

from hub.register.database import make_session_factory
from hub.register.models import AuditEntry, Base, CaseTicket, PersonIdentifier
from tests.factories import Person, event, synthetic_person
from tests.harness import HubHarness
from tests.harness import hub_command as run_hub

BERGEN = "vestland-fagsystem"


def hub_command(
    harness: HubHarness, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return run_hub(harness.settings, *args, stdin=stdin)


def tickets(harness: HubHarness) -> list[CaseTicket]:
    with make_session_factory(harness.hub.engine)() as session:
        return list(session.scalars(select(CaseTicket).order_by(CaseTicket.id)))


def persons(harness: HubHarness) -> set[frozenset[str]]:
    with make_session_factory(harness.hub.engine)() as session:
        found: dict[int, set[str]] = {}
        for i in session.scalars(select(PersonIdentifier)):
            found.setdefault(i.person_id, set()).add(i.value)
    return {frozenset(n) for n in found.values()}


def tables(harness: HubHarness) -> dict[str, list[tuple[str, ...]]]:
    """The rows of every table of the register but the merges' and the audit log, column by column;
    and but the running worker's marks of the batch it is in (`unfinished_work`, its crash guard's
    bookkeeping, there or not by the moment the test looks: no one's records)."""
    history = {"person_merges", "person_merge_moves", "audit_log", "unfinished_work"}
    with make_session_factory(harness.hub.engine)() as session:
        return {
            t.name: sorted(tuple(str(v) for v in row) for row in session.execute(select(t)).all())
            for t in Base.metadata.sorted_tables
            if t.name not in history
        }


def outcome_of(harness: HubHarness, event_id: str, count: int) -> dict[str, Any]:
    receipts, _ = harness.wait_for_receipts(count)
    return next(r for r in reversed(receipts) if str(r["eventId"]) == event_id)


# When the test's fagsystem began sending: an hour ago, after every fact of these stories.
FIRST_SENT = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)


def at(e: dict[str, Any], minutes: int) -> dict[str, Any]:
    """The event as the fagsystem sent it `minutes` after the first of this test."""
    return {**e, "sentAt": (FIRST_SENT + dt.timedelta(minutes=minutes)).isoformat()}


def test_an_identity_conflict_is_refused_imdi_merges_from_its_ticket_and_a_split_undoes_it(
    harness: HubHarness,
) -> None:
    one, two = synthetic_person(), synthetic_person()
    harness.start_worker()
    harness.publish([event(one), event(two)])
    harness.wait_for_receipts(2)

    # A merge followed at once by its split gives back the register, column by column.
    before = tables(harness)
    merged = hub_command(
        harness,
        "person",
        "merge",
        "--reason",
        "a trial",
        "--user",
        "imdi-1",
        stdin=f"{one.duf_number}\n{two.duf_number}\n",
    )
    assert merged.returncode == 0, merged.stderr
    assert len(persons(harness)) == 1
    split = hub_command(
        harness, "person", "split", "--reason", "not one", "--user", "imdi-1", stdin=one.duf_number
    )
    assert split.returncode == 0, split.stderr
    assert tables(harness) == before

    mixed = event(Person(one.national_id, two.duf_number), "TRAINING_DECISION")
    harness.publish([mixed])
    receipt = outcome_of(harness, mixed["eventId"], 3)
    assert receipt["outcome"] == "REJECTED" and [v["code"] for v in receipt["violations"]] == ["NIR-ID-005"]
    harness.wait_until(lambda: len(tickets(harness)) == 1, timeout=60, what="the conflict's ticket")
    [ticket] = tickets(harness)
    assert (ticket.kind, ticket.error_code) == ("identity_conflict", "NIR-ID-005")
    assert persons(harness) == {
        frozenset({one.national_id, one.duf_number}),
        frozenset({two.national_id, two.duf_number}),
    }
    shown = json.loads(hub_command(harness, "cases", "show", str(ticket.id), "--reason", "test").stdout)
    side_by_side = [{i["value"] for i in p["identifiers"]} for p in shown["identity"]["persons"]]
    assert side_by_side == [{one.national_id, one.duf_number}, {two.national_id, two.duf_number}]

    merged = hub_command(
        harness,
        "person",
        "merge",
        "--reason",
        "UDI confirms one person",
        "--ticket",
        str(ticket.id),
        "--user",
        "imdi-1",
        stdin=f"{one.national_id}\n{two.duf_number}\n",
    )
    assert merged.returncode == 0, merged.stderr
    harness.wait_until(
        lambda: tickets(harness)[0].status == "resolved", timeout=60, what="the replayed event"
    )
    assert persons(harness) == {frozenset({one.national_id, one.duf_number, two.national_id, two.duf_number})}
    assert mixed["eventId"] in {r.event_id for r in harness.registrations()}

    # The replayed event named numbers of both: the split asks where it goes.
    refused = hub_command(harness, "person", "split", "--reason", "two after all", stdin=one.duf_number)
    assert refused.returncode == 2 and mixed["eventId"] in refused.stderr
    split = hub_command(
        harness,
        "person",
        "split",
        "--reason",
        "two after all",
        "--mixed-to",
        "keeper",
        "--user",
        "imdi-1",
        stdin=one.duf_number,
    )
    assert split.returncode == 0, split.stderr
    assert persons(harness) == {
        frozenset({one.national_id, one.duf_number}),
        frozenset({two.national_id, two.duf_number}),
    }
    shown = json.loads(
        hub_command(harness, "person", "show", "--json", "--reason", "test", stdin=one.duf_number).stdout
    )
    assert [(m["mergedBy"], m["splitBy"]) for m in shown["merges"]] == [
        ("imdi-1", "imdi-1"),
        ("imdi-1", "imdi-1"),
    ]
    with make_session_factory(harness.hub.engine)() as session:
        actions = [a.action for a in session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert actions.count("merge_persons") == 2 and actions.count("split_persons") == 2


def test_another_municipalitys_annulment_is_refused_until_imdi_approves_it(harness: HubHarness) -> None:
    person = synthetic_person()
    claim = at(event(person, fact_date=dt.date.today() - dt.timedelta(days=20)), 0)
    decision = at(event(person, "TRAINING_DECISION"), 1)
    harness.start_worker()
    harness.publish([claim, decision])
    harness.wait_for_receipts(2)
    annulment = at(
        {
            **event(person, "TRAINING_DECISION", source=BERGEN, municipality="4601"),
            "action": "ANNUL",
            "correctsEventId": decision["eventId"],
        },
        2,
    )
    harness.publish([annulment])
    receipt = outcome_of(harness, annulment["eventId"], 3)
    assert receipt["outcome"] == "REJECTED" and [v["code"] for v in receipt["violations"]] == ["NIR-CORR-004"]
    harness.wait_until(lambda: len(tickets(harness)) == 1, timeout=60, what="the ticket")
    [ticket] = tickets(harness)
    assert (ticket.municipality, ticket.source_system) == ("4601", BERGEN)

    approved = hub_command(
        harness, "cases", "approve", str(ticket.id), "--note", "Oslo asked us to", "--user", "imdi-1"
    )
    assert approved.returncode == 0, approved.stderr
    harness.wait_until(
        lambda: tickets(harness)[0].status == "resolved", timeout=60, what="the approved annulment"
    )
    shown = json.loads(
        hub_command(harness, "person", "show", "--json", "--reason", "test", stdin=person.duf_number).stdout
    )
    assert [f["eventType"] for f in shown["facts"]] == ["TRAINING_CLAIM"]
    [chain] = shown["chains"]
    assert [(v["sourceSystem"], v["effect"]) for v in chain["versions"]] == [
        ("oslo-fagsystem", "original"),
        (BERGEN, "annulled"),
    ]


def test_an_annulled_final_test_is_restored_by_a_correction_and_person_show_tells_the_chain(
    harness: HubHarness,
) -> None:
    person = synthetic_person()
    today = dt.date.today()
    story = [
        at(event(person, "TRAINING_CLAIM", fact_date=today - dt.timedelta(days=40)), 0),
        at(event(person, "TRAINING_DECISION", fact_date=today - dt.timedelta(days=30)), 1),
        at(event(person, "TRAINING_STARTED", fact_date=today - dt.timedelta(days=20)), 2),
    ]
    test = at(event(person, "TRAINING_FINAL_TEST", fact_date=today - dt.timedelta(days=5)), 3)
    annulment = at(
        {
            **event(person, "TRAINING_FINAL_TEST", fact_date=today - dt.timedelta(days=5)),
            "action": "ANNUL",
            "correctsEventId": test["eventId"],
        },
        4,
    )
    restored = at(
        {
            **event(person, "TRAINING_FINAL_TEST", fact_date=today - dt.timedelta(days=5)),
            "action": "CORRECT",
            "correctsEventId": annulment["eventId"],
        },
        5,
    )
    restored["payload"]["partialResults"] = [{"skill": "WRITING", "result": "B1"}]
    harness.start_worker()
    harness.publish([*story, test, annulment, restored])
    receipts, _ = harness.wait_for_receipts(6)
    assert [r["outcome"] for r in receipts] == ["ACCEPTED"] * 6
    shown = json.loads(
        hub_command(harness, "person", "show", "--json", "--reason", "test", stdin=person.duf_number).stdout
    )
    [final] = [f for f in shown["facts"] if f["eventType"] == "TRAINING_FINAL_TEST"]
    assert final["payload"]["partialResults"] == [{"skill": "WRITING", "result": "B1"}]
    [chain] = shown["chains"]
    assert chain["standing"] is True
    assert [v["effect"] for v in chain["versions"]] == ["original", "annulled", "restored"]
    text = hub_command(harness, "person", "show", "--reason", "test", stdin=person.duf_number).stdout
    assert "restored" in text and test["eventId"] in text
