"""The register's integrity (issue 27) on the real repository, SQLite and PostgreSQL.

- **Order independence**, a property (hypothesis): generated histories of several persons (a DUF
  number, a D-number that Folkeregisteret may change into a fødselsnummer, events naming either
  or both), with corrections, annulments and restorations, each version sent after the one it
  names, and Folkeregisteret's identity changes: every permutation of the same events, in
  batches of any size, gives the same register (persons and their numbers, registrations,
  nothing left held) and the same final receipt for every event.
- **No join without proof**, a property: histories with conflicting numbers (one person's
  fødselsnummer sent with another's DUF number) in any order never leave a person with two DUF
  numbers, two fødselsnumre or two D-numbers.
- **Merge and split round trip**: IMDi's merge of two persons, then its split, gives back the
  register it started with, column by column; what came since goes with the numbers it names.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from hub.bootstrap import Hub
from hub.config import Settings
from hub.domain.events import AddressChange, Origin
from hub.domain.identifiers import duf_checksum, make_national_id, number_kind
from hub.domain.transfer import Message
from hub.register.database import make_session_factory
from hub.register.identity import IdentityError, IdentityRepository
from hub.register.models import (
    AddressRecord,
    Base,
    CaseTicket,
    FolkeregisterLookup,
    HeldEvent,
    Person,
    PersonEvent,
    PersonEventNumber,
    PersonIdentifier,
    PersonMerge,
    PersonMergeMove,
    RegistrationRecord,
)
from hub.register.person_events import record_person_event
from hub.register.repository import RegisterRepository, find_person_id
from hub.schemas.codec import REGISTRATION, catalog
from hub.schemas.contract import from_json
from hub.sources import SourceRegistry
from hub.wiring import registration_flow
from tests.fakes import RecordingPublisher

NOW = dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC)
TOPIC = "nir.source.oslo-fagsystem.registrations"


def new_hub(url: str) -> Hub:
    settings = dataclasses.replace(Settings(), database_url=url, allow_synthetic_identifiers=True)
    hub = Hub(settings=settings, registry=SourceRegistry.load(settings.sources_file), catalog=catalog())
    hub.clock = lambda: NOW
    return hub


@pytest.fixture
def hub(database_url: str) -> Iterator[Hub]:
    made = new_hub(database_url)
    yield made
    made.engine.dispose()


def wipe(hub: Hub) -> None:
    with make_session_factory(hub.engine)() as session:
        for model in (
            PersonMergeMove,
            PersonMerge,
            PersonEventNumber,
            PersonEvent,
            AddressRecord,
            RegistrationRecord,
            PersonIdentifier,
            FolkeregisterLookup,
            HeldEvent,
            CaseTicket,
            Person,
        ):
            session.execute(delete(model))
        session.commit()


# --- generated histories -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Someone:
    """A person as the world knows them: a DUF number (or none), a D-number, a fødselsnummer."""

    index: int
    duf: str | None
    d_number: str
    fodselsnummer: str


def someone(index: int, with_duf: bool) -> Someone:
    born = dt.date(1970 + index, 1 + index, 10 + index)
    d_number = next(n for i in range(100, 500) if (n := make_national_id(born, i, d_number=True)))
    fodselsnummer = next(n for i in range(100, 500) if (n := make_national_id(born, i)))
    first_ten = f"20{15 + index:02d}{700000 + index:06d}"
    return Someone(index, first_ten + duf_checksum(first_ten) if with_duf else None, d_number, fodselsnummer)


@dataclasses.dataclass(frozen=True)
class Item:
    """One thing that reaches the hub: a registration event, or Folkeregisteret's identity change."""

    event: dict[str, Any] | None = None
    identity_change: AddressChange | None = None


def _event(
    who: Someone,
    names: str,
    event_type: str,
    day: dt.date,
    payload: dict[str, Any],
    sent: dt.datetime,
    *,
    action: str = "REGISTER",
    corrects: str | None = None,
    number: int,
) -> dict[str, Any]:
    national_id = {"d": who.d_number, "f": who.fodselsnummer}.get(names[-1])
    duf = who.duf if names.startswith("duf") else None
    event_id = hashlib.sha256(f"{who.index}-{number}".encode()).hexdigest()
    return {
        "eventId": f"{event_id[:8]}-{event_id[8:12]}-4{event_id[13:16]}-8{event_id[17:20]}-{event_id[20:32]}",
        "eventType": event_type,
        "factDate": day.isoformat(),
        "sentAt": sent.isoformat(),
        "sourceSystem": "oslo-fagsystem",
        "municipality": "0301",
        "person": {"nationalId": national_id, "dufNumber": duf},
        "payload": payload,
        "action": action,
        **({"correctsEventId": corrects} if corrects else {}),
    }


def _names_of(e: dict[str, Any]) -> str:
    """How an event named its person, as `_event` takes it."""
    person = e["person"]
    national = "" if person["nationalId"] is None else ("d" if int(person["nationalId"][0]) >= 4 else "f")
    return ("duf" + ("+" if national else "") if person["dufNumber"] else "") + national


def _hours(day: dt.date, hours: float) -> dict[str, Any]:
    iso = day.isoformat()
    return {
        "periodStart": iso,
        "periodEnd": iso,
        "norwegianHours": hours,
        "socialStudiesHours": 1.0,
        "extraNorwegianHours": 0.0,
    }


@dataclasses.dataclass
class _Story:
    """One person's events as a history draws them, each sent a minute after the one before."""

    draw: st.DrawFn
    who: Someone
    numbers: Iterator[int]
    items: list[Item]

    def add(
        self, event_type: str, day: dt.date, payload: dict[str, Any], named: str | None = None, **kw: Any
    ) -> dict[str, Any]:
        # How the person is named: with a DUF number, always it (and either national id, or
        # none); without, the D-number or the fødselsnummer, which Folkeregisteret's change links.
        choices = ["duf", "duf+d", "duf+f"] if self.who.duf else ["d", "f"]
        number = next(self.numbers)
        sent = dt.datetime(2026, 11, 20, 8, tzinfo=dt.UTC) + dt.timedelta(
            hours=self.who.index, minutes=number
        )
        e = _event(
            self.who,
            named or self.draw(st.sampled_from(choices)),
            event_type,
            day,
            payload,
            sent,
            number=number,
            **kw,
        )
        self.items.append(Item(event=e))
        return e


@st.composite
def history(draw: st.DrawFn, *, conflicting: bool = False) -> list[Item]:
    """A few persons' training, with corrections, annulments, restorations, identity changes."""
    people = [someone(i, draw(st.booleans())) for i in range(draw(st.integers(2, 3)))]
    items: list[Item] = []
    numbers = iter(range(1, 10_000))
    for who in people:
        story = _Story(draw, who, numbers, items)
        d0 = dt.date(2026, 10, 1) + dt.timedelta(days=who.index)  # in time, received on 26 November
        story.add("TRAINING_CLAIM", d0, {"claimedWithinDeadline": True})
        story.add(
            "TRAINING_DECISION",
            d0 + dt.timedelta(days=5),
            {"outcome": "GRANTED", "scopeHours": 600, "refusalReasons": []},
        )
        story.add(
            "TRAINING_STARTED",
            d0 + dt.timedelta(days=10),
            {"track": None, "goalLevel": "B1", "scopeHours": 600},
        )
        languages = story.add(
            "TRAINING_LANGUAGES", d0 + dt.timedelta(days=11), {"motherTongue": "tir", "otherLanguages": []}
        )
        end_day = d0 + dt.timedelta(days=40)
        days = [d0 + dt.timedelta(days=20), d0 + dt.timedelta(days=30), end_day]  # the end's day too
        hours = [
            story.add("TRAINING_HOURS", day, _hours(day, draw(st.sampled_from([2.0, 4.0]))))
            for day in draw(st.lists(st.sampled_from(days), min_size=1, max_size=3, unique=True))
        ]
        end = (
            story.add("TRAINING_ENDED", end_day, {"endReason": "GOAL_REACHED"})
            if draw(st.booleans())
            else None
        )
        # Corrections name the person as their original did (a fagsystem corrects its record).
        for fixed in draw(st.lists(st.sampled_from(["languages", "hours", "end"]), max_size=2, unique=True)):
            if fixed == "languages":
                story.add(
                    "TRAINING_LANGUAGES",
                    d0 + dt.timedelta(days=11),
                    {"motherTongue": "som", "otherLanguages": []},
                    _names_of(languages),
                    action="CORRECT",
                    corrects=languages["eventId"],
                )
            elif fixed == "hours":
                original = hours[0]
                day = dt.date.fromisoformat(original["factDate"])
                annulment = story.add(
                    "TRAINING_HOURS",
                    day,
                    original["payload"],
                    _names_of(original),
                    action="ANNUL",
                    corrects=original["eventId"],
                )
                if draw(st.booleans()):  # restored: a correction naming the annulment, sent after it
                    story.add(
                        "TRAINING_HOURS",
                        day,
                        _hours(day, 3.0),
                        _names_of(original),
                        action="CORRECT",
                        corrects=annulment["eventId"],
                    )
            elif fixed == "end" and end is not None:
                story.add(
                    "TRAINING_ENDED",
                    end_day,
                    {"endReason": "WORK"},
                    _names_of(end),
                    action="CORRECT",
                    corrects=end["eventId"],
                )
        if conflicting and who.index > 0 and (people[0].duf or who.duf):
            # This person's fødselsnummer with the first person's DUF number (or their own).
            mixed = Someone(99, people[0].duf or who.duf, who.fodselsnummer, who.fodselsnummer)
            _Story(draw, mixed, numbers, items).add(
                "TRAINING_LANGUAGES",
                d0 + dt.timedelta(days=12),
                {"motherTongue": "ara", "otherLanguages": []},
                "duf+f",
            )
        if draw(st.booleans()) or not who.duf:
            items.append(Item(identity_change=_identity_change(who)))
    return items


def _identity_change(who: Someone) -> AddressChange:
    """Folkeregisteret's word that the person's D-number became their fødselsnummer."""
    return AddressChange(
        sequence_number=100 + who.index,
        event_type="IDENTITY_CHANGED",
        national_id=who.fodselsnummer,
        recorded_at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
        moved_on=None,
        municipality=None,
        protection="UNGRADED",
        address_kind="UNKNOWN",
        address_line=None,
        postal_code=None,
        postal_place=None,
        former_national_ids=(who.d_number,),
    )


# --- running a history -------------------------------------------------------------------------


def play(hub: Hub, items: list[Item], batch_sizes: list[int]) -> dict[str, tuple[str, tuple[str, ...]]]:
    """The items in this order, registration events in batches of the given sizes (cycled),
    Folkeregisteret's changes through the address flow's writer, and held events nudged by them
    tried again as the worker's timer does; the final receipt of every event."""
    publisher = RecordingPublisher()
    flow = registration_flow(hub, publisher)
    partitions = {(TOPIC, 0)}
    batch: list[Message] = []
    sizes = itertools.cycle(batch_sizes)
    offset = 0

    async def go() -> None:
        nonlocal batch, offset
        limit = next(sizes)
        for item in items:
            if item.event is not None:
                value = catalog().encode(REGISTRATION, from_json(item.event))
                batch.append(Message(Origin(TOPIC, 0, offset), b"k", value, received_at=NOW))
                offset += 1
                if len(batch) >= limit:
                    await flow.process_batch(batch)
                    batch, limit = [], next(sizes)
            else:
                if batch:
                    await flow.process_batch(batch)
                    batch = []
                change = item.identity_change
                with hub.unit_of_work() as uow:
                    record_person_event(uow.session, change, NOW)  # type: ignore[arg-type]
                    uow.commit()
                await flow.retry_held(partitions)
        if batch:
            await flow.process_batch(batch)

    asyncio.run(go())
    final: dict[str, tuple[str, tuple[str, ...]]] = {}
    for _, _, value, _ in publisher.on("nir.source.oslo-fagsystem.receipts"):
        receipt = catalog().decode(value).datum
        final[str(receipt["eventId"])] = (receipt["outcome"], tuple(v["code"] for v in receipt["violations"]))
    return final


def register(hub: Hub) -> dict[str, Any]:
    """The register as a person reads it, without its row ids: each person by their numbers
    (ceased ones marked), their registrations, and what is held or kept pending."""
    with make_session_factory(hub.engine)() as session:
        numbers: dict[int, set[tuple[str, bool]]] = {}
        for i in session.scalars(select(PersonIdentifier)):
            numbers.setdefault(i.person_id, set()).add((i.value, i.ceased_at is not None))
        registrations = {
            (
                frozenset(numbers[r.person_id]),
                r.event_id,
                r.action,
                r.registration_key,
                r.event_type,
                r.fact_date,
                json.dumps(r.payload, sort_keys=True),
                json.dumps(r.warnings, sort_keys=True),
                r.late,
            )
            for r in session.scalars(select(RegistrationRecord))
        }
        return {
            "persons": {frozenset(n) for n in numbers.values()},
            "registrations": registrations,
            "held": sorted(h.event_id for h in session.scalars(select(HeldEvent))),
            # Folkeregisteret's changes no registration has named a number of (yet).
            "pending": len(
                session.scalars(select(PersonEvent.id).where(PersonEvent.person_id.is_(None))).all()
            ),
        }


def no_one_has_two_of_a_kind(hub: Hub, *, but_by_folkeregisteret: bool = False) -> None:
    """No person holds two DUF numbers, two fødselsnumre or two D-numbers. With
    `but_by_folkeregisteret`, but where Folkeregisteret's identity change joined them: it named
    one of the two, or merged the records that held them (its word is proof that its numbers are
    one person, whatever the register held before, and the issue allows such a join)."""
    with make_session_factory(hub.engine)() as session:
        values: dict[int, list[str]] = {}
        for i in session.scalars(select(PersonIdentifier)):
            values.setdefault(i.person_id, []).append(i.value)
        proven: set[str] = set()
        joined: set[int] = set()
        if but_by_folkeregisteret:
            proven = set(
                session.scalars(
                    select(PersonEventNumber.value)
                    .join(PersonEvent, PersonEvent.id == PersonEventNumber.person_event_id)
                    .where(PersonEvent.event_type == "IDENTITY_CHANGED", PersonEvent.person_id.is_not(None))
                )
            )
            joined = set(
                session.scalars(
                    select(PersonMerge.keeper_id).where(PersonMerge.merged_by == "folkeregisteret")
                )
            )
    for person, numbers in values.items():
        if person in joined:
            continue
        found = [number_kind(v) for v in numbers if v not in proven]
        assert len(found) == len(set(found)), (
            f"person {person} holds two numbers of one kind: {sorted(found)}"
        )


PROPERTY = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY
@given(
    items=history(),
    order=st.randoms(use_true_random=False),
    sizes=st.lists(st.integers(1, 6), min_size=1, max_size=3),
)
def test_every_order_of_a_history_gives_the_same_register_and_final_receipts(
    items: list[Item], order: Any, sizes: list[int], hub: Hub
) -> None:
    wipe(hub)
    expected = play(hub, items, [1])
    expected_register = register(hub)
    assert expected_register["held"] == []
    assert all(outcome.startswith("ACCEPTED") for outcome, _ in expected.values()), expected
    shuffled = list(items)
    order.shuffle(shuffled)
    wipe(hub)
    assert play(hub, shuffled, sizes) == expected
    assert register(hub) == expected_register
    no_one_has_two_of_a_kind(hub)


@PROPERTY
@given(items=history(conflicting=True), order=st.randoms(use_true_random=False))
def test_no_order_of_conflicting_numbers_joins_two_persons(items: list[Item], order: Any, hub: Hub) -> None:
    for attempt in range(2):
        shuffled = list(items)
        if attempt:
            order.shuffle(shuffled)
        wipe(hub)
        final = play(hub, shuffled, [3])
        no_one_has_two_of_a_kind(hub, but_by_folkeregisteret=True)
        sent = {i.event["eventId"] for i in shuffled if i.event is not None}
        assert set(final) == sent  # every event was answered


# --- merge and split -----------------------------------------------------------------------------


def tables(hub: Hub) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table a person's records live in, column by column."""
    skip = {"person_merges", "person_merge_moves", "audit_log"}
    with make_session_factory(hub.engine)() as session:
        return {
            table.name: sorted(tuple(str(v) for v in row) for row in session.execute(select(table)).all())
            for table in Base.metadata.sorted_tables
            if table.name not in skip
        }


def test_a_merge_then_its_split_gives_back_the_register_column_by_column(hub: Hub) -> None:
    wipe(hub)
    one, two = someone(1, True), someone(2, True)
    items = [Item(event=e) for e in _story(one, "duf+d") + _story(two, "duf+f")]
    play(hub, items, [4])
    with hub.unit_of_work() as uow:
        RegisterRepository(uow.session)  # the register's door, as the tools use it
        uow.session.add(
            FolkeregisterLookup(person_id=find_person_id(uow.session, two.duf or ""), requested_at=NOW)
        )
        uow.commit()
    before = tables(hub)
    with hub.unit_of_work() as uow:
        s = uow.session
        keeper, other = find_person_id(s, one.duf or ""), find_person_id(s, two.duf or "")
        merge = IdentityRepository(s).merge(
            keeper or 0, other or 0, reason="the same person, by UDI's papers", by="imdi", now=NOW
        )
        uow.commit()
        merge_id = merge.id
    merged = tables(hub)
    assert merged != before and len(merged["persons"]) == 1
    assert {r[0] for r in merged["person_identifiers"]} == {r[0] for r in before["person_identifiers"]}
    with hub.unit_of_work() as uow:
        uow.identity.split(merge_id, reason="two people after all", by="imdi", now=NOW)
        uow.commit()
    assert tables(hub) == before
    with make_session_factory(hub.engine)() as session:
        record = session.get_one(PersonMerge, merge_id)
        assert (record.split_by, record.split_reason) == ("imdi", "two people after all")


def test_what_came_since_a_merge_goes_with_the_numbers_it_names_and_mixed_ones_wait_for_a_person(
    hub: Hub,
) -> None:
    wipe(hub)
    one, two = someone(1, True), someone(2, True)
    play(hub, [Item(event=e) for e in _story(one, "duf") + _story(two, "duf")], [4])
    with hub.unit_of_work() as uow:
        s = uow.session
        merge = IdentityRepository(s).merge(
            find_person_id(s, one.duf or "") or 0,
            find_person_id(s, two.duf or "") or 0,
            reason="one",
            by="imdi",
            now=NOW,
        )
        uow.commit()
        merge_id = merge.id
    since = [_languages(one, "duf+f", 1, "som", 50), _languages(two, "duf+d", 2, "amh", 51)]
    # The first one's fødselsnummer (known since) with the second one's DUF number.
    mixed = _languages(Someone(9, two.duf, one.fodselsnummer, one.fodselsnummer), "duf+f", 3, "ara", 52)
    final = play(hub, [Item(event=e) for e in [*since, mixed]], [3])
    assert [final[e["eventId"]][0] for e in [*since, mixed]] == ["ACCEPTED"] * 3  # one person now
    with hub.unit_of_work() as uow, pytest.raises(IdentityError, match=mixed["eventId"]):
        uow.identity.split(merge_id, reason="two", by="imdi", now=NOW)
    with hub.unit_of_work() as uow:
        uow.identity.split(merge_id, reason="two", by="imdi", now=NOW, mixed_to="keeper")
        uow.commit()
    with make_session_factory(hub.engine)() as session:
        of = {r.event_id: r.person_id for r in session.scalars(select(RegistrationRecord))}
        first, second = find_person_id(session, one.duf or ""), find_person_id(session, two.duf or "")
        assert first != second
        assert (of[since[0]["eventId"]], of[since[1]["eventId"]], of[mixed["eventId"]]) == (
            first,
            second,
            first,
        )
        assert find_person_id(session, one.fodselsnummer) == first  # the numbers that came since, too
        assert find_person_id(session, two.d_number) == second


def _languages(who: Someone, names: str, day: int, tongue: str, number: int) -> dict[str, Any]:
    """The person's languages, registered on day `day` of October 2026."""
    payload = {"motherTongue": tongue, "otherLanguages": []}
    return _event(who, names, "TRAINING_LANGUAGES", dt.date(2026, 10, day), payload, NOW, number=number)


def _story(who: Someone, names: str) -> list[dict[str, Any]]:
    d0, sent = dt.date(2026, 9, 1), dt.datetime(2026, 11, 20, 8, tzinfo=dt.UTC)
    return [
        _event(who, names, "TRAINING_CLAIM", d0, {"claimedWithinDeadline": True}, sent, number=1),
        _event(
            who,
            names,
            "TRAINING_DECISION",
            d0 + dt.timedelta(days=5),
            {"outcome": "GRANTED", "scopeHours": 600, "refusalReasons": []},
            sent,
            number=2,
        ),
    ]
