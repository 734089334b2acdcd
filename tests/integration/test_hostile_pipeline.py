"""Hostile data through the flows, on SQLite and PostgreSQL (which refuses values SQLite stores):
every message ends as an outcome, a ticket or a quarantined ticket, never as an exception; what
leaves the hub is bounded; a message the worker keeps dying on is set aside."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import func, select

from hub.agents import runner
from hub.bootstrap import Hub
from hub.domain.events import Origin
from hub.domain.transfer import Message
from hub.errors import MessageTooLarge, RegisterRefused
from hub.pipeline import checkpoint
from hub.pipeline.deadletter import (
    H_ERROR_CODE,
    H_ERROR_MESSAGE,
    H_OFFSET,
    H_OMITTED,
    H_PARTITION,
    H_TOPIC,
)
from hub.pipeline.ports import Outgoing
from hub.register.database import make_session_factory
from hub.register.models import CaseTicket, UnfinishedWork
from hub.schemas.codec import catalog
from hub.schemas.contract import from_json
from hub.wiring import dead_letter_flow, registration_flow
from tests.conftest import pipeline_hub
from tests.fakes import RecordingPublisher
from tests.hostile import ACCEPTABLE, NEAR_BROKER_LIMIT, _absurd, _encode, identifiers_in

TOPIC = "nir.source.oslo-fagsystem.registrations"
DEAD_LETTERS = "nir.dead-letters"
ABSURD = list(_absurd(catalog(), random.Random(3), "oslo-fagsystem"))


@pytest.fixture
def hub(database_url: str) -> Hub:
    return pipeline_hub(database_url)


def tickets(hub: Hub) -> list[CaseTicket]:
    with make_session_factory(hub.engine)() as session:
        return list(session.scalars(select(CaseTicket).order_by(CaseTicket.id)))


def test_every_absurd_event_is_rejected_with_a_rule_and_its_dead_letter_becomes_a_ticket(hub: Hub) -> None:
    publisher = RecordingPublisher()
    flow = registration_flow(hub, publisher)
    messages = [
        Message(Origin(TOPIC, 0, i), b"k", _encode(catalog(), d)) for i, (_, d, _) in enumerate(ABSURD)
    ]
    processed = asyncio.run(flow.process_batch(messages))
    outcomes = [(d, p.outcome.value) for (d, _, _), p in zip(ABSURD, processed, strict=True)]
    assert [d for d, o in outcomes if o != "REJECTED"] == [d for d, _, _ in ABSURD if d in ACCEPTABLE]
    codes = {p.failure.code for p in processed if p.failure}
    assert "NIR-INTERNAL" not in codes and not any(c.startswith("NIR-REGISTER") for c in codes), codes

    letters = publisher.on(DEAD_LETTERS)
    assert len(letters) == len(ABSURD) - len(ACCEPTABLE)
    tickets_flow = dead_letter_flow(hub, RecordingPublisher())
    for offset, (_, key, value, headers) in enumerate(letters):
        raw = tuple((name, text.encode()) for name, text in headers.items())
        asyncio.run(tickets_flow.process(Message(Origin(DEAD_LETTERS, 0, offset), key, value, raw)))
    found = tickets(hub)
    assert len(found) == len(letters) and {t.kind for t in found} == {"dead_letter"}
    carried = {i for _, _, ids in ABSURD for i in ids}
    for t in found:
        assert t.municipality in (None, "0301")
        assert t.source_system is None or len(t.source_system) <= 64
        written = " ".join(str(v) for v in (t.error_message, t.source_system, t.municipality, t.event_type))
        assert not identifiers_in(written) and not any(i in written for i in carried)
    receipts = " ".join(
        str(catalog().decode(v).datum) for _, _, v, _ in publisher.on("nir.source.oslo-fagsystem.receipts")
    )
    assert not identifiers_in(receipts)


def test_a_dead_letter_with_headers_and_fields_no_column_can_hold_still_becomes_a_ticket(hub: Hub) -> None:
    flow = dead_letter_flow(hub, RecordingPublisher())
    value = _encode(catalog(), next(d for desc, d, _ in ABSURD if desc == "municipality of five digits"))
    headers = (
        (H_TOPIC, b"t" * 400),
        (H_PARTITION, b"\xff\xfe"),
        (H_OFFSET, b"99999999999999999999999"),
        (H_ERROR_CODE, b"NIR-\x00" + b"X" * 100),
        (H_ERROR_MESSAGE, ("31129956715 " + "m\x00" * 5000).encode()),
    )
    ticket_id = asyncio.run(flow.process(Message(Origin(DEAD_LETTERS, 1, 5), b"k", value, headers)))
    [ticket] = tickets(hub)
    assert ticket.id == ticket_id and ticket.kind == "dead_letter"
    assert ticket.original_partition is None and ticket.original_offset is None
    assert ticket.municipality is None  # "03011" cut to four digits would name another municipality
    assert "\x00" not in (ticket.error_message or "") and "31129956715" not in (ticket.error_message or "")
    assert len(ticket.error_code or "") <= 32 and len(ticket.original_topic or "") <= 249


def test_a_dead_letter_the_register_refuses_is_quarantined_and_a_redelivery_adds_nothing(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(*_args: Any, **_kwargs: Any) -> Any:
        raise RegisterRefused("the register refused a value: DataError")

    monkeypatch.setattr("hub.support.dead_letters.tickets_from_dead_letters", refused)
    flow = dead_letter_flow(hub, RecordingPublisher())
    message = Message(Origin(DEAD_LETTERS, 2, 9), b"\x00key", b"\x00\x01 any bytes")
    first = asyncio.run(flow.process(message))
    assert asyncio.run(flow.process(message)) == first
    [ticket] = tickets(hub)
    assert (ticket.kind, ticket.error_code, ticket.status) == ("quarantined", "NIR-QUARANTINE", "open")
    assert "NIR-REGISTER-REFUSED" in (ticket.error_message or "")
    assert (ticket.original_topic, ticket.original_partition, ticket.original_offset) == (DEAD_LETTERS, 2, 9)
    assert ticket.original_value == b"\x00\x01 any bytes"


@pytest.mark.parametrize(
    ("column", "value"),
    [("source_system", "oslo\x00"), ("municipality", "03011"), ("national_id", "1" * 17)],
)
def test_the_register_refusing_a_value_is_a_non_retriable_refusal_on_postgresql(
    hub: Hub, column: str, value: str
) -> None:
    now = hub.clock()
    ticket = CaseTicket(
        status="open", kind="manual", first_failed_at=now, last_failed_at=now, **{column: value}
    )

    def write() -> None:
        with hub.unit_of_work() as uow:
            uow.session.add(ticket)
            uow.commit()

    if hub.engine.dialect.name == "postgresql":
        with pytest.raises(RegisterRefused) as refused:
            write()
        assert not refused.value.retriable and value not in refused.value.message
    else:  # SQLite stores what PostgreSQL refuses: why the hub checks values before the register does
        write()


def test_an_event_too_large_to_dead_letter_whole_goes_by_reference_and_its_ticket_says_where(
    hub: Hub,
) -> None:
    publisher = RecordingPublisher()
    flow = registration_flow(hub, publisher)
    value = catalog().current("registration_event").header + b"\x02" * NEAR_BROKER_LIMIT
    asyncio.run(flow.process_batch([Message(Origin(TOPIC, 4, 77), b"k" * 5000, value)]))
    [(_, key, letter, headers)] = publisher.on(DEAD_LETTERS)
    assert letter == b"" and key is None and headers[H_OMITTED] == str(len(value))
    assert headers[H_TOPIC] == TOPIC and headers[H_OFFSET] == "77"
    raw = tuple((n, t.encode()) for n, t in headers.items())
    asyncio.run(
        dead_letter_flow(hub, RecordingPublisher()).process(
            Message(Origin(DEAD_LETTERS, 0, 0), key, letter, raw)
        )
    )
    [ticket] = tickets(hub)
    assert f"{len(value)} bytes" in (
        ticket.error_message or ""
    ) and f"on {TOPIC} partition 4 at offset 77" in (ticket.error_message or "")


class _RefusesLarge(RecordingPublisher):
    """A broker whose topics take less than NIR_MAX_MESSAGE_BYTES."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    async def send_many(self, messages: Sequence[Outgoing]) -> None:
        if any(len(m.value) > self.limit for m in messages):
            raise MessageTooLarge("the broker refused a message as too large")
        await super().send_many(messages)


def test_a_broker_refusing_a_message_as_too_large_is_no_outage_the_dead_letter_goes_by_reference(
    hub: Hub,
) -> None:
    publisher = _RefusesLarge(limit=20_000)
    flow = registration_flow(hub, publisher)
    value = catalog().current("registration_event").header + b"\x02" * 50_000
    processed = asyncio.run(
        asyncio.wait_for(flow.process_batch([Message(Origin(TOPIC, 0, 3), b"k", value)]), 30)
    )
    assert processed[0].outcome.value == "REJECTED"
    [(_, _, letter, headers)] = publisher.on(DEAD_LETTERS)
    assert letter == b"" and headers[H_OMITTED] == str(len(value))
    assert len(publisher.on("nir.source.oslo-fagsystem.receipts")) == 1


# --- The crash guard ---------------------------------------------------------------------


class _Crashed(BaseException):
    """Stands for the process ending (os._exit) in these tests."""


class _PoisonedFlow:
    """Processes messages by recording them, and dies on the one whose value is b"poison"."""

    def __init__(self) -> None:
        self.done: list[int] = []
        self.set_aside_: list[tuple[int, int]] = []

    async def process_batch(self, messages: list[Message]) -> list[None]:
        for message in messages:
            if message.value == b"poison":
                raise RuntimeError("a fault the flow did not foresee")
            self.done.append(message.origin.offset)
        return [None for _ in messages]

    async def set_aside(self, message: Message, times: int) -> None:
        self.set_aside_.append((message.origin.offset, times))


def test_a_message_the_worker_keeps_dying_on_is_set_aside_and_the_partition_moves_on(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    def exit_(code: int) -> None:
        raise _Crashed(code)

    monkeypatch.setattr(checkpoint.os, "_exit", exit_)
    monkeypatch.setattr(checkpoint.logging, "shutdown", lambda: None)
    hub.settings = dataclasses.replace(hub.settings, crash_attempts=3)
    messages = [Message(Origin(TOPIC, 0, o), None, b"poison" if o == 13 else b"ok") for o in range(10, 20)]
    other = [Message(Origin(TOPIC, 1, o), None, b"ok") for o in range(5)]
    flow = _PoisonedFlow()
    deaths = 0
    for _ in range(10):  # each pass is a restarted worker that is given the same messages again
        try:
            asyncio.run(runner.run_guarded(hub, flow, "test", messages + other))
            break
        except _Crashed:
            deaths += 1
    # Once in the batch, then three times on its own: then set aside, unread.
    assert deaths == 4
    assert flow.set_aside_ == [(13, 3)]
    assert sorted(set(flow.done)) == [*range(5), *range(10, 13), *range(14, 20)]
    assert flow.done.count(10) == 5  # delivered again after every death: the register dedupes
    assert flow.done.count(19) == 1
    with make_session_factory(hub.engine)() as session:
        assert session.scalar(select(func.count()).select_from(UnfinishedWork)) == 0


def test_a_batch_that_finishes_leaves_no_mark_and_costs_no_single_steps(hub: Hub) -> None:
    flow = _PoisonedFlow()
    messages = [Message(Origin(TOPIC, p, o), None, b"ok") for p in range(3) for o in range(100, 110)]
    asyncio.run(runner.run_guarded(hub, flow, "test", messages))
    asyncio.run(runner.run_guarded(hub, flow, "test", messages))  # a redelivery after a rebalance
    assert len(flow.done) == 60 and flow.set_aside_ == []
    with make_session_factory(hub.engine)() as session:
        assert session.scalar(select(func.count()).select_from(UnfinishedWork)) == 0


def test_the_registration_flow_answers_a_set_aside_message_with_a_receipt_and_a_dead_letter(hub: Hub) -> None:
    publisher = RecordingPublisher()
    flow = registration_flow(hub, publisher)
    asyncio.run(flow.set_aside(Message(Origin(TOPIC, 0, 8), b"k", b"\xc3\x01anything"), 3))
    [(_, _, value, headers)] = publisher.on(DEAD_LETTERS)
    assert value == b"\xc3\x01anything" and headers[H_ERROR_CODE] == "NIR-POISON"
    [(_, _, receipt, _)] = publisher.on("nir.source.oslo-fagsystem.receipts")
    datum = catalog().decode(receipt).datum
    assert datum["outcome"] == "REJECTED" and datum["violations"][0]["code"] == "NIR-POISON"
    assert (datum["originalPartition"], datum["originalOffset"]) == (0, 8)


def test_a_dead_letter_the_register_refuses_in_a_batch_is_quarantined_alone(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hub.support import dead_letters

    original = dead_letters.tickets_from_dead_letters

    def refuses_one(session: Any, catalog: Any, letters: Any, **kwargs: Any) -> Any:
        if any(letter.value == b"refused" for letter in letters):
            raise RegisterRefused("the register refused a value: DataError")
        return original(session, catalog, letters, **kwargs)

    monkeypatch.setattr(dead_letters, "tickets_from_dead_letters", refuses_one)
    batch = [Message(Origin(DEAD_LETTERS, 0, o), None, v) for o, v in enumerate([b"a", b"refused", b"b"])]
    asyncio.run(dead_letter_flow(hub, RecordingPublisher()).process_batch(batch))
    # Dead letters the hub did not write (no origin headers) point to where they are themselves.
    kinds = {(t.original_topic, t.original_offset): t.kind for t in tickets(hub)}
    assert kinds == {
        (DEAD_LETTERS, 0): "dead_letter",
        (DEAD_LETTERS, 1): "quarantined",
        (DEAD_LETTERS, 2): "dead_letter",
    }


def test_undecodable_messages_in_a_batch_are_answered_in_order_with_the_rest(hub: Hub) -> None:
    from tests.factories import event, synthetic_person

    publisher = RecordingPublisher()
    flow = registration_flow(hub, publisher)
    good = [catalog().encode("registration_event", from_json(event(synthetic_person()))) for _ in range(2)]
    values = [good[0], b"\xc3\x01garbage", b"", good[1]]
    processed = asyncio.run(
        flow.process_batch([Message(Origin(TOPIC, 0, o), b"k", v) for o, v in enumerate(values)])
    )
    assert [p.outcome.value for p in processed] == ["ACCEPTED", "REJECTED", "REJECTED", "ACCEPTED"]
    receipts = [
        catalog().decode(v).datum for _, _, v, _ in publisher.on("nir.source.oslo-fagsystem.receipts")
    ]
    assert [(r["originalOffset"], r["outcome"]) for r in receipts] == [
        (0, "ACCEPTED"),
        (1, "REJECTED"),
        (2, "REJECTED"),
        (3, "ACCEPTED"),
    ]
    assert [r["violations"][0]["code"] for r in receipts[1:3]] == ["NIR-DECODE", "NIR-DECODE"]
    assert len(publisher.on(DEAD_LETTERS)) == 2
