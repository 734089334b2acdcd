"""A ticket table as large as a flood leaves it, written by the database itself in seconds (not
through the dead-letter flow), and the dead letters of a flood: for the tests and the benchmark
of how the flow keeps up as the table grows (issue 32)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence

from sqlalchemy import Engine, text

from hub.domain.events import Origin
from hub.domain.transfer import Failure, Message
from hub.pipeline.deadletter import dead_letter_headers
from hub.schemas.codec import REGISTRATION, SchemaCatalog
from hub.schemas.contract import from_json
from tests.factories import event, synthetic_person

# The filled tickets' topics: their messages were read from these, at offsets 1 to count.
FILLED_TOPICS = tuple(f"nir.source.filled-{n}.registrations" for n in range(4))


def filled_event_id(n: int) -> str:
    """The event id of the n-th filled ticket that has one (every even n)."""
    return f"{n:08x}-0000-4000-8000-{n:012x}"


def filled_register(url: str, tickets: int) -> str:
    """The migrated, empty register at `url` filled with `tickets` tickets (`fill_tickets`)."""
    from hub.register.database import make_engine
    from hub.register.migrate import upgrade

    engine = make_engine(url)
    upgrade(engine)
    fill_tickets(engine, 1, tickets)
    engine.dispose()
    return url


def fill_tickets(engine: Engine, first: int, last: int, topics: Sequence[str] = FILLED_TOPICS) -> None:
    """Tickets first..last (numbered, not their ids) on `topics` in turn, as a flood leaves them:
    each at its own origin (partition n % 6, offset n), every other one with an event id, a
    hundred bytes of message each; then ANALYZE (on PostgreSQL VACUUM ANALYZE), so the planner
    knows the table's size."""
    if last < first:
        return
    postgresql = engine.dialect.name == "postgresql"
    numbers = (
        "SELECT n FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) n"
        if postgresql
        else "WITH RECURSIVE s(n) AS (SELECT :first UNION ALL SELECT n + 1 FROM s WHERE n < :last) SELECT n FROM s"
    )
    event_id = (
        "lpad(to_hex(n), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(n), 12, '0')"
        if postgresql
        else "printf('%08x-0000-4000-8000-%012x', n, n)"
    )
    topic = (
        f"CASE n % {len(topics)} "
        + " ".join(f"WHEN {i} THEN :topic_{i}" for i in range(len(topics)))
        + " END"
    )
    value = "decode(repeat('ab', 100), 'hex')" if postgresql else "randomblob(100)"
    now = "now()" if postgresql else "'2026-12-01 12:00:00.000000'"
    statement = (
        "INSERT INTO case_tickets (status, kind, event_id, error_class, error_code, error_message, "
        "source_system, original_topic, original_partition, original_offset, original_value, "
        "last_dead_letter, first_failed_at, last_failed_at, attempts, replays) "
        f"SELECT CASE WHEN n % 5 = 0 THEN 'resolved' ELSE 'open' END, 'dead_letter', "
        f"CASE WHEN n % 2 = 0 THEN {event_id} END, 'decode', 'NIR-DECODE-001', 'not readable', "
        f"'filled-' || (n % 4), {topic}, n % 6, n, {value}, '0:' || n, {now}, {now}, 1, 0 "
        f"FROM ({numbers}) numbers"
    )
    with engine.begin() as connection:
        connection.execute(
            text(statement), {"first": first, "last": last, **{f"topic_{i}": t for i, t in enumerate(topics)}}
        )
    # On PostgreSQL vacuumed, as a register in use is, and checkpointed: what is measured after
    # is the flow, not autovacuum or a checkpoint catching up with the fill.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE case_tickets" if postgresql else "ANALYZE case_tickets"))
        if postgresql:
            connection.execute(text("CHECKPOINT"))


def flood(
    catalog: SchemaCatalog, topic: str, count: int, *, start: int = 0, dead_letters: str = "nir.dead-letters"
) -> Iterator[Message]:
    """The dead letters of a vendor's bad release on `topic`, read from the dead-letter topic at
    offsets start..: eight in ten undecodable (a ticket each, by origin), one in ten an event a
    rule refused (a ticket each, by event id), and one in ten that event failing again five
    letters later (sent again: another origin, the same ticket)."""
    now = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
    undecodable = Failure("decode", "NIR-DECODE-001", "the message is not a registration")
    refused = Failure("rule", "NIR-SOURCE-002", "NIR-SOURCE-002: the municipality is not the source's")
    events: list[bytes] = []
    for i in range(start, start + count):
        origin = Origin(topic, i % 6, 1_000_000_000 + i)
        if i % 10 == 9 and events:
            value, failure = events[-1], refused
        elif i % 5 == 4:
            value = catalog.encode(REGISTRATION, from_json(event(synthetic_person(), municipality="4601")))
            events.append(value)
            failure = refused
        else:
            value, failure = b"\x00\x13not a registration " + str(i).encode(), undecodable
        headers = tuple(dead_letter_headers(origin, failure, now))
        yield Message(Origin(dead_letters, 0, i), b"k", value, headers)
