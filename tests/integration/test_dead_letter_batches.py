"""A batch of dead letters is decided as if its letters came one at a time (issue 32: the batch
is read and written set-based): two letters of one event, or of one message, in a batch are one
ticket, counted as they would have been one by one."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import func, select

from hub.bootstrap import Hub
from hub.domain.events import Origin
from hub.domain.transfer import Failure, Message
from hub.pipeline.deadletter import dead_letter_headers
from hub.register.database import make_session_factory
from hub.register.models import CaseTicket, TicketOutcome
from hub.schemas.codec import REGISTRATION
from hub.schemas.contract import from_json
from hub.wiring import dead_letter_flow
from tests.conftest import pipeline_hub
from tests.factories import event, synthetic_person
from tests.fakes import RecordingPublisher

DEAD_LETTERS = "nir.dead-letters"
NOW = dt.datetime(2026, 12, 2, 9, tzinfo=dt.UTC)


def _letters(hub: Hub, topic: str) -> list[Message]:
    """One event failing at two origins (its second dead letter redelivered, and the message at
    the first origin decided again), and an undecodable message dead-lettered twice."""
    failure = Failure("rule", "NIR-SOURCE-002", "NIR-SOURCE-002: the municipality is not the source's")
    value = hub.catalog.encode(REGISTRATION, from_json(event(synthetic_person(), municipality="4601")))

    def letter(at: int, origin: tuple[int, int], body: bytes) -> Message:
        headers = tuple(dead_letter_headers(Origin(topic, *origin), failure, NOW))
        return Message(Origin(DEAD_LETTERS, 0, at), b"k", body, headers)

    return [
        letter(0, (0, 1), value),
        letter(1, (0, 2), value),  # sent again, failed again: a second failure
        letter(1, (0, 2), value),  # that dead letter redelivered
        letter(2, (1, 5), b"\x00garbage"),
        letter(3, (1, 5), b"\x00garbage"),  # the same message decided again
        letter(4, (0, 1), value),  # the message the ticket was opened for, decided again
    ]


def _tickets(hub: Hub, topic: str) -> list[tuple[int, str | None, int, int]]:
    """(id, event id, attempts, failures in its story) of the topic's tickets."""
    with make_session_factory(hub.engine)() as session:
        failures = (
            select(func.count())
            .where(TicketOutcome.ticket_id == CaseTicket.id, TicketOutcome.kind == "failed")
            .scalar_subquery()
        )
        rows = session.execute(
            select(CaseTicket.id, CaseTicket.event_id, CaseTicket.attempts, failures)
            .where(CaseTicket.original_topic == topic)
            .order_by(CaseTicket.id)
        )
        return [(i, e, a, f) for i, e, a, f in rows]


def test_two_dead_letters_of_one_event_or_one_message_in_a_batch_are_one_ticket_counted_as_one_by_one(
    database_url: str,
) -> None:
    hub = pipeline_hub(database_url)
    flow = dead_letter_flow(hub, RecordingPublisher())
    batched, alone = "nir.source.oslo-fagsystem.registrations", "nir.source.vestland-fagsystem.registrations"
    ids = asyncio.run(flow.process_batch(_letters(hub, batched)))
    one_by_one = [asyncio.run(flow.process(m)) for m in _letters(hub, alone)]
    [(event_ticket, event_id, attempts, failures), (garbage, none, once, failed_once)] = _tickets(
        hub, batched
    )
    assert ids == [event_ticket] * 3 + [garbage] * 2 + [event_ticket]
    assert event_id is not None and (attempts, failures) == (2, 2)
    assert (none, once, failed_once) == (None, 1, 1)
    # The same letters one at a time end the same.
    shape = [(e is None, a, f) for _, e, a, f in _tickets(hub, alone)]
    assert shape == [(e is None, a, f) for _, e, a, f in _tickets(hub, batched)]
    assert [one_by_one.index(i) for i in one_by_one] == [ids.index(i) for i in ids]
