"""The real repository on SQLite and PostgreSQL gives the same register and the same receipts as
the fake in memory, for the same stream, whether it arrives in batches or one by one; and it
reads and writes a batch in a fixed number of statements whatever the batch's size.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import random
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, event, select

from hub.bootstrap import Hub
from hub.config import Settings
from hub.domain.events import Origin
from hub.domain.transfer import Message
from hub.register.database import insert_new, make_session_factory
from hub.register.models import (
    CaseTicket,
    FolkeregisterLookup,
    HeldEvent,
    PersonIdentifier,
    RegistrationRecord,
)
from hub.register.models import Person as PersonRecord
from hub.register.repository import PERSONS
from hub.schemas.codec import REGISTRATION, catalog
from hub.schemas.contract import from_json
from hub.sources import SourceRegistry
from hub.wiring import registration_flow
from tests.factories import Person, synthetic_person
from tests.factories import event as make_event
from tests.fakes import FakeRegister, FakeUnitOfWork, RecordingPublisher, Register, register_view

TOPIC = "nir.source.oslo-fagsystem.registrations"
TODAY = dt.date.today()


def new_hub(url: str | None = None, store: FakeRegister | None = None) -> Hub:
    settings = dataclasses.replace(
        Settings(), database_url=url or "sqlite://", allow_synthetic_identifiers=True
    )
    units = (lambda: FakeUnitOfWork(store)) if store is not None else None
    return Hub(
        settings=settings,
        registry=SourceRegistry.load(settings.sources_file),
        catalog=catalog(),
        registration_units=units,
    )


def days_ago(days: int) -> dt.date:
    return TODAY - dt.timedelta(days=days)


def seeded_stream(seed: int) -> list[dict[str, Any]]:
    """Events of many kinds; the seed varies the dates and how the persons interleave."""
    rng = random.Random(seed)
    chains: list[list[dict[str, Any]]] = []
    for index in range(40):
        person = synthetic_person()
        day = days_ago(rng.randint(20, 60))
        claim = make_event(person, fact_date=day)
        decision = make_event(person, "TRAINING_DECISION", fact_date=day + dt.timedelta(days=2))
        started = make_event(person, "TRAINING_STARTED", fact_date=day + dt.timedelta(days=5))
        chain = [claim, decision, started]
        match index % 8:
            case 0:
                chain = [started, claim, decision]  # the start waits (held) for its decision
            case 1:
                chain.append(dict(claim))  # the same event id again: a duplicate
            case 2:
                fixed = make_event(person, "TRAINING_DECISION", fact_date=day + dt.timedelta(days=3))
                chain.append({**fixed, "action": "CORRECT", "correctsEventId": decision["eventId"]})
            case 3:
                chain.append(make_event(person, municipality="9999"))  # rejected
            case 4:  # first seen by its DUF number only, then with both: one person
                chain = [make_event(Person(None, person.duf_number), fact_date=day), decision, started]
            case 5:  # two records that a later event names together: a conflict, both stay
                first = make_event(Person(person.national_id, None), fact_date=day)
                second = make_event(
                    Person(None, person.duf_number), "TRAINING_DECISION", fact_date=day + dt.timedelta(days=2)
                )
                chain = [first, second, started]
        chains.append(chain)
    merged: list[dict[str, Any]] = []
    while chains:  # interleave the persons, each person's own events kept in order
        chain = rng.choice(chains)
        merged.append(chain.pop(0))
        if not chain:
            chains.remove(chain)
    return merged


def messages(events: list[dict[str, Any]]) -> list[Message]:
    return [
        Message(Origin(TOPIC, 0, offset), b"key", catalog().encode(REGISTRATION, from_json(e)))
        for offset, e in enumerate(events)
    ]


def run(hub: Hub, events: list[dict[str, Any]], batch_size: int) -> list[tuple[str, str, tuple[str, ...]]]:
    """The stream through a flow in batches; every receipt sent (event id, outcome, rule codes)."""
    publisher = RecordingPublisher()
    flow = registration_flow(hub, publisher)
    all_messages = messages(events)

    async def go() -> None:
        for start in range(0, len(all_messages), batch_size):
            await flow.process_batch(all_messages[start : start + batch_size])

    asyncio.run(go())
    receipts = [catalog().decode(v).datum for t, _, v, _ in publisher.sent if t.endswith(".receipts")]
    return [(str(r["eventId"]), r["outcome"], tuple(v["code"] for v in r["violations"])) for r in receipts]


def register(hub: Hub) -> Register:
    """The real register, as `FakeRegister.register` gives the fake."""
    with make_session_factory(hub.engine)() as session:
        identifiers: dict[int, set[str]] = {}
        for row in session.scalars(select(PersonIdentifier)):
            identifiers.setdefault(row.person_id, set()).add(row.value)
        rows = [
            {c.key: getattr(r, c.key) for c in RegistrationRecord.__table__.columns}
            | {"identifiers": identifiers[r.person_id]}
            for r in session.scalars(select(RegistrationRecord))
        ]
        held = [h.event_id for h in session.scalars(select(HeldEvent))]
        return register_view(rows, identifiers.values(), held)


def wipe(hub: Hub) -> None:
    with make_session_factory(hub.engine)() as session:
        for model in (
            RegistrationRecord,
            PersonIdentifier,
            FolkeregisterLookup,
            HeldEvent,
            CaseTicket,
            PersonRecord,
        ):
            session.execute(delete(model))
        session.commit()


@pytest.mark.parametrize("seed", [1, 2])
def test_the_real_register_in_batches_equals_the_fake_one_by_one(seed: int, database_url: str) -> None:
    events = seeded_stream(seed)
    store = FakeRegister()
    expected = run(new_hub(store=store), events, batch_size=1)
    real = new_hub(database_url)
    assert run(real, events, batch_size=6) == expected
    assert register(real) == store.register()
    real.engine.dispose()
    outcomes = {outcome for _, outcome, _ in expected}
    assert {"ACCEPTED", "HELD", "DUPLICATE", "REJECTED"} <= outcomes  # the stream has every kind
    persons = store.register()[1]
    # Five of the forty (index 5 of every 8) stay two records of one number each.
    assert len(persons) == 45 and sorted(len(p) for p in persons) == [1] * 10 + [2] * 35
    assert ("NIR-ID-005",) in {codes for _, outcome, codes in expected if outcome == "REJECTED"}


# --- random mixed streams -------------------------------------------------------------------

KINDS = ["claim", "decision", "start", "hours", "end", "duplicate", "correct", "annul"]
# The types and dates of one person's training, and which identifiers an event names.
TYPES = {
    "claim": ("TRAINING_CLAIM", 50),
    "decision": ("TRAINING_DECISION", 40),
    "start": ("TRAINING_STARTED", 30),
    "hours": ("TRAINING_HOURS", 20),
    "end": ("TRAINING_ENDED", 5),
}
NAMES = ["both", "national_id", "duf"]


def mixed_stream(steps: list[tuple[int, str, str, int]]) -> list[dict[str, Any]]:
    """One event per step: (person, kind, the identifiers it names, a number to pick with)."""
    persons = [synthetic_person() for _ in range(3)]
    events: list[dict[str, Any]] = []
    for who, kind, names, pick in steps:
        person = persons[who]
        named = Person(
            person.national_id if names != "duf" else None,
            person.duf_number if names != "national_id" else None,
        )
        earlier = [e for e in events if e.get("action", "REGISTER") == "REGISTER"]
        if kind == "duplicate" and events:
            events.append(dict(events[pick % len(events)]))
        elif kind in ("correct", "annul") and earlier:
            original = earlier[pick % len(earlier)]
            again = make_event(
                named, original["eventType"], fact_date=dt.date.fromisoformat(original["factDate"])
            )
            events.append({**again, "action": kind.upper(), "correctsEventId": original["eventId"]})
        elif kind in TYPES:
            event_type, days = TYPES[kind]
            events.append(make_event(named, event_type, fact_date=days_ago(days - pick % 3)))
    return events


STEPS = st.lists(
    st.tuples(st.integers(0, 2), st.sampled_from(KINDS), st.sampled_from(NAMES), st.integers(0, 99)),
    min_size=1,
    max_size=24,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
def test_random_mixed_streams_give_the_same_register_and_receipts_in_one_batch_and_one_by_one_on_both(
    steps: list[tuple[int, str, str, int]], database_url: str
) -> None:
    events = mixed_stream(steps)
    fake_one, fake_batch = FakeRegister(), FakeRegister()
    expected = run(new_hub(store=fake_one), events, batch_size=1)
    real = new_hub(database_url)
    try:
        for batch_size in (1, max(1, len(events))):
            wipe(real)
            assert run(real, events, batch_size) == expected
            assert register(real) == fake_one.register()
    finally:
        real.engine.dispose()
    assert run(new_hub(store=fake_batch), events, batch_size=max(1, len(events))) == expected
    assert fake_batch.register() == fake_one.register()


# --- statements per batch -------------------------------------------------------------------


@contextlib.contextmanager
def statements(hub: Hub) -> Iterator[list[str]]:
    """The SQL statements the engine runs while the block runs."""
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(hub.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(hub.engine, "before_cursor_execute", count)


def test_a_batch_is_read_and_written_in_the_same_number_of_statements_whatever_its_size(
    database_url: str,
) -> None:
    """New persons, then a fact for each of them, then a held event for each: as many statements
    for 3 persons as for 30."""
    counts = []
    for size in (3, 30):
        hub = new_hub(database_url)
        wipe(hub)
        persons = [synthetic_person() for _ in range(size)]
        claims = [make_event(p, fact_date=days_ago(30)) for p in persons]
        decisions = [make_event(p, "TRAINING_DECISION", fact_date=days_ago(20)) for p in persons]
        leaves = [
            make_event(p, "TRAINING_LEAVE", fact_date=days_ago(10)) for p in persons
        ]  # before a start: held
        per_batch = []
        for batch in (claims, decisions, leaves):
            with statements(hub) as seen:
                receipts = run(hub, batch, size)
            assert len(receipts) == size
            per_batch.append(len(seen))
        counts.append(per_batch)
        hub.engine.dispose()
    assert counts[0] == counts[1], counts


def test_insert_new_returns_the_ids_of_its_rows_in_order(database_url: str) -> None:
    hub = new_hub(database_url)
    moments = [dt.datetime(2026, 1, day, tzinfo=dt.UTC) for day in range(1, 6)]
    with make_session_factory(hub.engine)() as session:
        first = insert_new(session, PERSONS, [{"created_at": m} for m in moments[:3]])
        session.add(later := PersonRecord(created_at=moments[3]))  # the ORM's own id, after those
        session.flush()
        second = insert_new(session, PERSONS, [{"created_at": moments[4]}])
        session.commit()
        created = dict(session.execute(select(PersonRecord.id, PersonRecord.created_at)).all())
    ids = [*first, later.id, *second]
    assert len(set(ids)) == 5
    assert [_utc(created[i]) for i in ids] == [_utc(m) for m in moments]


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(tzinfo=None) if moment.tzinfo else moment
