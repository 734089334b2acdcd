"""The incident queries use an index on PostgreSQL (issue 32): one incident's tickets, listed
by its cause or resolved a batch at a time, are found without reading a table of 100,000 other
tickets (EXPLAIN of the statements actually sent shows no sequential scan of `case_tickets`)."""

from __future__ import annotations

import datetime as dt

import pytest

from hub.support.incidents import Cause, find_incident, incident_tickets
from tests.conftest import PostgresServer, pipeline_hub
from tests.factories import synthetic_person
from tests.integration.test_dead_letter_queries import _explained, sent_by
from tests.integration.test_incidents import T0, _fail
from tests.ticket_table import filled_register

FILLED = 100_000


@pytest.fixture(scope="module")
def filled_url(postgres_server: PostgresServer) -> str:
    return filled_register(postgres_server.create_database(), FILLED)


def test_one_incident_among_100000_other_tickets_is_listed_and_resolved_through_an_index(
    filled_url: str,
) -> None:
    hub = pipeline_hub(filled_url)
    # The filled tickets' own source and error code (25,000 and 100,000 of them): only the
    # event type and release tell this incident's 30 apart.
    release = dict(source="filled-0", code="NIR-DECODE-001", version="5.1.0")
    made = [_fail(hub, T0 + dt.timedelta(minutes=i), person=synthetic_person(), **release) for i in range(30)]
    cause = Cause("filled-0", "NIR-DECODE-001", "TRAINING_CLAIM", "5.1.0")
    with sent_by(hub.engine) as statements, hub.session_factory() as session:
        incident = find_incident(session, window=dt.timedelta(hours=24), cause=cause)
        batch = incident_tickets(session, incident, 1000)
    assert (incident.tickets, batch) == (30, made)
    on_tickets = [(s, p) for s, p in statements if "case_tickets" in s]
    assert len(on_tickets) == 2
    plans = [_explained(filled_url, s, p) for s, p in on_tickets]
    assert [p for p in plans if "Seq Scan on case_tickets" in p] == []
    # The incident's own index finds its 30: the source's and the code's would each give
    # PostgreSQL 25,000 and 100,000 tickets to read and filter.
    assert "Index Scan using ix_case_tickets_incident on case_tickets" in plans[0]
