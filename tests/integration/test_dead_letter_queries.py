"""Every query the dead-letter flow and the desk's incident views run against the tickets uses an
index (issue 32): a flood's dead letters are ticketed as fast on a table of 100,000 tickets as on
an empty one only if no look-up reads the whole table, and one incident's tickets are listed and
resolved without reading the others'. Listing every incident reads every active ticket (it
groups them), from the incident index alone. Checked with PostgreSQL's EXPLAIN of the statements
actually sent, on a table filled by the database itself (one fill for the module)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, event, func, select

from hub.bootstrap import Hub
from hub.domain.events import Origin
from hub.domain.transfer import Failure, Message
from hub.pipeline.deadletter import H_PARTITION, dead_letter_headers
from hub.register.database import make_session_factory
from hub.register.models import CaseTicket
from hub.schemas.codec import REGISTRATION
from hub.schemas.contract import from_json
from hub.support.incidents import (
    RESOLVE_BATCH,
    Cause,
    find_incident,
    resolve_batch,
    resolve_incident,
)
from hub.wiring import dead_letter_flow
from tests.conftest import PostgresServer, pipeline_hub
from tests.factories import event as registration_event
from tests.factories import synthetic_person
from tests.fakes import RecordingPublisher
from tests.integration.test_incidents import T0, _fail
from tests.ticket_table import FILLED_TOPICS, filled_event_id, filled_register, flood

FILLED = 100_000
DEAD_LETTERS = "nir.dead-letters"


@pytest.fixture(scope="module")
def filled_url(postgres_server: PostgresServer) -> str:
    return filled_register(postgres_server.create_database(), FILLED)


@pytest.fixture
def hub(filled_url: str) -> Hub:
    return pipeline_hub(filled_url)


@contextlib.contextmanager
def sent_by(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """The SQL the engine sends meanwhile, with its parameters (an executemany's first set)."""
    sent: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        sent.append((statement, parameters[0] if many else parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", capture)


def _letter(origin: Origin, value: bytes, at: int, *, partition: bool = True) -> Message:
    """A dead letter of the message read at `origin`, itself at `at` on the dead-letter topic;
    without the header of its partition if not `partition`."""
    failure = Failure("rule", "NIR-SOURCE-002", "NIR-SOURCE-002: the municipality is not the source's")
    now = dt.datetime(2026, 12, 2, 9, tzinfo=dt.UTC)
    headers = [(n, v) for n, v in dead_letter_headers(origin, failure, now) if partition or n != H_PARTITION]
    return Message(Origin(DEAD_LETTERS, 1, at), b"k", value, tuple(headers))


def _explained(url: str, statement: str, parameters: Any) -> str:
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as connection:
        rows = connection.execute(f"EXPLAIN {statement}", parameters).fetchall()  # type: ignore[arg-type]
        connection.rollback()
    return "\n".join(row[0] for row in rows)


def test_every_look_up_and_update_of_tickets_the_dead_letter_flow_makes_uses_an_index(
    hub: Hub, filled_url: str
) -> None:
    catalog = hub.catalog
    topic = FILLED_TOPICS[2]
    # A batch that meets the filled table every way the flow looks: undecodable messages new and
    # failing again where a filled ticket was read (by origin), events new and failing again
    # under a filled ticket's event id (by event id), a dead letter without its partition, and
    # a redelivered dead letter.
    again_event = registration_event(synthetic_person(), municipality="4601", event_id=filled_event_id(6))
    batch = [
        *flood(catalog, topic, 40, dead_letters=DEAD_LETTERS),
        _letter(Origin(FILLED_TOPICS[2], 0, 18), b"\x00 garbage", 100),  # filled ticket 18: 18 % 6 = 0
        _letter(Origin(FILLED_TOPICS[2], 1, 7), b"\x00 more garbage", 101, partition=False),
        _letter(Origin(topic, 3, 5_000_000), catalog.encode(REGISTRATION, from_json(again_event)), 102),
    ]
    batch.append(batch[-1])
    with make_session_factory(hub.engine)() as session:
        before = session.scalar(select(func.count()).select_from(CaseTicket))
    with sent_by(hub.engine) as statements:
        ids = asyncio.run(dead_letter_flow(hub, RecordingPublisher()).process_batch(batch))
    with make_session_factory(hub.engine)() as session:
        after = session.scalar(select(func.count()).select_from(CaseTicket))
        again = session.get_one(CaseTicket, ids[-1])
    # 32 undecodable and 4 events of the flood are new, its 4 second failures attach; the
    # filled origin's message is that ticket's, failing again (not counted); the filled event,
    # sent again, is a second failure of its ticket, redelivered (not counted again); the
    # letter without a partition is new.
    assert (after or 0) - (before or 0) == 37
    assert ids[40] == 18 and (again.event_id, again.attempts) == (filled_event_id(6), 2)
    assert len(set(ids)) == 39 and ids[-1] == ids[-2]

    on_tickets = [
        (s, p)
        for s, p in statements
        if s.lstrip().upper().startswith(("SELECT", "UPDATE")) and "case_tickets" in s
    ]
    assert any(s.lstrip().upper().startswith("UPDATE") for s, _ in on_tickets)
    scanned = [s for s, p in on_tickets if "Seq Scan on case_tickets" in _explained(filled_url, s, p)]
    assert scanned == []


def test_the_filled_table_is_large_enough_that_a_look_up_without_an_index_would_read_all_of_it(
    filled_url: str,
) -> None:
    # The check above means something only if PostgreSQL, asked for tickets by a column no index
    # covers, reads the whole table.
    plan = _explained(
        filled_url, "SELECT id FROM case_tickets WHERE error_message = %(m)s", {"m": "not readable"}
    )
    assert "Seq Scan on case_tickets" in plan


# --- the desk's incident views (issue 32) ------------------------------------------------------
# The filled tickets are four incidents, one per source, of 20,000 active tickets each (and 5,000
# resolved); the tests add their own small incident of 30 beside them.

WINDOW = dt.timedelta(hours=24)
FILLED_CAUSE = Cause("filled-1", "NIR-DECODE-001", None, None)


def _on_tickets(statements: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return [(s, p) for s, p in statements if "case_tickets" in s]


def _scanning_tickets(url: str, statements: list[tuple[str, Any]]) -> list[str]:
    """The plans that read the whole ticket table, of those statements on it."""
    plans = [_explained(url, s, p) for s, p in _on_tickets(statements)]
    return [p for p in plans if "Seq Scan on case_tickets" in p]


def test_listing_every_incident_reads_the_active_tickets_through_the_incident_index(filled_url: str) -> None:
    hub = pipeline_hub(filled_url)
    with sent_by(hub.engine) as statements, hub.unit_of_work() as uow:
        found = uow.incidents.find(window=WINDOW)
    assert {i.cause.as_tuple(): i.tickets for i in found if i.cause.source_system == "filled-1"} == {
        FILLED_CAUSE.as_tuple(): 20_000
    }
    [(statement, parameters)] = _on_tickets(statements)
    # The statuses are written into the statement: the index holds the active tickets only, and
    # a plan made for any parameters could not use it.
    assert "IN ('open', 'replayed')" in statement
    plan = _explained(filled_url, statement, parameters)
    # Grouping, it reads every active ticket: from the index alone, not from the table.
    assert "Seq Scan on case_tickets" not in plan
    assert "ix_case_tickets_incident on case_tickets" in plan


def test_one_large_incident_is_listed_and_its_batches_found_and_resolved_through_an_index(
    filled_url: str,
) -> None:
    hub = pipeline_hub(filled_url)
    with sent_by(hub.engine) as statements, hub.unit_of_work() as uow:
        incident = find_incident(uow, window=WINDOW, cause=FILLED_CAUSE)
        batch = uow.incidents.tickets_of(incident, RESOLVE_BATCH)
        resolved = resolve_batch(uow, batch, "fixed", T0, username="s")
        # Not committed: the filled table stays as the other tests expect it.
    assert (incident.tickets, len(batch), resolved) == (20_000, RESOLVE_BATCH, RESOLVE_BATCH)
    kinds = [s.lstrip().split()[0].upper() for s, _ in _on_tickets(statements)]
    assert kinds == ["SELECT", "SELECT", "UPDATE"]
    assert _scanning_tickets(filled_url, statements) == []


def test_one_incident_among_100000_other_tickets_is_listed_and_resolved_through_an_index(
    filled_url: str,
) -> None:
    hub = pipeline_hub(filled_url)
    # The filled tickets' own source and error code (25,000 and 100,000 of them): only the
    # event type and release tell this incident's 30 apart.
    release = dict(source="filled-0", code="NIR-DECODE-001", version="5.1.0")
    made = [_fail(hub, T0 + dt.timedelta(minutes=i), person=synthetic_person(), **release) for i in range(30)]
    cause = Cause("filled-0", "NIR-DECODE-001", "TRAINING_CLAIM", "5.1.0")
    with sent_by(hub.engine) as statements, hub.unit_of_work() as uow:
        incident = find_incident(uow, window=WINDOW, cause=cause)
        batch = uow.incidents.tickets_of(incident, RESOLVE_BATCH)
    assert (incident.tickets, batch) == (30, made)
    with sent_by(hub.engine) as resolving:
        closed = list(resolve_incident(hub.unit_of_work, incident, "fixed", T0, username="s"))
    assert closed == [30]
    kinds = [s.lstrip().split()[0].upper() for s, _ in _on_tickets(resolving)]
    assert kinds == ["SELECT", "UPDATE", "SELECT"]  # a batch found and closed, then none left
    assert _scanning_tickets(filled_url, statements + resolving) == []
    # The incident's own index finds its 30: the source's and the code's would each give
    # PostgreSQL 25,000 and 100,000 tickets to read and filter.
    [listing, *_] = _on_tickets(statements)
    assert "ix_case_tickets_incident on case_tickets" in _explained(filled_url, *listing)


def test_the_gateway_reads_one_sources_incidents_from_its_view_through_an_index(filled_url: str) -> None:
    # The vendor's `GET /v1/incidents`: its own source's active tickets, through the view the
    # gateway's role may read (`gateway_incident_tickets`), grouped as the desk groups them.
    from hub.gateway.incidents import SourceIncidents

    gateway = SourceIncidents(filled_url, WINDOW)
    try:
        assert gateway.engine is not None and gateway.units is not None
        with sent_by(gateway.engine) as statements:
            found = gateway._read(gateway.units, "filled-1")
    finally:
        gateway.close()
    assert [(i["errorCode"], i["tickets"]) for i in found] == [("NIR-DECODE-001", 20_000)]
    [(statement, parameters)] = [(s, p) for s, p in statements if "gateway_incident_tickets" in s]
    plan = _explained(filled_url, statement, parameters)
    assert "Seq Scan on case_tickets" not in plan, plan
