"""A realistic mixed stream for a few hundred synthetic persons, end to end on the real broker:
every event type, corrections, annulments, out-of-order pairs and late registrations. The
register's derived state is compared with an expectation computed here, from the scenario
itself, without the hub's lifecycle code.

Every story reaches the broker today, so the deadlines count to today (the broker's time),
whatever sentAt the fagsystem gave: a fact more than two months back is late."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import random
import uuid
from collections import Counter
from typing import Any

from hub.domain.calendar import age_on, is_after_deadline, norwegian_date
from hub.domain.identifiers import parse_national_id
from hub.register.database import make_session_factory
from hub.register.people import describe_person
from hub.register.repository import find_person_id
from tests.factories import PAYLOADS, Person, event, fill_dates, synthetic_person
from tests.harness import HubHarness

TODAY = dt.date.today()
RECEIVED_ON = norwegian_date(dt.datetime.now(dt.UTC))
PERMIT = "RESIDENCE_PERMIT_REGISTERED"
END_REASONS = ["WORK", "EDUCATION", "GOAL_REACHED", "OWN_WISH"]
ACTIVITIES = ["EMPLOYED_FULL_TIME", "EDUCATION_HIGHER", "UNEMPLOYED", "OTHER"]


@dataclasses.dataclass
class Scenario:
    """One person's story, and what the register should say about it."""

    person: Person
    events: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    programme_status: str = "running"
    end_reason: str | None = None
    main_activity: str | None = None
    effective_facts: int = 0
    held: int = 0  # events sent before what they depend on
    category_warnings: set[str] = dataclasses.field(default_factory=set)  # decisions outside the ages

    @property
    def late(self) -> set[str]:
        """DOMAIN.md: the municipality registers within two months of the fact. Residence permits
        (the immigration authorities' history), corrections and annulments have no deadline."""
        return {
            e["eventId"]
            for e in self.events
            if e.get("action", "REGISTER") == "REGISTER"
            and e["eventType"] != PERMIT
            and is_after_deadline(RECEIVED_ON, dt.date.fromisoformat(e["factDate"]), months=2)
        }


def _at(person: Person, event_type: str, day: dt.date, **payload: Any) -> dict[str, Any]:
    body = fill_dates({**PAYLOADS[event_type], **payload}, day.isoformat())
    e = event(person, event_type, fact_date=day, payload=body)
    # The fagsystem says it sent it the next day: for information only, the deadline counts to
    # when the broker received it.
    e["sentAt"] = f"{day + dt.timedelta(days=1)}T10:00:00+00:00"
    return e


def scenario(rng: random.Random) -> Scenario:
    d0 = TODAY - dt.timedelta(days=rng.randint(200, 400))
    # One in ten is past the programme's age limit when granted the permit (a month before d0).
    born = d0.replace(year=d0.year - 60, day=1) if rng.random() < 0.1 else None
    s = Scenario(synthetic_person(with_national_id=rng.random() < 0.8, born=born))
    day = lambda n: d0 + dt.timedelta(days=n)  # noqa: E731
    p = s.person
    claim = _at(p, "INTRODUCTION_PROGRAMME_OFFER_OR_CLAIM", day(0))
    decision = _at(p, "INTRODUCTION_PROGRAMME_DECISION", day(10))
    start = _at(p, "INTRODUCTION_PROGRAMME_STARTED", day(20))
    leave = _at(p, "INTRODUCTION_PROGRAMME_LEAVE", day(40))
    story = [claim, decision, start, leave]
    training = [
        _at(p, "TRAINING_CLAIM", day(1)),
        _at(p, "TRAINING_DECISION", day(11)),
        _at(p, "TRAINING_LANGUAGES", day(12)),
        _at(p, "TRAINING_STARTED", day(21)),
        _at(p, "TRAINING_HOURS", day(60)),
        _at(p, "TRAINING_FINAL_TEST", day(150)),
    ]
    extra = [_at(p, PERMIT, day(-30))]
    if p.national_id:  # DOMAIN.md: ages 18-55 (programme) and 18-66 (training) at the permit
        born = parse_national_id(p.national_id, allow_synthetic=True).birth_date
        age = age_on(born, day(-30))
        for decided, (youngest, oldest) in ((decision, (18, 55)), (training[1], (18, 66))):
            if not youngest <= age <= oldest:
                s.category_warnings.add(decided["eventId"])
        if age_on(born, day(11)) >= 67:  # age 67 closes training on the decision's date
            s.category_warnings.add(training[1]["eventId"])
    if rng.random() < 0.3:
        extra.append(_at(p, "CULTURE_AND_VALUES_TRAINING", day(5)))
        extra.append(_at(p, "ASYLUM_SEEKER_TRAINING_HOURS", day(6)))
    if rng.random() < 0.15:  # hours sent before the training's start was sent
        extra.append(_at(p, "TRAINING_HOURS", TODAY - dt.timedelta(days=100)))
        s.held += 1
    annulled = 0
    if rng.random() < 0.1:  # the leave was registered by mistake
        story.append(
            {
                **_at(p, "INTRODUCTION_PROGRAMME_LEAVE", day(40)),
                "action": "ANNUL",
                "correctsEventId": leave["eventId"],
            }
        )
        annulled = 1
    if rng.random() < 0.7:
        reason, activity = rng.choice(END_REASONS), rng.choice(ACTIVITIES)
        end = _at(p, "INTRODUCTION_PROGRAMME_ENDED", day(180), endReason=reason, mainActivity=activity)
        story.append(end)
        s.programme_status, s.end_reason, s.main_activity = "ended", reason, activity
        if rng.random() < 0.3:  # the fagsystem corrects the end reason
            reason, activity = rng.choice(END_REASONS), rng.choice(ACTIVITIES)
            story.append(
                {
                    **_at(
                        p, "INTRODUCTION_PROGRAMME_ENDED", day(182), endReason=reason, mainActivity=activity
                    ),
                    "action": "CORRECT",
                    "correctsEventId": end["eventId"],
                }
            )
            s.end_reason, s.main_activity = reason, activity
        if rng.random() < 0.3:  # the end arrives before the start: held, then released
            story.remove(end)
            story.insert(story.index(start), end)
            s.held += 1
    registered = [e for e in story if e.get("action", "REGISTER") == "REGISTER"]
    s.effective_facts = len(registered) - annulled + len(training) + len(extra)
    s.events = extra + story + training
    return s


def test_a_mixed_stream_of_a_few_hundred_persons_ends_in_the_state_the_scenarios_describe(
    harness: HubHarness,
) -> None:
    rng = random.Random(20261126)
    scenarios = [scenario(rng) for _ in range(int(os.environ.get("NIR_TEST_PERSONS", "200")))]
    stream = [e for s in scenarios for e in s.events]
    harness.start_worker()
    published = dt.datetime.now(dt.UTC).replace(microsecond=0)  # the broker keeps milliseconds
    harness.publish(stream)

    ids = {uuid.UUID(e["eventId"]) for e in stream}
    records = harness.read_outputs(
        until=lambda rs: {r["eventId"] for r in harness.receipts(rs) if r["outcome"] != "HELD"} >= ids,
        timeout=240,
    )
    receipts = harness.receipts(records)
    final = {r["eventId"]: r["outcome"] for r in receipts if r["outcome"] != "HELD"}
    by_id = {uuid.UUID(e["eventId"]): (e["eventType"], e.get("action", "REGISTER")) for e in stream}
    missing = Counter(by_id[i] for i in ids - set(final))
    assert not missing, f"events without a final receipt: {missing}"
    warned = len(set().union(*(s.late | s.category_warnings for s in scenarios)))
    assert 0 < sum(len(s.category_warnings) for s in scenarios) < len(scenarios)
    assert 0 < sum(len(s.late) for s in scenarios) < len(ids)  # some in time, some late
    assert Counter(final.values()) == {"ACCEPTED": len(ids) - warned, "ACCEPTED_WITH_WARNINGS": warned}
    # Every event sent before what it depends on is held first. An event that depends on a held
    # one released in the same batch can be held too, before its final receipt.
    assert sum(r["outcome"] == "HELD" for r in receipts) >= sum(s.held for s in scenarios)
    assert harness.dead_letters(records) == []

    with make_session_factory(harness.hub.engine)() as session:
        for s in scenarios:
            person_id = find_person_id(session, s.person.duf_number or s.person.national_id or "")
            assert person_id is not None
            shown = describe_person(session, person_id)
            programme = shown["state"]["introductionProgramme"]
            assert programme["status"] == s.programme_status
            assert (programme["endReason"], programme["mainActivity"]) == (s.end_reason, s.main_activity)
            assert shown["state"]["norwegianAndSocialStudies"]["status"] == "running"
            assert len(shown["facts"]) == s.effective_facts
            assert {r["eventId"] for r in shown["registrations"] if r["late"]} == s.late
            for r in shown["registrations"]:  # the broker's time, not sentAt
                assert published <= dt.datetime.fromisoformat(r["receivedAt"]) <= dt.datetime.now(dt.UTC)
            assert len(shown["residencePermits"]) == 1
