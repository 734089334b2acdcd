"""A vendor's bad release, on the real broker (issue 32, "How it is checked"): 20,000 messages that
cannot be decoded and 5,000 events a rule refuses, from two sources, become exactly 25,000
tickets in the expected incidents, none lost or doubled, and resolving one incident closes
exactly its tickets.

The flood is preloaded on the sources' registrations topics by one batched producer and worked
through by one worker; the test waits until the registrations and then the dead letters they
caused are committed to their ends. PostgreSQL only: the flood is the register PostgreSQL is
for, and SQLite's ticketing is measured by `bench/hostile.py`, not worth this file's minutes
twice in CI.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select

from hub.dev.localrun import LocalBroker
from hub.kafka.admin import committed_offsets, end_offsets
from hub.kafka.connection import KafkaConnection
from hub.register.database import make_engine, make_session_factory
from hub.register.migrate import upgrade
from hub.register.models import AuditEntry, CaseTicket
from hub.schemas.codec import REGISTRATION
from hub.schemas.contract import from_json
from hub.support.incidents import Cause, resolve_incident
from tests.conftest import PostgresServer, make_settings
from tests.factories import event, synthetic_person
from tests.harness import HubHarness

pytestmark = pytest.mark.timeout(600)

OSLO, VESTLAND = "oslo-fagsystem", "vestland-fagsystem"
UNDECODABLE = {OSLO: 12_000, VESTLAND: 8_000}
# Rule failures by source and release: the municipality is not the source's (NIR-SOURCE-002).
REFUSED = {(OSLO, "5.1.0"): 2_000, (OSLO, "5.2.0"): 1_000, (VESTLAND, "5.2.0"): 2_000}
ELSEWHERE = {OSLO: "4601", VESTLAND: "0301"}
MESSAGES = sum(UNDECODABLE.values()) + sum(REFUSED.values())


@pytest.fixture
def flood_hub(
    kafka_broker: LocalBroker, postgres_server: PostgresServer, tmp_path: Path
) -> Iterator[HubHarness]:
    url = postgres_server.create_database()
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    with HubHarness(make_settings(kafka_broker, url, tmp_path), tmp_path) as harness:
        yield harness


async def _produce(kafka: KafkaConnection, messages: list[tuple[str, bytes]]) -> list[tuple[str, int, int]]:
    """Send each to its topic in large batches; where each was written, in order."""
    producer = AIOKafkaProducer(
        **kafka.aiokafka(), acks="all", linger_ms=20, max_batch_size=1_000_000, max_request_size=2_000_000
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, value) for topic, value in messages]
        return [(md.topic, md.partition, md.offset) for md in await asyncio.gather(*futures)]
    finally:
        await producer.stop()


def _committed(harness: HubHarness, topics: list[str]) -> bool:
    """Every partition of `topics` committed by the worker's group to the end it has now."""
    ends = asyncio.run(end_offsets(harness.admin.kafka, topics))
    done = asyncio.run(committed_offsets(harness.admin.kafka, harness.settings.app_id))
    return all(done.get(tp, 0) >= end for tp, end in ends.items() if end > 0)


def _ticket_count(harness: HubHarness) -> int:
    with make_session_factory(harness.hub.engine)() as session:
        return session.scalar(select(func.count()).select_from(CaseTicket)) or 0


def test_a_flood_of_25000_failures_from_two_sources_becomes_exactly_its_tickets_in_the_expected_incidents(
    flood_hub: HubHarness,
) -> None:
    harness = flood_hub
    names, catalog = harness.hub.names, harness.hub.catalog
    messages: list[tuple[str, bytes]] = []
    for source, count in UNDECODABLE.items():
        # Not Avro of the registry's fingerprint: a ticket each, found by where it was read.
        messages += [
            (names.registrations(source), b"\x00\x13not a registration %d" % i) for i in range(count)
        ]
    event_ids = set()
    for (source, version), count in REFUSED.items():
        for _ in range(count):
            refused = event(synthetic_person(), source=source, municipality=ELSEWHERE[source])
            refused["fagsystemVersion"] = version
            event_ids.add(refused["eventId"])
            messages.append((names.registrations(source), catalog.encode(REGISTRATION, from_json(refused))))
    started = time.monotonic()
    sent = asyncio.run(_produce(harness.admin.kafka, messages))
    produced = time.monotonic() - started

    harness.start_worker()
    registrations = [names.registrations(s) for s in UNDECODABLE]
    harness.wait_until(lambda: _committed(harness, registrations), timeout=300, what="the flood read")
    # Every dead letter of the flood is on its topic before its message is committed: the dead
    # letters' ends, read now, are all of them.
    harness.wait_until(lambda: _committed(harness, [names.dead_letters]), timeout=300, what="the tickets")
    worked = time.monotonic() - started - produced
    print(f"{MESSAGES:,} failures produced in {produced:.1f} s, ticketed by one worker in {worked:.1f} s")
    assert harness.workers[0].running, harness.worker_logs()[-3000:]

    with make_session_factory(harness.hub.engine)() as session:
        tickets = session.execute(
            select(CaseTicket.original_topic, CaseTicket.original_partition, CaseTicket.original_offset,
                   CaseTicket.event_id, CaseTicket.attempts, CaseTicket.status)
        ).all()  # fmt: skip
    # Nothing lost, nothing doubled: one ticket per message, each at its own message's place, each
    # refused event in one ticket, failed once.
    assert len(tickets) == MESSAGES
    assert {(t.original_topic, t.original_partition, t.original_offset) for t in tickets} == set(sent)
    assert sorted(t.event_id for t in tickets if t.event_id is not None) == sorted(event_ids)
    assert Counter((t.attempts, t.status) for t in tickets) == {(1, "open"): MESSAGES}

    window = dt.timedelta(hours=harness.settings.incident_window_hours)
    with harness.hub.unit_of_work() as uow:
        incidents = uow.incidents.find(window=window)
    code = {i.cause.error_code for i in incidents if i.cause.event_type is None}
    assert len(code) == 1, code  # the decoder's code for bytes that are no registration
    [undecodable] = code
    expected = {
        **{(s, undecodable, None, None): n for s, n in UNDECODABLE.items()},
        **{(s, "NIR-SOURCE-002", "TRAINING_CLAIM", v): n for (s, v), n in REFUSED.items()},
    }
    assert {i.cause.as_tuple(): i.tickets for i in incidents} == expected
    assert len(incidents) == len(expected)  # one incident per cause: the flood took minutes, not a window
    by_cause = {i.cause.as_tuple(): i for i in incidents}
    assert by_cause[(OSLO, "NIR-SOURCE-002", "TRAINING_CLAIM", "5.1.0")].persons == 2_000

    # Resolving the release 5.1.0's incident closes its 2,000 tickets, two transactions of 1,000,
    # each audited, and no other ticket.
    chosen = by_cause[(OSLO, "NIR-SOURCE-002", "TRAINING_CLAIM", "5.1.0")]
    cause = Cause(*chosen.cause.as_tuple())
    with make_session_factory(harness.hub.engine)() as session:
        its_tickets = set(session.scalars(select(CaseTicket.id).where(*cause.matches())))
    now = harness.hub.clock()
    closed = list(resolve_incident(harness.hub.unit_of_work, chosen, "fixed in 5.1.1", now, username="s"))
    assert closed == [1_000, 1_000]
    with make_session_factory(harness.hub.engine)() as session, harness.hub.unit_of_work() as uow:
        after = uow.incidents.find(window=window)
        resolved = set(session.scalars(select(CaseTicket.id).where(CaseTicket.status == "resolved")))
        audited = Counter(session.execute(select(AuditEntry.ticket_id, AuditEntry.action, AuditEntry.detail)))
    assert {i.cause.as_tuple(): i.tickets for i in after} == {
        c: n for c, n in expected.items() if c != chosen.cause.as_tuple()
    }
    assert resolved == its_tickets and len(its_tickets) == chosen.tickets
    assert audited == {(i, "resolved", "incident"): 1 for i in its_tickets}
    assert _ticket_count(harness) == MESSAGES
