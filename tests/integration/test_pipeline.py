"""The registration and address flows against a real SQLite register, with a recording publisher.

These check the flow's decisions one message at a time; the same guarantees are checked end to
end on the real broker in tests/e2e.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from hub.bootstrap import Hub
from hub.domain.events import Origin
from hub.domain.identifiers import make_national_id
from hub.domain.transfer import Message, ReceiptOutcome
from hub.pipeline.deadletter import H_ERROR_CLASS, H_ERROR_CODE, H_ERROR_MESSAGE
from hub.register.database import make_session_factory
from hub.register.models import RegistrationRecord
from hub.register.repository import RegisterRepository
from hub.register.unit_of_work import UnitOfWork
from hub.schemas.codec import ADDRESS_CHANGE, REGISTRATION, catalog
from hub.schemas.contract import from_json
from hub.wiring import address_flow, registration_flow
from tests.conftest import pipeline_hub
from tests.factories import event, synthetic_person
from tests.fakes import RecordingPublisher


@pytest.fixture
def hub(sqlite_url: str) -> Hub:
    return pipeline_hub(sqlite_url)


TOPIC = "nir.source.oslo-fagsystem.registrations"


def message(e: dict[str, Any] | bytes, offset: int = 0, topic: str = TOPIC) -> Message:
    value = e if isinstance(e, bytes) else catalog().encode(REGISTRATION, from_json(e))
    return Message(Origin(topic, 0, offset), b"key", value)


def receipt(publisher: RecordingPublisher, index: int = -1) -> dict[str, Any]:
    return catalog().decode(publisher.on("nir.source.oslo-fagsystem.receipts")[index][2]).datum


def count(hub: Hub) -> int:
    with make_session_factory(hub.engine)() as session:
        return session.scalar(select(func.count()).select_from(RegistrationRecord)) or 0


def test_a_valid_event_is_written_and_answered_with_an_accepted_receipt(hub: Hub) -> None:
    publisher = RecordingPublisher()
    processed = asyncio.run(registration_flow(hub, publisher).process(message(event(synthetic_person()))))
    assert processed.outcome is ReceiptOutcome.ACCEPTED
    assert count(hub) == 1
    assert receipt(publisher)["outcome"] == "ACCEPTED"
    assert publisher.on("nir.dead-letters") == []


def test_the_same_message_redelivered_repeats_its_outcome_and_a_resend_is_a_duplicate(hub: Hub) -> None:
    publisher = RecordingPublisher()
    flow = registration_flow(hub, publisher)
    e = event(synthetic_person())
    asyncio.run(flow.process(message(e, offset=7)))
    asyncio.run(flow.process(message(e, offset=7)))  # after a crash before the offset commit
    asyncio.run(flow.process(message(e, offset=9)))  # the fagsystem sent it again
    assert count(hub) == 1
    assert [receipt(publisher, i)["outcome"] for i in range(3)] == ["ACCEPTED", "ACCEPTED", "DUPLICATE"]
    assert receipt(publisher, 0)["registeredAt"] == receipt(publisher, 2)["registeredAt"]


def test_a_rule_violation_is_dead_lettered_before_its_rejection_receipt(hub: Hub) -> None:
    publisher = RecordingPublisher()
    person = synthetic_person()
    bad = event(person, municipality="4601")
    processed = asyncio.run(registration_flow(hub, publisher).process(message(bad)))
    assert processed.outcome is ReceiptOutcome.REJECTED
    assert [topic for topic, *_ in publisher.sent] == [
        "nir.dead-letters",
        "nir.source.oslo-fagsystem.receipts",
    ]
    [(_, key, value, headers)] = publisher.on("nir.dead-letters")
    assert value == message(bad).value and key == b"key"
    assert headers[H_ERROR_CLASS] == "rule" and headers[H_ERROR_CODE] == "NIR-SOURCE-002"
    assert count(hub) == 0


def test_an_event_on_the_topic_of_an_unregistered_source_is_dead_lettered_without_a_receipt(hub: Hub) -> None:
    publisher = RecordingPublisher()
    e = event(synthetic_person(), source="rogue")
    asyncio.run(registration_flow(hub, publisher).process(message(e, topic="nir.source.rogue.registrations")))
    assert [topic for topic, *_ in publisher.sent] == ["nir.dead-letters"]
    assert publisher.sent[0][3][H_ERROR_CODE] == "NIR-SOURCE-001"


def test_a_database_outage_is_retried_until_the_write_succeeds(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_factory = make_session_factory(hub.engine)
    failures = {"left": 3}

    def flaky_factory() -> Any:
        if failures["left"]:
            failures["left"] -= 1
            raise OperationalError("connect", {}, ConnectionRefusedError("database is down"))
        return real_factory()

    monkeypatch.setattr(hub, "unit_of_work", lambda: UnitOfWork(flaky_factory))
    publisher = RecordingPublisher()
    processed = asyncio.run(registration_flow(hub, publisher).process(message(event(synthetic_person()))))
    assert failures["left"] == 0
    assert processed.outcome is ReceiptOutcome.ACCEPTED
    assert count(hub) == 1
    assert publisher.on("nir.dead-letters") == []


def test_a_broker_hiccup_while_sending_the_receipt_is_retried(hub: Hub) -> None:
    publisher = RecordingPublisher()
    publisher.failures_left = 2
    asyncio.run(registration_flow(hub, publisher).process(message(event(synthetic_person()))))
    assert receipt(publisher)["outcome"] == "ACCEPTED"


def test_an_unexpected_error_is_dead_lettered_as_internal_and_does_not_escape(
    hub: Hub, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_rules(*_args: Any) -> Any:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("hub.pipeline.decide.evaluate", broken_rules)
    publisher = RecordingPublisher()
    with caplog.at_level(logging.ERROR):
        processed = asyncio.run(registration_flow(hub, publisher).process(message(event(synthetic_person()))))
    assert processed.outcome is ReceiptOutcome.REJECTED
    [(_, _, _, headers)] = publisher.on("nir.dead-letters")
    assert (headers[H_ERROR_CLASS], headers[H_ERROR_CODE]) == ("internal", "NIR-INTERNAL")
    assert "ZeroDivisionError" in headers[H_ERROR_MESSAGE]
    assert "ZeroDivisionError at test_pipeline.py" in caplog.text
    assert "a bug" not in caplog.text  # the message of an arbitrary exception is never logged
    assert receipt(publisher)["violations"][0]["code"] == "NIR-INTERNAL"


def test_no_identifier_appears_in_logs_dead_letter_headers_or_receipts(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    person = synthetic_person()
    wrong = person.national_id[:-1] + str((int(person.national_id[-1]) + 1) % 10)
    bad = event(person, municipality="4601")
    bad["person"] = {"nationalId": wrong, "dufNumber": "18001234567"[:11] + "9"}
    publisher = RecordingPublisher()
    with caplog.at_level(logging.DEBUG):
        asyncio.run(registration_flow(hub, publisher).process(message(bad)))
    visible = caplog.text + " ".join(" ".join(h.values()) for *_, h in publisher.sent)
    visible += str(receipt(publisher))
    assert {"NIR-ID-002", "NIR-ID-003"} <= {v["code"] for v in receipt(publisher)["violations"]}
    for identifier in (wrong, bad["person"]["dufNumber"]):
        assert identifier not in visible


def test_an_address_change_of_a_known_person_is_written_once_and_bad_bytes_are_dead_lettered(
    hub: Hub,
) -> None:
    person = synthetic_person()
    change = {
        "sequenceNumber": 7,
        "eventType": "ADDRESS_CHANGED",
        "nationalId": person.national_id,
        "recordedAt": "2026-10-01T06:00:00Z",
        "movedOn": "2026-09-28",
        "municipality": "0301",
        "protection": "UNGRADED",
        "addressKind": "STREET_ADDRESS",
        "addressLine": "Gata 1",
        "postalCode": "0150",
        "postalPlace": "OSLO",
    }
    value = catalog().encode(ADDRESS_CHANGE, from_json(change, catalog().current(ADDRESS_CHANGE)))
    publisher = RecordingPublisher()
    flow = address_flow(hub, publisher)
    origin = Origin("nir.folkeregister.address-changes", 0, 0)
    assert not asyncio.run(flow.process(Message(origin, None, value))).written  # not known yet
    with make_session_factory(hub.engine)() as session:
        RegisterRepository(session).person_with(person.national_id, None, hub.clock())
        session.commit()
    assert asyncio.run(flow.process(Message(origin, None, value))).written
    assert not asyncio.run(flow.process(Message(origin, None, value))).written
    failed = asyncio.run(flow.process(Message(origin, None, b"garbage")))
    assert failed.failure is not None and failed.failure.error_class == "decode"
    registration_bytes = catalog().encode(REGISTRATION, from_json(event(person)))
    wrong_family = asyncio.run(flow.process(Message(origin, None, registration_bytes)))
    assert wrong_family.failure is not None and "expected a address_change" in wrong_family.failure.message
    assert len(publisher.on("nir.dead-letters")) == 2


def test_an_identity_change_from_the_feed_links_the_new_number_and_a_bad_former_number_is_dead_lettered(
    hub: Hub,
) -> None:
    person = synthetic_person(with_duf=False)
    d_number = make_national_id(dt.date(1985, 6, 1), 211, d_number=True) or ""

    def encoded(sequence: int, former: list[str]) -> bytes:
        change = {
            "sequenceNumber": sequence,
            "eventType": "IDENTITY_CHANGED",
            "nationalId": person.national_id,
            "recordedAt": "2026-10-01T06:00:00Z",
            "protection": "UNKNOWN",
            "addressKind": "UNKNOWN",
            "formerNationalIds": former,
        }
        return catalog().encode(ADDRESS_CHANGE, from_json(change, catalog().current(ADDRESS_CHANGE)))

    with make_session_factory(hub.engine)() as session:
        known = RegisterRepository(session).person_with(d_number, None, hub.clock())
        session.commit()
    publisher = RecordingPublisher()
    flow = address_flow(hub, publisher)
    origin = Origin("nir.folkeregister.address-changes", 0, 0)
    assert asyncio.run(flow.process(Message(origin, None, encoded(5, [d_number])))).written
    bad = asyncio.run(flow.process(Message(origin, None, encoded(6, ["12345678901"]))))
    assert bad.failure is not None and bad.failure.code == "NIR-ID-002"
    assert "12345678901" not in str([headers for *_, headers in publisher.sent])
    asyncio.run(registration_flow(hub, RecordingPublisher()).process(message(event(person))))
    with make_session_factory(hub.engine)() as session:
        rows = session.scalars(select(RegistrationRecord.person_id)).all()
    assert rows == [known]  # the registration with the fødselsnummer reached the D-number's person


def test_the_clock_decides_what_is_in_the_future(hub: Hub) -> None:
    publisher = RecordingPublisher()
    hub.clock = lambda: dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    e = event(synthetic_person(), fact_date=dt.date(2026, 3, 1))
    e["sentAt"] = "2026-01-01T00:00:00Z"
    asyncio.run(registration_flow(hub, publisher).process(message(e)))
    assert "NIR-DATE-001" in {v["code"] for v in receipt(publisher)["violations"]}


def test_a_late_registration_is_accepted_with_a_warning_and_counted_as_late(hub: Hub) -> None:
    publisher = RecordingPublisher()
    e = event(synthetic_person(), fact_date=dt.date.today() - dt.timedelta(days=100))
    processed = asyncio.run(registration_flow(hub, publisher).process(message(e)))
    assert processed.outcome is ReceiptOutcome.ACCEPTED_WITH_WARNINGS
    [violation] = receipt(publisher)["violations"]
    assert (violation["code"], violation["severity"]) == ("NIR-DEADLINE-001", "WARNING")
    assert "mer enn 2 måneder etter faktadatoen" in violation["messageNb"]
    with make_session_factory(hub.engine)() as session:
        row = session.scalars(select(RegistrationRecord)).one()
    assert row.late and row.warnings[0]["code"] == "NIR-DEADLINE-001"


# --- history: out-of-order events, corrections and annulments --------------------------------


def _outcomes(publisher: RecordingPublisher) -> list[tuple[str, str]]:
    receipts = [catalog().decode(v).datum for t, _, v, _ in publisher.sent if t.endswith(".receipts")]
    return [(str(r["eventId"]), r["outcome"]) for r in receipts]


def test_an_end_that_arrives_before_its_start_is_held_then_accepted_when_the_start_arrives(hub: Hub) -> None:
    publisher = RecordingPublisher()
    flow = registration_flow(hub, publisher)
    person = synthetic_person()
    claim = event(
        person, "INTRODUCTION_PROGRAMME_OFFER_OR_CLAIM", fact_date=dt.date.today() - dt.timedelta(days=40)
    )
    decision = event(
        person, "INTRODUCTION_PROGRAMME_DECISION", fact_date=dt.date.today() - dt.timedelta(days=30)
    )
    start = event(person, "INTRODUCTION_PROGRAMME_STARTED", fact_date=dt.date.today() - dt.timedelta(days=20))
    end = event(person, "INTRODUCTION_PROGRAMME_ENDED", fact_date=dt.date.today() - dt.timedelta(days=2))
    for offset, e in enumerate([claim, decision, end, start]):
        asyncio.run(flow.process(message(e, offset=offset)))

    assert _outcomes(publisher) == [
        (claim["eventId"], "ACCEPTED"),
        (decision["eventId"], "ACCEPTED"),
        (end["eventId"], "HELD"),
        (start["eventId"], "ACCEPTED"),
        (end["eventId"], "ACCEPTED"),  # released when the start arrived
    ]
    held_receipt = catalog().decode(publisher.on("nir.source.oslo-fagsystem.receipts")[2][2]).datum
    assert [(v["code"], v["severity"]) for v in held_receipt["violations"]] == [("NIR-LIFE-001", "HOLD")]
    assert count(hub) == 4
    assert publisher.on("nir.dead-letters") == []
    with make_session_factory(hub.engine)() as session:
        from hub.register.models import HeldEvent

        assert session.scalar(select(func.count()).select_from(HeldEvent)) == 0
        [row] = session.scalars(
            select(RegistrationRecord).where(RegistrationRecord.event_id == end["eventId"])
        )
        assert row.offset == 2  # written with the origin it arrived with


class StoppedBeforeTheReceipts(RecordingPublisher):
    """The worker stops (cancelled, as on SIGTERM, or killed) after the register has committed a
    batch and before its answers are sent: step 2 of `RegistrationFlow.process_batch`."""

    async def send_many(self, messages: Any) -> None:
        raise asyncio.CancelledError


def test_a_held_event_accepted_when_the_worker_stopped_before_its_answer_is_answered_and_let_go(
    database_url: str,
) -> None:
    hub = pipeline_hub(database_url)
    person = synthetic_person()
    today = dt.date.today()
    claim, decision, start, end = (
        event(person, kind, fact_date=today - dt.timedelta(days=days))
        for kind, days in (
            ("INTRODUCTION_PROGRAMME_OFFER_OR_CLAIM", 40),
            ("INTRODUCTION_PROGRAMME_DECISION", 30),
            ("INTRODUCTION_PROGRAMME_STARTED", 20),
            ("INTRODUCTION_PROGRAMME_ENDED", 2),
        )
    )
    before = RecordingPublisher()
    flow = registration_flow(hub, before)
    for offset, e in enumerate([claim, decision, end]):
        asyncio.run(flow.process(message(e, offset=offset)))
    with pytest.raises(asyncio.CancelledError):  # the start lets the end go; no answer goes out
        asyncio.run(registration_flow(hub, StoppedBeforeTheReceipts()).process(message(start, offset=3)))
    assert count(hub) == 4 and held(hub) == [end["eventId"]]  # accepted, and still held: owed an answer

    # The start's offset was not committed: it comes again, and is answered. The end's was, when
    # it was held; only the hold remembers that its ACCEPTED is owed.
    after = RecordingPublisher()
    flow = registration_flow(hub, after)
    hub.clock = lambda: dt.datetime.now(dt.UTC) + dt.timedelta(seconds=hub.settings.hold_seconds + 1)
    assert asyncio.run(flow.expire_held({(TOPIC, 0)})) == 0  # owed an answer, not a rejection
    assert asyncio.run(flow.retry_held({("another.topic", 0)})) == 0  # not this worker's partition
    assert asyncio.run(flow.retry_held({(TOPIC, 0)})) == 1
    assert _outcomes(after) == [(end["eventId"], "ACCEPTED")]
    assert held(hub) == [] and count(hub) == 4
    assert after.on("nir.dead-letters") == []
    assert asyncio.run(flow.retry_held({(TOPIC, 0)})) == 0  # answered once


def held(hub: Hub) -> list[str]:
    from hub.register.models import HeldEvent

    with make_session_factory(hub.engine)() as session:
        return list(session.scalars(select(HeldEvent.event_id)))


def test_a_held_event_whose_predecessor_never_comes_is_dead_lettered_after_the_hold_limit(hub: Hub) -> None:
    publisher = RecordingPublisher()
    flow = registration_flow(hub, publisher)
    leave = event(synthetic_person(), "TRAINING_LEAVE")
    asyncio.run(flow.process(message(leave, offset=5)))
    assert asyncio.run(flow.expire_held({(TOPIC, 0)})) == 0  # not yet over the limit
    later = hub.clock() + dt.timedelta(seconds=hub.settings.hold_seconds + 1)
    hub.clock = lambda: later
    assert asyncio.run(flow.expire_held({("another.topic", 0)})) == 0  # not this worker's partition
    assert asyncio.run(flow.expire_held({(TOPIC, 0)})) == 1
    [(_, _, value, headers)] = publisher.on("nir.dead-letters")
    assert value == message(leave).value
    assert (headers[H_ERROR_CODE], headers["nir.original.offset"]) == ("NIR-LIFE-001", "5")
    assert "no start of the training in Norwegian and social studies has arrived" in headers[H_ERROR_MESSAGE]
    assert _outcomes(publisher) == [(leave["eventId"], "HELD"), (leave["eventId"], "REJECTED")]
    assert asyncio.run(flow.expire_held({(TOPIC, 0)})) == 0  # released once dead-lettered


def test_a_correction_replaces_the_values_and_an_annulment_withdraws_the_fact(hub: Hub) -> None:
    from hub.register.people import describe_person
    from hub.register.repository import find_person_id

    publisher = RecordingPublisher()
    flow = registration_flow(hub, publisher)
    person = synthetic_person()
    languages = event(person, "TRAINING_LANGUAGES")
    correction = {
        **event(person, "TRAINING_LANGUAGES", payload={"motherTongue": "som", "otherLanguages": []}),
        "action": "CORRECT",
        "correctsEventId": languages["eventId"],
    }
    for offset, e in enumerate([languages, correction]):
        asyncio.run(flow.process(message(e, offset=offset)))
    assert [o for _, o in _outcomes(publisher)] == ["ACCEPTED", "ACCEPTED"]
    with make_session_factory(hub.engine)() as session:
        state = describe_person(session, find_person_id(session, person.national_id) or 0)
    assert [f["payload"]["motherTongue"] for f in state["facts"]] == ["som"]
    assert len(state["registrations"]) == 2  # both kept as sent

    annulment = {
        **event(person, "TRAINING_LANGUAGES"),
        "action": "ANNUL",
        "correctsEventId": correction["eventId"],
    }
    asyncio.run(flow.process(message(annulment, offset=2)))
    again = {
        **event(person, "TRAINING_LANGUAGES"),
        "action": "CORRECT",
        "correctsEventId": languages["eventId"],
    }
    asyncio.run(flow.process(message(again, offset=3)))
    # A correction sent after the annulment restores the registration, with its own content.
    assert [o for _, o in _outcomes(publisher)][2:] == ["ACCEPTED", "ACCEPTED"]
    with make_session_factory(hub.engine)() as session:
        state = describe_person(session, find_person_id(session, person.national_id) or 0)
    assert [f["payload"]["motherTongue"] for f in state["facts"]] == ["tir"]
    [chain] = state["chains"]
    assert chain["registrationId"] == languages["eventId"] and chain["standing"] is True
    assert [(v["eventId"], v["effect"]) for v in chain["versions"]] == [
        (languages["eventId"], "original"),
        (correction["eventId"], "corrected"),
        (annulment["eventId"], "annulled"),
        (again["eventId"], "restored"),
    ]


def test_a_correction_that_arrives_before_its_original_waits_for_it(hub: Hub) -> None:
    publisher = RecordingPublisher()
    flow = registration_flow(hub, publisher)
    person = synthetic_person()
    original = event(person, "TRAINING_CLAIM")
    correction = {
        **event(person, "TRAINING_CLAIM"),
        "action": "CORRECT",
        "correctsEventId": original["eventId"],
    }
    asyncio.run(flow.process(message(correction, offset=0)))
    asyncio.run(flow.process(message(original, offset=1)))
    assert _outcomes(publisher) == [
        (correction["eventId"], "HELD"),
        (original["eventId"], "ACCEPTED"),
        (correction["eventId"], "ACCEPTED"),
    ]


def test_an_asylum_seekers_social_studies_result_is_kept_and_a_v3_final_test_is_still_accepted(
    hub: Hub,
) -> None:
    """Issue 15, fault 4: the contract's v4 carries the social-studies test of asylum seekers'
    training; a fagsystem still on v3 sends the same record without it."""
    from hub.register.people import describe_person
    from hub.register.repository import find_person_id

    publisher = RecordingPublisher()
    flow = registration_flow(hub, publisher)
    person = synthetic_person()
    result = {"passed": True, "correctAnswers": 30, "language": "ara"}
    partial = [{"skill": "ORAL", "result": "A2"}]
    current = event(
        person, "ASYLUM_SEEKER_FINAL_TEST", payload={"partialResults": partial, "socialStudiesTest": result}
    )
    older = event(person, "ASYLUM_SEEKER_FINAL_TEST", payload={"partialResults": partial})
    v3 = catalog().version(REGISTRATION, 3)
    asyncio.run(flow.process(message(current, offset=0)))
    asyncio.run(flow.process(message(catalog().encode(REGISTRATION, from_json(older, v3), 3), offset=1)))
    assert [o for _, o in _outcomes(publisher)] == ["ACCEPTED", "ACCEPTED"]
    with make_session_factory(hub.engine)() as session:
        state = describe_person(session, find_person_id(session, person.national_id) or 0)
    by_id = {f["eventId"]: f["payload"] for f in state["registrations"]}
    assert by_id[current["eventId"]]["socialStudiesTest"] == result
    assert by_id[older["eventId"]]["socialStudiesTest"] is None


def test_a_permit_granted_on_appeal_keeps_the_persons_category_on_the_first_permit(hub: Hub) -> None:
    """Issue 28: contract v5's permit says it was granted on appeal against the refused renewal,
    so the stay goes on: the act and the age stay those of the 2019 permit (at 54, the
    programme), where a new stay in 2023 (at 58) would give integreringsloven and no programme."""
    from hub.register.people import describe_person, find_person_id

    publisher = RecordingPublisher()
    flow = registration_flow(hub, publisher)
    person = synthetic_person(born=dt.date(1964, 6, 1))
    refused = {
        "ground": "ASYLUM",
        "validUntil": "2022-03-01",
        "renewalAppliedOn": "2022-01-10",
        "renewalRefusedOn": "2022-06-01",
        "permanent": False,
    }
    appeal = {"ground": "ASYLUM", "validUntil": "2026-02-01", "permanent": False, "grantedOnAppeal": True}
    first = event(person, "RESIDENCE_PERMIT_REGISTERED", fact_date=dt.date(2019, 3, 1), payload=refused)
    second = event(person, "RESIDENCE_PERMIT_REGISTERED", fact_date=dt.date(2023, 2, 1), payload=appeal)
    asyncio.run(flow.process(message(first, offset=0)))
    asyncio.run(flow.process(message(second, offset=1)))
    assert [o for _, o in _outcomes(publisher)] == ["ACCEPTED", "ACCEPTED"]
    with make_session_factory(hub.engine)() as session:
        state = describe_person(
            session, find_person_id(session, person.national_id) or 0, on=dt.date(2023, 6, 1)
        )
    by_id = {f["eventId"]: f["payload"] for f in state["registrations"]}
    assert by_id[second["eventId"]]["grantedOnAppeal"] is True
    assert by_id[first["eventId"]]["grantedOnAppeal"] is False  # a v5 writer's default
    category = state["categories"]
    assert (category["act"], category["introductionProgramme"]) == ("introduksjonsloven", "right_and_duty")
    assert category["basis"] == {"ground": "ASYLUM", "grantedOn": "2019-03-01"}
