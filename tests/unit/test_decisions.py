"""The decision core at the unit tier: the registration flow over the register in memory.

Every kind of decision (accept, accept with warnings, duplicate, redelivery, hold, reject, merge
persons, correct, annul, release held, expire held, close ticket) is decided here without a
database or a broker; `tests/integration/test_batch.py` proves the real repository gives the same
register as this fake.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt

import pytest

from hub.bootstrap import Hub
from hub.config import Settings
from hub.domain.events import Origin
from hub.domain.lifecycle import effective_facts
from hub.domain.snapshot import NATIONAL_ID, Merge, PersonState, Snapshot
from hub.domain.transfer import Message
from hub.pipeline.decide import Circumstances, Pending, decide
from hub.pipeline.decode import decode_registration
from hub.schemas.codec import catalog
from hub.sources import SourceRegistry
from hub.wiring import registration_flow
from tests.decisions import RECEIPTS, TOPIC, days_ago, later, message, programme, receipts, run
from tests.factories import Person, event, synthetic_person
from tests.fakes import FakeRegister, RecordingPublisher


def test_a_whole_programme_in_one_batch_is_accepted_each_event_seeing_the_ones_before(
    hub: Hub, store: FakeRegister
) -> None:
    outcomes, _publisher = run(hub, programme(synthetic_person()))
    assert outcomes == [["ACCEPTED"] * 4]
    assert len(store.rows) == 4 and len(store.persons) == 1


def test_an_end_before_its_start_in_one_batch_is_held_then_released_by_the_start(
    hub: Hub, store: FakeRegister
) -> None:
    claim, decision, start, end = programme(synthetic_person())
    outcomes, publisher = run(hub, [claim, decision, end, start])
    assert outcomes == [["ACCEPTED", "ACCEPTED", "HELD", "ACCEPTED"]]
    assert receipts(publisher)[-2:] == [(start["eventId"], "ACCEPTED"), (end["eventId"], "ACCEPTED")]
    assert store.held == {} and len(store.rows) == 4


def test_a_held_event_waits_across_batches_and_counts_its_attempts(hub: Hub, store: FakeRegister) -> None:
    person = synthetic_person()
    claim, decision, start, end = programme(person)
    hours = event(person, "INTRODUCTION_PROGRAMME_OFFER_OR_CLAIM", fact_date=days_ago(35))
    outcomes, publisher = run(hub, [end], [claim], [hours], [decision, start])
    assert outcomes == [["HELD"], ["ACCEPTED"], ["ACCEPTED"], ["ACCEPTED", "ACCEPTED"]]
    assert [o for e, o in receipts(publisher) if e == end["eventId"]] == [
        "HELD",
        "ACCEPTED",
    ]  # no answer while waiting
    assert store.held == {}


def test_a_held_event_still_waiting_after_a_retry_gets_no_second_held_receipt(
    hub: Hub, store: FakeRegister
) -> None:
    claim, _decision, _start, end = programme(synthetic_person())
    _outcomes, publisher = run(hub, [end], [claim])
    assert [o for e, o in receipts(publisher) if e == end["eventId"]] == ["HELD"]
    assert store.held[end["eventId"]][1] == 2  # held, then tried again once


def test_the_very_message_of_a_held_event_read_again_is_the_same_hold_and_another_message_an_attempt(
    hub: Hub, store: FakeRegister
) -> None:
    *_, end = programme(synthetic_person())
    flow = registration_flow(hub, RecordingPublisher())
    asyncio.run(flow.process_batch([message(end, 7)]))
    asyncio.run(flow.process_batch([message(end, 7)]))  # read again: after a crash, or hub recover
    assert store.held[end["eventId"]][1] == 1
    asyncio.run(flow.process_batch([message(end, 8)]))  # the fagsystem sent it again
    assert store.held[end["eventId"]][1] == 2


def test_a_held_event_past_the_hold_limit_is_rejected_and_leaves_the_hold(
    hub: Hub, store: FakeRegister
) -> None:
    *_, end = programme(synthetic_person())
    publisher = RecordingPublisher()
    flow = registration_flow(hub, publisher)
    asyncio.run(flow.process(message(end, 7)))
    later = hub.clock() + dt.timedelta(seconds=hub.settings.hold_seconds + 1)
    hub.clock = lambda: later
    assert asyncio.run(flow.expire_held({("elsewhere", 0)})) == 0
    assert asyncio.run(flow.expire_held({(TOPIC, 0)})) == 1
    assert receipts(publisher) == [(end["eventId"], "HELD"), (end["eventId"], "REJECTED")]
    assert len(publisher.on("nir.dead-letters")) == 1 and store.held == {}


def test_the_same_event_id_from_another_message_is_a_duplicate_and_the_same_message_repeats_its_outcome(
    hub: Hub, store: FakeRegister
) -> None:
    claim = event(synthetic_person(), fact_date=days_ago(100))  # late: accepted with a warning
    publisher = RecordingPublisher()
    flow = registration_flow(hub, publisher)
    first = asyncio.run(flow.process(message(claim, 0)))
    again = asyncio.run(flow.process(message(claim, 0)))  # redelivered after a crash
    other = asyncio.run(flow.process(message(claim, 1)))  # sent twice
    assert first.outcome and first.outcome.value == "ACCEPTED_WITH_WARNINGS"
    assert again.outcome == first.outcome and again.violations == first.violations
    assert other.outcome and other.outcome.value == "DUPLICATE"
    assert len(store.rows) == 1 and store.rows[0]["late"] is True


def test_a_duplicate_within_one_batch_is_told_apart_from_the_original(hub: Hub, store: FakeRegister) -> None:
    claim = event(synthetic_person())
    outcomes, _ = run(hub, [claim, dict(claim)])
    assert outcomes == [["ACCEPTED", "DUPLICATE"]]
    assert len(store.rows) == 1


def test_a_correction_and_an_annulment_after_their_original_in_one_batch(
    hub: Hub, store: FakeRegister
) -> None:
    person = synthetic_person()
    languages = event(person, "TRAINING_LANGUAGES")
    corrected = {
        **event(person, "TRAINING_LANGUAGES", payload={"motherTongue": "som", "otherLanguages": []}),
        "action": "CORRECT",
        "correctsEventId": languages["eventId"],
    }
    annulled = {
        **event(person, "TRAINING_LANGUAGES"),
        "action": "ANNUL",
        "correctsEventId": languages["eventId"],
    }
    # A correction of the annulled one, sent after the annulment: the registration is restored.
    restored = {**corrected, "eventId": event(person)["eventId"], "sentAt": later(annulled["sentAt"])}
    outcomes, _ = run(hub, [languages, corrected, annulled, restored])
    assert outcomes == [["ACCEPTED", "ACCEPTED", "ACCEPTED", "ACCEPTED"]]
    assert {r["registration_key"] for r in store.rows} == {languages["eventId"]}
    (standing,) = effective_facts(store.facts())
    assert standing.payload["motherTongue"] == "som"


def test_a_correction_before_its_original_is_held_until_the_original_arrives(
    hub: Hub, store: FakeRegister
) -> None:
    person = synthetic_person()
    languages = event(person, "TRAINING_LANGUAGES")
    corrected = {
        **event(person, "TRAINING_LANGUAGES"),
        "action": "CORRECT",
        "correctsEventId": languages["eventId"],
    }
    outcomes, _ = run(hub, [corrected], [languages])
    assert outcomes == [["HELD"], ["ACCEPTED"]]
    assert len(store.rows) == 2 and store.held == {}


def test_two_records_are_not_merged_by_an_event_naming_both_it_is_an_identity_conflict(
    hub: Hub, store: FakeRegister
) -> None:
    person = synthetic_person()
    by_fnr = event(Person(person.national_id, None), "TRAINING_CLAIM", fact_date=days_ago(30))
    by_duf = event(
        Person(None, person.duf_number), "INTRODUCTION_PROGRAMME_OFFER_OR_CLAIM", fact_date=days_ago(30)
    )
    both = event(person, "TRAINING_DECISION", fact_date=days_ago(20))
    run(hub, [by_fnr], [by_duf])
    outcomes, publisher = run(hub, [both])
    assert outcomes == [["REJECTED"]]
    assert len(store.persons) == 2 and store.merges == []
    [dead_letter] = publisher.on("nir.dead-letters")
    assert dead_letter[3]["nir.error.code"] == "NIR-ID-005"


def test_a_rejected_event_is_dead_lettered_and_writes_nothing(hub: Hub, store: FakeRegister) -> None:
    outcomes, publisher = run(hub, [event(synthetic_person(), municipality="9999")])
    assert outcomes == [["REJECTED"]]
    assert len(publisher.on("nir.dead-letters")) == 1 and store.rows == [] and store.persons == {}


def test_an_undecodable_message_is_rejected_in_its_place_in_the_batch(hub: Hub) -> None:
    publisher = RecordingPublisher()
    flow = registration_flow(hub, publisher)
    good = message(event(synthetic_person()), 1)
    decided = asyncio.run(
        flow.process_batch(
            [message(event(synthetic_person()), 0), Message(Origin(TOPIC, 0, 9), None, b"\x00junk"), good]
        )
    )
    assert [d.outcome.value if d.outcome else None for d in decided] == ["ACCEPTED", "REJECTED", "ACCEPTED"]
    assert decided[1].failure is not None and decided[1].failure.error_class == "decode"


def test_an_accepted_fix_closes_the_open_ticket_of_the_same_person_type_and_source(
    hub: Hub, store: FakeRegister
) -> None:
    person = synthetic_person()
    fix = event(person, "TRAINING_CLAIM")
    same = store.open_ticket(
        event_type="TRAINING_CLAIM", source_system="oslo-fagsystem", national_id=person.national_id
    )
    other_source = store.open_ticket(
        event_type="TRAINING_CLAIM", source_system="vestland-fagsystem", national_id=person.national_id
    )
    run(hub, [fix])
    assert store.tickets[same]["status"] == "resolved"
    assert store.tickets[same]["linked_event_id"] == fix["eventId"]
    assert store.tickets[other_source]["status"] == "open"


def test_decide_is_a_pure_function_of_the_event_and_the_snapshot() -> None:
    """The same event over the same snapshot, twice: the same decision, and the second sees the first."""
    claim = event(synthetic_person())
    msg = message(claim)
    pending = Pending(msg, decode_registration(catalog(), msg.value), "oslo-fagsystem")
    circumstances = Circumstances(dt.datetime.now(dt.UTC), SourceRegistry.load(Settings().sources_file), True)
    snapshot = Snapshot()
    first = decide(pending, snapshot, circumstances)
    second = decide(pending, snapshot, circumstances)
    assert first.outcome and first.outcome.value == "ACCEPTED"
    assert second.outcome == first.outcome and second.changes == []  # a redelivery: nothing to write
    other = decide(dataclasses.replace(pending, message=message(claim, 1)), snapshot, circumstances)
    assert other.outcome and other.outcome.value == "DUPLICATE"


def test_a_permit_granted_years_ago_with_its_renewal_pending_is_accepted(
    hub: Hub, store: FakeRegister
) -> None:
    """Issue 15, fault 1: the renewal-pending case itself was rejected as more than 24 months old."""
    permit = event(
        synthetic_person(),
        "RESIDENCE_PERMIT_REGISTERED",
        fact_date=dt.date(2023, 1, 10),
        payload={
            "ground": "ASYLUM",
            "validUntil": "2026-01-10",
            "renewalAppliedOn": "2025-12-01",
            "permanent": False,
        },
    )
    outcomes, publisher = run(hub, [permit])
    assert outcomes == [["ACCEPTED"]], receipts(publisher)
    assert store.rows[0]["late"] is False


def test_a_merge_brings_both_persons_states_from_folkeregisteret_to_the_keeper() -> None:
    now = dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC)
    died = PersonState("dead", dt.date(2026, 11, 1), 5)
    ceased = PersonState("ceased_as_duplicate", dt.date(2026, 10, 1), 4)
    snapshot = Snapshot.assemble(
        [(1, NATIONAL_ID, "d-number"), (2, NATIONAL_ID, "fnr")], [], [], [], states=[(1, ceased), (2, died)]
    )
    assert snapshot.states(snapshot.persons([(NATIONAL_ID, "fnr")])) == (died,)
    both = [(NATIONAL_ID, "d-number"), (NATIONAL_ID, "fnr")]
    with pytest.raises(ValueError, match="not joined without proof"):
        snapshot.person_for(both, now)
    keeper, changes = snapshot.person_for(both, now, proof="Folkeregisteret: identity change (feed item 9)")
    assert keeper.id == 1 and snapshot.states([keeper]) == (ceased, died)
    [merge] = [c for c in changes if isinstance(c, Merge)]
    assert (merge.keeper.id, merge.other.id, merge.by) == (1, 2, "folkeregisteret")
    assert "feed item 9" in merge.reason


def test_a_fact_dated_after_a_reported_death_is_accepted_with_a_warning(
    hub: Hub, store: FakeRegister
) -> None:
    """Issue 15, fault 6: the decision core passes the person's states to the rules."""
    from hub.domain.snapshot import PersonState

    person = synthetic_person()
    person_id = store.person_with(person.national_id, person.duf_number, dt.datetime.now(dt.UTC))
    store.states.append((person_id, PersonState("dead", days_ago(20), 1)))
    outcomes, publisher = run(hub, [event(person, fact_date=days_ago(10))])
    assert outcomes == [["ACCEPTED_WITH_WARNINGS"]]
    assert [v["code"] for v in catalog().decode(publisher.on(RECEIPTS)[0][2]).datum["violations"]] == [
        "NIR-PERSON-001"
    ]


def test_an_event_sent_before_the_failed_one_does_not_close_its_ticket(hub: Hub, store: FakeRegister) -> None:
    """Issue 15, fault 7: a ticket was closed by an earlier, unrelated event accepted late."""
    person = synthetic_person()
    now = dt.datetime.now(dt.UTC)
    failed_later = store.open_ticket(
        event_type="TRAINING_CLAIM",
        source_system="oslo-fagsystem",
        national_id=person.national_id,
        sent_at=now - dt.timedelta(minutes=30),
    )
    earlier = {**event(person, "TRAINING_CLAIM"), "sentAt": (now - dt.timedelta(minutes=60)).isoformat()}
    run(hub, [earlier])
    assert store.tickets[failed_later]["status"] == "open"
    fix = event(person, "TRAINING_CLAIM")  # sent now, after the failed one
    run(hub, [fix])
    assert store.tickets[failed_later]["status"] == "resolved"


def _late(hub: Hub, store: FakeRegister, msg: Message) -> bool:
    asyncio.run(registration_flow(hub, RecordingPublisher()).process_batch([msg]))
    return bool(store.rows[-1]["late"])


def test_the_deadline_counts_to_the_brokers_time_of_arrival(hub: Hub, store: FakeRegister) -> None:
    """Issue 15, fault 7: deadlines were measured against sentAt, which the fagsystem sets. A
    backdated sentAt does not make a late event in time; the broker's time does."""
    now = dt.datetime.now(dt.UTC)
    claim = {
        **event(synthetic_person(), "TRAINING_CLAIM", fact_date=days_ago(90)),
        "sentAt": (now - dt.timedelta(days=85)).isoformat(),
    }
    assert _late(hub, store, message(claim)) is True  # read now, 90 days after the fact
    arrived_in_time = now - dt.timedelta(days=40)  # the worker was down, or far behind
    in_time = event(synthetic_person(), "TRAINING_CLAIM", fact_date=days_ago(90))
    assert _late(hub, store, dataclasses.replace(message(in_time, 1), received_at=arrived_in_time)) is False
    assert (
        store.rows[-1]["received_at"] == arrived_in_time and store.rows[-1]["accepted_at"] > arrived_in_time
    )


def test_a_held_event_counts_to_when_it_was_held_not_to_when_it_was_let_go(
    hub: Hub, store: FakeRegister
) -> None:
    person = synthetic_person()
    claim = event(person, "INTRODUCTION_PROGRAMME_OFFER_OR_CLAIM", fact_date=days_ago(80))
    decision = event(person, "INTRODUCTION_PROGRAMME_DECISION", fact_date=days_ago(60))
    flow = registration_flow(hub, RecordingPublisher())
    asyncio.run(flow.process_batch([message(claim, 0)]))
    asyncio.run(
        flow.process_batch(
            [message(event(person, "INTRODUCTION_PROGRAMME_STARTED", fact_date=days_ago(55)), 1)]
        )
    )
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)  # its decision comes a month on
    hub.clock = lambda: later
    asyncio.run(flow.process_batch([message(decision, 2)]))
    late = {row["event_type"]: row["late"] for row in store.rows}
    assert late == {
        "INTRODUCTION_PROGRAMME_OFFER_OR_CLAIM": True,  # 80 days after the fact when it came
        "INTRODUCTION_PROGRAMME_STARTED": False,  # held on day 55, in time, let go on day 85
        "INTRODUCTION_PROGRAMME_DECISION": True,
    }


def test_a_held_event_was_received_when_the_broker_appended_it_however_late_it_was_held(
    hub: Hub, store: FakeRegister
) -> None:
    """Held when read (a day after the broker appended it: the worker was behind, or read it
    again after `hub recover`), let go a month later: received when appended, neither when held
    nor when let go, so holding the same message again gives the same registration."""
    person = synthetic_person()
    now = dt.datetime.now(dt.UTC)
    appended = now - dt.timedelta(days=1)
    started = event(person, "INTRODUCTION_PROGRAMME_STARTED", fact_date=days_ago(55))
    flow = registration_flow(hub, RecordingPublisher())
    asyncio.run(
        flow.process_batch(
            [message(event(person, "INTRODUCTION_PROGRAMME_OFFER_OR_CLAIM", fact_date=days_ago(80)), 0)]
        )
    )
    asyncio.run(flow.process_batch([dataclasses.replace(message(started, 1), received_at=appended)]))
    later = now + dt.timedelta(days=30)
    hub.clock = lambda: later
    decision = event(person, "INTRODUCTION_PROGRAMME_DECISION", fact_date=days_ago(60))
    asyncio.run(flow.process_batch([message(decision, 2)]))
    [row] = [r for r in store.rows if r["event_id"] == started["eventId"]]
    assert row["received_at"] == appended


def test_an_event_that_failed_before_keeps_the_day_it_first_came(hub: Hub, store: FakeRegister) -> None:
    """Replayed by support, or sent again with its event id: it was registered when it first came."""
    claim = event(synthetic_person(), "TRAINING_CLAIM", fact_date=days_ago(90))
    first_came = dt.datetime.now(dt.UTC) - dt.timedelta(days=45)
    store.open_ticket(event_id=claim["eventId"], event_type="TRAINING_CLAIM", first_failed_at=first_came)
    assert _late(hub, store, message(claim)) is False
    assert store.rows[-1]["received_at"] == first_came
    another = event(synthetic_person(), "TRAINING_CLAIM", fact_date=days_ago(90))
    store.open_ticket(
        event_id="not-" + another["eventId"], event_type="TRAINING_CLAIM", first_failed_at=first_came
    )
    assert _late(hub, store, message(another, 1)) is True  # another event's ticket is no excuse
