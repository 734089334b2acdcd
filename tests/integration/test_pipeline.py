"""The registration and address flows against a real SQLite register, with a recording publisher.

These check the flow's decisions one message at a time; the same guarantees are checked end to
end on the real broker in tests/e2e.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from hub.bootstrap import Hub
from hub.config import Settings
from hub.domain.events import Origin
from hub.errors import BrokerUnavailable
from hub.pipeline.addresses import AddressFlow
from hub.pipeline.deadletter import H_ERROR_CLASS, H_ERROR_CODE, H_ERROR_MESSAGE, read_headers
from hub.pipeline.flow import Message
from hub.pipeline.receipts import ReceiptOutcome
from hub.pipeline.registrations import RegistrationFlow
from hub.register.models import RegistrationRecord
from hub.schemas.codec import ADDRESS_CHANGE, REGISTRATION, catalog
from hub.schemas.contract import from_json
from hub.sources import SourceRegistry
from tests.factories import event, synthetic_person


class RecordingPublisher:
    """Records what would have been published; can be told to fail the next sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes, dict[str, str]]] = []
        self.failures_left = 0

    async def send(
        self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise BrokerUnavailable("broker hiccup")
        self.sent.append((topic, key, value, read_headers(headers)))

    def on(self, topic: str) -> list[tuple[str, bytes | None, bytes, dict[str, str]]]:
        return [s for s in self.sent if s[0] == topic]


@pytest.fixture
def hub(sqlite_url: str, tmp_path: Path) -> Hub:
    settings = dataclasses.replace(
        Settings(),
        database_url=sqlite_url,
        allow_synthetic_identifiers=True,
        retry_initial_seconds=0.01,
        retry_max_seconds=0.05,
    )
    return Hub(settings=settings, registry=SourceRegistry.load(settings.sources_file), catalog=catalog())


TOPIC = "nir.source.oslo-fagsystem.registrations"


def message(e: dict[str, Any] | bytes, offset: int = 0, topic: str = TOPIC) -> Message:
    value = e if isinstance(e, bytes) else catalog().encode(REGISTRATION, from_json(e))
    return Message(Origin(topic, 0, offset), b"key", value)


def receipt(publisher: RecordingPublisher, index: int = -1) -> dict[str, Any]:
    return catalog().decode(publisher.on("nir.source.oslo-fagsystem.receipts")[index][2]).datum


def count(hub: Hub) -> int:
    with hub.session_factory() as session:
        return session.scalar(select(func.count()).select_from(RegistrationRecord)) or 0


def test_a_valid_event_is_written_and_answered_with_an_accepted_receipt(hub: Hub) -> None:
    publisher = RecordingPublisher()
    processed = asyncio.run(RegistrationFlow(hub, publisher).process(message(event(synthetic_person()))))
    assert processed.outcome is ReceiptOutcome.ACCEPTED
    assert count(hub) == 1
    assert receipt(publisher)["outcome"] == "ACCEPTED"
    assert publisher.on("nir.dead-letters") == []


def test_the_same_message_redelivered_repeats_its_outcome_and_a_resend_is_a_duplicate(hub: Hub) -> None:
    publisher = RecordingPublisher()
    flow = RegistrationFlow(hub, publisher)
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
    processed = asyncio.run(RegistrationFlow(hub, publisher).process(message(bad)))
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
    asyncio.run(RegistrationFlow(hub, publisher).process(message(e, topic="nir.source.rogue.registrations")))
    assert [topic for topic, *_ in publisher.sent] == ["nir.dead-letters"]
    assert publisher.sent[0][3][H_ERROR_CODE] == "NIR-SOURCE-001"


def test_a_database_outage_is_retried_until_the_write_succeeds(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_factory = hub.session_factory
    failures = {"left": 3}

    def flaky_factory() -> Any:
        if failures["left"]:
            failures["left"] -= 1
            raise OperationalError("connect", {}, ConnectionRefusedError("database is down"))
        return real_factory()

    monkeypatch.setattr(hub, "session_factory", flaky_factory)
    publisher = RecordingPublisher()
    processed = asyncio.run(RegistrationFlow(hub, publisher).process(message(event(synthetic_person()))))
    assert failures["left"] == 0
    assert processed.outcome is ReceiptOutcome.ACCEPTED
    assert count(hub) == 1
    assert publisher.on("nir.dead-letters") == []


def test_a_broker_hiccup_while_sending_the_receipt_is_retried(hub: Hub) -> None:
    publisher = RecordingPublisher()
    publisher.failures_left = 2
    asyncio.run(RegistrationFlow(hub, publisher).process(message(event(synthetic_person()))))
    assert receipt(publisher)["outcome"] == "ACCEPTED"


def test_an_unexpected_error_is_dead_lettered_as_internal_and_does_not_escape(
    hub: Hub, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_rules(*_args: Any) -> Any:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("hub.pipeline.registrations.evaluate", broken_rules)
    publisher = RecordingPublisher()
    with caplog.at_level(logging.ERROR):
        processed = asyncio.run(RegistrationFlow(hub, publisher).process(message(event(synthetic_person()))))
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
        asyncio.run(RegistrationFlow(hub, publisher).process(message(bad)))
    visible = caplog.text + " ".join(" ".join(h.values()) for *_, h in publisher.sent)
    visible += str(receipt(publisher))
    assert {"NIR-ID-002", "NIR-ID-003"} <= {v["code"] for v in receipt(publisher)["violations"]}
    for identifier in (wrong, bad["person"]["dufNumber"]):
        assert identifier not in visible


def test_an_address_change_is_written_once_and_bad_bytes_are_dead_lettered(hub: Hub) -> None:
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
    flow = AddressFlow(hub, publisher)
    origin = Origin("nir.folkeregister.address-changes", 0, 0)
    assert asyncio.run(flow.process(Message(origin, None, value))).written
    assert not asyncio.run(flow.process(Message(origin, None, value))).written
    failed = asyncio.run(flow.process(Message(origin, None, b"garbage")))
    assert failed.failure is not None and failed.failure.error_class == "decode"
    registration_bytes = catalog().encode(REGISTRATION, from_json(event(person)))
    wrong_family = asyncio.run(flow.process(Message(origin, None, registration_bytes)))
    assert wrong_family.failure is not None and "expected a address_change" in wrong_family.failure.message
    assert len(publisher.on("nir.dead-letters")) == 2


def test_the_clock_decides_what_is_in_the_future(hub: Hub) -> None:
    publisher = RecordingPublisher()
    hub.clock = lambda: dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    e = event(synthetic_person(), fact_date=dt.date(2026, 3, 1))
    e["sentAt"] = "2026-01-01T00:00:00Z"
    asyncio.run(RegistrationFlow(hub, publisher).process(message(e)))
    assert "NIR-DATE-001" in {v["code"] for v in receipt(publisher)["violations"]}


def test_a_late_registration_is_accepted_with_a_warning_and_counted_as_late(hub: Hub) -> None:
    publisher = RecordingPublisher()
    e = event(synthetic_person(), fact_date=dt.date.today() - dt.timedelta(days=100))
    processed = asyncio.run(RegistrationFlow(hub, publisher).process(message(e)))
    assert processed.outcome is ReceiptOutcome.ACCEPTED_WITH_WARNINGS
    [violation] = receipt(publisher)["violations"]
    assert (violation["code"], violation["severity"]) == ("NIR-DEADLINE-001", "WARNING")
    assert violation["messageNb"].startswith("registrert mer enn 2 måneder")
    with hub.session_factory() as session:
        row = session.scalars(select(RegistrationRecord)).one()
    assert row.late and row.warnings[0]["code"] == "NIR-DEADLINE-001"
