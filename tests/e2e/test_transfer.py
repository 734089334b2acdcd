"""Registrations travel from fagsystems through Kafka and the worker into the register."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from pathlib import Path

from hub.dev.localrun import LocalBroker
from hub.domain.calendar import as_utc
from hub.pipeline.deadletter import (
    H_DEAD_LETTERED_AT,
    H_ERROR_CLASS,
    H_ERROR_CODE,
    H_ERROR_MESSAGE,
    H_OFFSET,
    H_PARTITION,
    H_TOPIC,
)
from hub.register.database import make_session_factory
from hub.schemas.codec import REGISTRATION
from hub.schemas.contract import from_json
from tests.factories import PAYLOADS, event, synthetic_person
from tests.harness import HubHarness, wait_until


def test_valid_events_are_written_once_and_invalid_ones_are_dead_lettered_with_a_receipt_each(
    harness: HubHarness,
) -> None:
    persons = [synthetic_person() for _ in range(20)]
    valid = [event(p, t) for p in persons for t in ("TRAINING_CLAIM", "TRAINING_DECISION")]
    duplicates = [dict(valid[i], sentAt=dt.datetime.now(dt.UTC).isoformat()) for i in (0, 5, 17)]
    wrong_check_digit = synthetic_person()
    bad_id = wrong_check_digit.national_id[:-1] + str((int(wrong_check_digit.national_id[-1]) + 1) % 10)
    invalid = [
        event(synthetic_person(), municipality="4601"),  # not a municipality of this source
        dict(event(synthetic_person()), person={"nationalId": bad_id, "dufNumber": None}),
        event(synthetic_person(), municipality="9999"),  # no such municipality
        event(synthetic_person(), fact_date=dt.date.today() + dt.timedelta(days=30)),
    ]
    stream = valid + duplicates + invalid
    harness.start_worker()
    sent = harness.publish(stream)

    receipts, dead_letters = harness.wait_for_receipts(len(stream))

    # Exactly the valid unique events are in the register, each once.
    registered = harness.registrations()
    assert sorted(r.event_id for r in registered) == sorted(e["eventId"] for e in valid)
    # A receipt per event, with the outcome each deserves.
    assert len(receipts) == len(stream)
    by_offset = {(r["originalTopic"], r["originalPartition"], r["originalOffset"]): r for r in receipts}
    outcomes = [by_offset[(s.topic, s.partition, s.offset)]["outcome"] for s in sent]
    assert outcomes == ["ACCEPTED"] * len(valid) + ["DUPLICATE"] * 3 + ["REJECTED"] * 4
    fired = [
        {v["code"] for v in by_offset[(s.topic, s.partition, s.offset)]["violations"]} for s in sent[-4:]
    ]
    expected = ["NIR-SOURCE-002", "NIR-ID-002", "NIR-MUNI-001", "NIR-DATE-001"]
    assert all(code in codes for code, codes in zip(expected, fired, strict=True)), fired
    # The invalid ones are in the dead-letter topic with their reasons and origin.
    assert len(dead_letters) == 4
    letters = {
        (d.headers[H_TOPIC], int(d.headers[H_PARTITION]), int(d.headers[H_OFFSET])): d for d in dead_letters
    }
    for s, codes in zip(sent[-4:], fired, strict=True):
        letter = letters[(s.topic, s.partition, s.offset)]
        assert letter.headers[H_ERROR_CLASS] == "rule"
        assert letter.headers[H_ERROR_CODE] in codes
        assert letter.headers[H_ERROR_CODE] in letter.headers[H_ERROR_MESSAGE]
        assert dt.datetime.fromisoformat(letter.headers[H_DEAD_LETTERED_AT])
    # The original bytes are kept: the dead letter decodes to the event that was sent.
    originals = {harness.hub.catalog.decode(d.value).datum["eventId"] for d in dead_letters}
    assert originals == {uuid.UUID(e["eventId"]) for e in invalid}
    # No identifier appears in any dead-letter header.
    all_headers = " ".join(" ".join(d.headers.values()) for d in dead_letters)
    assert bad_id not in all_headers


def test_every_event_type_of_the_contract_is_accepted(harness: HubHarness) -> None:
    person = synthetic_person()
    events = [event(person, t) for t in PAYLOADS]
    harness.start_worker()
    harness.publish(events)
    receipts, _ = harness.wait_for_receipts(len(events))
    assert Counter(r["outcome"] for r in receipts) == {"ACCEPTED": len(PAYLOADS)}
    assert {r.event_type for r in harness.registrations()} == set(PAYLOADS)


def test_an_event_written_with_the_older_schema_version_is_read_by_the_current_hub(
    harness: HubHarness,
) -> None:
    person = synthetic_person()
    old = [event(person, t) for t in ("TRAINING_CLAIM", "TRAINING_DECISION", "TRAINING_STARTED")]
    harness.start_worker()
    harness.publish(old, schema_version=1)
    receipts, _ = harness.wait_for_receipts(3)
    assert [r["outcome"] for r in receipts] == ["ACCEPTED"] * 3
    [row] = [r for r in harness.registrations() if r.event_type == "TRAINING_STARTED"]
    assert row.writer_schema == "registration_event.v1"
    assert row.payload["goalLevel"] == "B1"


def test_undecodable_bytes_are_dead_lettered_and_do_not_block_the_partition(harness: HubHarness) -> None:
    person = synthetic_person()
    topic = harness.hub.names.registrations("oslo-fagsystem")
    harness.start_worker()
    key = person.key.encode()
    harness.publish_raw(topic, b"not avro at all", key=key)
    harness.publish_raw(topic, b"\xc3\x01" + b"\x00" * 8 + b"unknown writer", key=key)
    after = event(person)
    harness.publish([after])  # same key, so same partition, behind the bad ones

    receipts, dead_letters = harness.wait_for_receipts(3)
    assert [r["outcome"] for r in sorted(receipts, key=lambda r: r["originalOffset"])] == [
        "REJECTED",
        "REJECTED",
        "ACCEPTED",
    ]
    assert sorted(d.headers[H_ERROR_CLASS] for d in dead_letters) == ["decode", "schema"]
    assert {d.value for d in dead_letters} == {
        b"not avro at all",
        b"\xc3\x01" + b"\x00" * 8 + b"unknown writer",
    }
    assert [r.event_id for r in harness.registrations()] == [after["eventId"]]


def test_an_address_change_from_folkeregisteret_lands_in_the_persons_address_history(
    harness: HubHarness,
) -> None:
    person = synthetic_person()
    change = {
        "sequenceNumber": 42,
        "eventType": "ADDRESS_CHANGED",
        "nationalId": person.national_id,
        "recordedAt": "2026-10-01T06:00:00Z",
        "movedOn": "2026-09-28",
        "municipality": "4601",
        "protection": "STRICTLY_CONFIDENTIAL",
        "addressKind": "STREET_ADDRESS",
        "addressLine": "Hemmeligveien 2",
        "postalCode": "5003",
        "postalPlace": "BERGEN",
    }
    harness.start_worker()
    harness.publish([event(person)])  # the person becomes known to the register
    harness.wait_for_receipts(1)
    stranger = {**change, "sequenceNumber": 41, "nationalId": synthetic_person().national_id}
    harness.publish_address_change(stranger)  # not known: not kept
    harness.publish_address_change(change)
    harness.publish_address_change(change)  # the feed can deliver an item twice
    wait_until(lambda: harness.address_count() >= 1, timeout=60, what="the address change")
    harness.publish([event(person, "TRAINING_DECISION")])
    harness.wait_for_receipts(2)  # everything before it on the address topic is done by now too
    assert harness.address_count() == 1
    from hub.register.people import describe_person
    from hub.register.repository import find_person_id

    with make_session_factory(harness.hub.engine)() as session:
        person_id = find_person_id(session, person.national_id)
        assert person_id is not None
        shown = describe_person(session, person_id)
    [address] = shown["addresses"]
    assert address["protection"] == "STRICTLY_CONFIDENTIAL"
    assert address["addressLine"] is None and address["municipality"] is None
    assert len(shown["registrations"]) == 2


def test_a_source_topic_on_the_broker_that_is_not_in_the_registry_is_consumed_and_rejected(
    harness: HubHarness,
) -> None:
    import asyncio

    from hub.kafka.admin import ensure_topics
    from hub.kafka.topics import TopicSpec
    from hub.schemas.codec import REGISTRATION
    from hub.schemas.contract import from_json

    rogue_topic = harness.hub.names.registrations("rogue")
    asyncio.run(ensure_topics(harness.admin.kafka, [TopicSpec(rogue_topic, 1)], 1))
    rogue_event = event(synthetic_person(), source="rogue")
    harness.publish_raw(rogue_topic, harness.hub.catalog.encode(REGISTRATION, from_json(rogue_event)))
    harness.start_worker()

    records = harness.read_outputs(until=lambda rs: bool(harness.dead_letters(rs)), timeout=90)
    [letter] = harness.dead_letters(records)
    assert letter.headers[H_TOPIC] == rogue_topic
    assert letter.headers[H_ERROR_CODE] == "NIR-SOURCE-001"
    assert harness.receipts(records) == []  # an unregistered source has no receipts topic
    assert harness.registrations() == []
    assert "not in the source registry" in harness.worker_logs()


def test_an_event_whose_predecessor_never_arrives_is_held_then_dead_lettered(
    kafka_broker: LocalBroker, database_url: str, tmp_path: Path
) -> None:
    import dataclasses

    from tests.conftest import make_settings

    settings = dataclasses.replace(
        make_settings(kafka_broker, database_url, tmp_path), hold_seconds=1.0, hold_check_seconds=0.5
    )
    harness = HubHarness(settings, tmp_path)
    try:
        end = event(synthetic_person(), "INTRODUCTION_PROGRAMME_ENDED")
        harness.start_worker()
        [sent] = harness.publish([end])
        records = harness.read_outputs(until=lambda rs: len(harness.receipts(rs)) >= 2, timeout=90)
        assert [r["outcome"] for r in harness.receipts(records)] == ["HELD", "REJECTED"]
        [letter] = harness.dead_letters(records)
        assert letter.headers[H_ERROR_CODE] == "NIR-LIFE-001"
        assert (letter.headers[H_TOPIC], letter.headers[H_OFFSET]) == (sent.topic, str(sent.offset))
        assert "no start of the introduction programme has arrived" in letter.headers[H_ERROR_MESSAGE]
        assert harness.registrations() == []
    finally:
        harness.stop_all()


def test_the_newest_contract_and_an_older_writer_reach_the_register_side_by_side(harness: HubHarness) -> None:
    """Issue 15, fault 4, end to end: the asylum seekers' final test with its social-studies
    result (v4, written as the newest, v5) and without it (a v3 writer) both travel through the
    broker, and a refused permit renewal (v4) and a permit granted on appeal (v5) are kept."""
    with_result, older = synthetic_person(), synthetic_person()
    result = {"passed": True, "correctAnswers": 31, "language": "tir"}
    new = event(
        with_result,
        "ASYLUM_SEEKER_FINAL_TEST",
        payload={"partialResults": [{"skill": "ORAL", "result": "A2"}], "socialStudiesTest": result},
    )
    old = event(
        older, "ASYLUM_SEEKER_FINAL_TEST", payload={"partialResults": [{"skill": "ORAL", "result": "A2"}]}
    )
    permit = event(
        with_result,
        "RESIDENCE_PERMIT_REGISTERED",
        fact_date=dt.date(2022, 3, 1),
        payload={
            "ground": "ASYLUM",
            "validUntil": "2025-03-01",
            "renewalAppliedOn": "2025-01-10",
            "renewalRefusedOn": "2025-09-01",
            "permanent": False,
        },
    )
    appeal = event(
        with_result,
        "RESIDENCE_PERMIT_REGISTERED",
        fact_date=dt.date(2026, 2, 1),
        payload={"ground": "ASYLUM", "validUntil": "2029-02-01", "permanent": False, "grantedOnAppeal": True},
    )
    harness.start_worker()
    harness.publish([new, permit, appeal])
    harness.publish([old], schema_version=3)
    receipts, dead_letters = harness.wait_for_receipts(4)
    assert sorted(r["outcome"] for r in receipts) == ["ACCEPTED"] * 4 and dead_letters == []
    rows = {r.event_id: r for r in harness.registrations()}
    assert rows[new["eventId"]].payload["socialStudiesTest"] == result
    assert rows[new["eventId"]].writer_schema.endswith(".v5")
    assert rows[appeal["eventId"]].payload["grantedOnAppeal"] is True
    assert rows[old["eventId"]].payload["socialStudiesTest"] is None
    assert rows[old["eventId"]].writer_schema.endswith(".v3")
    assert rows[permit["eventId"]].payload["renewalRefusedOn"] == "2025-09-01"


def test_the_deadline_counts_to_when_the_broker_received_the_event_not_to_the_senders_clock(
    harness: HubHarness,
) -> None:
    """Issue 15, fault 7: a fagsystem that backdates both sentAt and the record's own timestamp
    (the producer's CreateTime) cannot make a late registration count as in time: the
    registrations topics keep the broker's time."""
    fact = dt.date.today() - dt.timedelta(days=100)
    claimed = dt.datetime.combine(fact + dt.timedelta(days=1), dt.time(10), dt.UTC)
    e = {**event(synthetic_person(), fact_date=fact), "sentAt": claimed.isoformat()}
    value = harness.hub.catalog.encode(REGISTRATION, from_json(e))
    harness.start_worker()
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    harness.publish_raw(
        harness.hub.names.registrations("oslo-fagsystem"),
        value,
        b"person",
        timestamp_ms=int(claimed.timestamp() * 1000),
        kafka=harness.source_kafka("oslo-fagsystem"),
    )
    records = harness.read_outputs(until=lambda rs: len(harness.receipts(rs)) >= 1, timeout=60)
    [receipt] = harness.receipts(records)
    assert receipt["outcome"] == "ACCEPTED_WITH_WARNINGS"
    assert [v["code"] for v in receipt["violations"]] == ["NIR-DEADLINE-001"]
    [row] = harness.registrations()
    assert row.late and as_utc(row.sent_at) == claimed  # sentAt is kept, for information
    assert before <= as_utc(row.received_at) <= dt.datetime.now(dt.UTC)
