"""The Folkeregister connector against the stand-in feed, the real broker and a real register."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from hub.bootstrap import Hub
from hub.connectors.folkeregister import (
    ConnectorStatus,
    FeedClient,
    FolkeregisterConnector,
    NoToken,
    TokenFile,
    address_change,
    person_event,
    read_position,
)
from hub.dev.folkeregister_standin import FolkeregisterStandIn, serving
from hub.dev.localrun import LocalBroker, WorkerProcess, local_admin
from hub.domain.events import Origin
from hub.domain.identifiers import make_national_id
from hub.domain.transfer import Message
from hub.errors import ConfigurationError
from hub.kafka.principals import prepare_broker
from hub.register.database import make_session_factory
from hub.register.people import describe_person
from hub.register.repository import find_person_id
from hub.schemas.codec import ADDRESS_CHANGE
from hub.wiring import address_flow
from tests.conftest import admin_kafka, make_settings
from tests.factories import synthetic_person
from tests.fakes import RecordingPublisher
from tests.harness import wait_until

MOVED = dt.date(2026, 10, 1)


@pytest.fixture
def hub(kafka_broker: LocalBroker, database_url: str, tmp_path: Path) -> Hub:
    """A hub as the connector's principal, on a broker the admin has prepared."""
    settings = make_settings(kafka_broker, database_url, tmp_path)
    hub = Hub.from_settings(settings.as_kafka_user(settings.kafka_connector_user))
    asyncio.run(prepare_broker(local_admin(settings), hub.registry))
    return hub


@pytest.fixture
def feed() -> Iterator[tuple[FolkeregisterStandIn, str]]:
    stand_in = FolkeregisterStandIn(page_size=5)
    with serving(stand_in) as url:
        yield stand_in, url


def known(hub: Hub, *national_ids: str) -> None:
    """Make persons known to the register, as an accepted registration would."""
    with hub.unit_of_work() as uow:
        for national_id in national_ids:
            uow.register.person_with(national_id, None, hub.clock())
        uow.commit()


async def no_wait(_seconds: float) -> None:
    await asyncio.sleep(0)


class FailingClient(FeedClient):
    """Breaks down at the n-th person look-up, in the middle of a page's transaction."""

    def __init__(self, *args: Any, fail_at: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls, self.fail_at = 0, fail_at

    async def person(self, national_id: str) -> dict[str, Any] | None:
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("connection to Folkeregisteret lost")
        return await super().person(national_id)


def follow(hub: Hub, url: str, *, fail_at: int | None = None, token: Any = None) -> ConnectorStatus:
    """Run the connector until it has caught up with the feed (or fails)."""

    async def run() -> ConnectorStatus:
        async with aiohttp.ClientSession() as session:
            auth = token or NoToken()
            client = (
                FailingClient(url, auth, session, sleep=no_wait, fail_at=fail_at)
                if fail_at
                else FeedClient(url, auth, session, sleep=no_wait)
            )
            async with FolkeregisterConnector(hub, client) as connector:
                stop = asyncio.Event()
                task = asyncio.create_task(connector.run(stop))
                caught_up = asyncio.create_task(connector.status.caught_up.wait())
                await asyncio.wait({task, caught_up}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
                stop.set()
                caught_up.cancel()
                await task
                return connector.status

    return asyncio.run(run())


def published(hub: Hub) -> list[dict[str, Any]]:
    """Every committed address change on the topic, decoded."""

    async def read() -> list[dict[str, Any]]:
        consumer = AIOKafkaConsumer(
            **admin_kafka(hub.settings).aiokafka(),
            isolation_level="read_committed",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            topic = hub.names.address_changes
            partitions = [TopicPartition(topic, p) for p in range(hub.settings.address_partitions)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            records = []
            while [p for p in partitions if await consumer.position(p) < ends[p]]:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(batch)
            return [hub.catalog.decode(r.value).datum for r in records]
        finally:
            await consumer.stop()

    return asyncio.run(read())


def test_known_persons_moves_are_published_once_with_the_address_fetched_by_reference(
    hub: Hub, feed: tuple[FolkeregisterStandIn, str]
) -> None:
    stand_in, url = feed
    oslo, stranger, hidden = (synthetic_person().national_id for _ in range(3))
    known(hub, oslo, hidden)
    hub.settings = dataclasses.replace(hub.settings, folkeregister_start="beginning")
    stand_in.move(oslo, "0301", MOVED, street="Storgata", house_number="7", postal_code="0155")
    stand_in.move(stranger, "4601", MOVED)  # not known to the register: passed over
    stand_in.other_event(oslo, "endringINavn")  # neither an address nor a person event: passed over
    stand_in.move(hidden, "4601", MOVED, protection="strengtFortrolig", street="Hemmelig vei")

    status = follow(hub, url)
    changes = {c["sequenceNumber"]: c for c in published(hub) if c["sequenceNumber"] > 0}
    assert sorted(changes) == [1, 4]
    assert (changes[1]["municipality"], changes[1]["addressLine"], changes[1]["movedOn"]) == (
        "0301",
        "Storgata 7",
        MOVED,
    )
    # A strictly confidential address leaves the connector without any address text.
    assert changes[4]["protection"] == "STRICTLY_CONFIDENTIAL" and changes[4]["addressLine"] is None
    assert (status.published, status.passed_over, status.position) == (2, 2, 5)
    assert status.looked_up == 2  # both known persons were also looked up once


def test_the_stand_in_publishes_identity_changes_deaths_and_duplicate_cessations_and_the_connector_follows(
    hub: Hub, feed: tuple[FolkeregisterStandIn, str]
) -> None:
    stand_in, url = feed
    d_number = make_national_id(dt.date(1990, 2, 3), 17, d_number=True) or ""
    fodselsnummer, dead, duplicate, stranger = (synthetic_person().national_id or "" for _ in range(4))
    known(hub, d_number, dead, duplicate)
    hub.settings = dataclasses.replace(hub.settings, folkeregister_start="beginning")
    stand_in.change_identity(d_number, fodselsnummer)  # the feed item names the new number only
    stand_in.move(fodselsnummer, "0301", MOVED)  # the same page: the new number counts as known
    stand_in.die(dead, dt.date(2026, 11, 20))
    stand_in.cease_as_duplicate(duplicate, dt.date(2026, 11, 21))
    stand_in.change_identity(stranger, synthetic_person().national_id or "")  # unknown: passed over

    status = follow(hub, url)

    changes = {c["sequenceNumber"]: c for c in published(hub) if c["sequenceNumber"] > 0}
    assert {s: c["eventType"] for s, c in changes.items()} == {
        1: "IDENTITY_CHANGED",
        2: "ADDRESS_CHANGED",
        3: "PERSON_DIED",
        4: "PERSON_CEASED_AS_DUPLICATE",
    }
    assert (changes[1]["nationalId"], changes[1]["formerNationalIds"]) == (fodselsnummer, [d_number])
    assert changes[2]["nationalId"] == fodselsnummer
    assert (changes[3]["nationalId"], changes[3]["eventDate"]) == (dead, dt.date(2026, 11, 20))
    assert (changes[4]["nationalId"], changes[4]["eventDate"]) == (duplicate, dt.date(2026, 11, 21))
    assert (status.published, status.passed_over, status.position) == (4, 1, 6)


def test_a_person_document_reads_into_the_contracts_person_events() -> None:
    document = {
        "identifikasjonsnummer": [
            {"foedselsEllerDNummer": "new", "status": "iBruk"},
            {"foedselsEllerDNummer": "old", "status": "opphoert"},
        ],
        "doedsfall": [{"doedsdato": "2026-11-01", "erGjeldende": True}],
    }
    changed = person_event(5, "IDENTITY_CHANGED", "old", "2026-11-02T00:00:00Z", document)
    assert (changed["nationalId"], changed["formerNationalIds"], changed["eventDate"]) == (
        "new",
        ["old"],
        None,
    )
    died = person_event(6, "PERSON_DIED", "new", "2026-11-02T00:00:00Z", document)
    assert (died["nationalId"], died["formerNationalIds"], died["eventDate"]) == ("new", [], "2026-11-01")
    assert (
        person_event(7, "PERSON_CEASED_AS_DUPLICATE", "new", "2026-11-02T00:00:00Z", None)["eventDate"]
        is None
    )


@pytest.mark.parametrize(
    ("valid_from", "day"),
    [
        ("2026-10-31T23:00:00Z", "2026-11-01"),  # Oslo's midnight written in UTC
        ("2026-03-28T23:00:00.000Z", "2026-03-29"),
        ("2026-11-01T00:00:00+01:00", "2026-11-01"),
        ("2026-11-01T00:00:00Z", "2026-11-01"),
        ("2026-11-01", "2026-11-01"),
    ],
)
def test_a_duplicate_ceased_at_an_instant_is_dated_by_the_day_in_norway(valid_from: str, day: str) -> None:
    """Issue 28: Oslo's day of an instant wherever a date is taken from one (the first ten
    characters of 2026-10-31T23:00:00Z said 31 October)."""
    document = {"folkeregisterpersonstatus": [{"status": "opphoert", "gyldighetstidspunkt": valid_from}]}
    ceased = person_event(7, "PERSON_CEASED_AS_DUPLICATE", "new", "2026-11-02T00:00:00Z", document)
    assert ceased["eventDate"] == day


def test_a_restart_resumes_after_the_last_committed_page_and_a_broken_page_is_not_half_published(
    hub: Hub, feed: tuple[FolkeregisterStandIn, str]
) -> None:
    stand_in, url = feed
    persons = [synthetic_person().national_id for _ in range(6)]
    known(hub, *persons)
    stand_in.move(persons[0], "0301", MOVED)  # before the connector's first start
    first = follow(hub, url)  # it starts after what is already in the feed
    assert first.position == 2 and feed_items(hub) == []

    for round_ in range(4):  # 24 items, 2 to 25, in pages of 5
        for person in persons:
            stand_in.move(person, "0301" if round_ % 2 else "4601", MOVED + dt.timedelta(days=round_))
    with pytest.raises(RuntimeError, match="connection to Folkeregisteret lost"):
        follow(hub, url, fail_at=8)  # the second page breaks after 2 of its 5 look-ups
    assert feed_items(hub) == list(range(2, 7))  # only the first, whole page
    assert asyncio.run(read_position(admin_kafka(hub.settings), hub.names.connector_position)) == 7

    follow(hub, url)
    assert feed_items(hub) == list(range(2, 26))  # none skipped, none twice


def feed_items(hub: Hub) -> list[int]:
    """The sequence numbers of the feed items published (look-ups have negative ones)."""
    return sorted(c["sequenceNumber"] for c in published(hub) if c["sequenceNumber"] > 0)


def test_a_connector_killed_in_the_middle_of_a_page_resumes_without_a_gap_or_a_repeat(
    hub: Hub, tmp_path: Path
) -> None:
    stand_in = FolkeregisterStandIn(page_size=10, person_delay=0.02)
    persons = [synthetic_person().national_id for _ in range(10)]
    known(hub, *persons)
    with serving(stand_in) as url:
        settings = dataclasses.replace(hub.settings, folkeregister_url=url, folkeregister_poll_seconds=0.1)
        first = WorkerProcess.connector(settings, tmp_path / "connector-1.log").start()
        try:
            wait_until(
                lambda: (
                    asyncio.run(read_position(admin_kafka(settings), hub.names.connector_position))
                    is not None
                ),
                timeout=60,
                what="the connector to start",
            )
            for round_ in range(6):  # 60 items, 1 to 60, in pages of 10
                for person in persons:
                    stand_in.move(person, "0301", MOVED + dt.timedelta(days=round_))
            # 10 look-ups of new persons, then 10 per page: kill it inside the third page.
            wait_until(lambda: stand_in.requests_for_persons >= 35, timeout=60, what="two and a half pages")
        finally:
            first.kill()
        assert feed_items(hub)[-1] < 60  # killed before the end
        second = WorkerProcess.connector(settings, tmp_path / "connector-2.log").start()
        try:
            wait_until(lambda: feed_items(hub)[-1:] == [60], timeout=60, what="the rest of the feed")
        finally:
            second.stop()
    assert feed_items(hub) == list(range(1, 61))


def test_a_person_who_becomes_known_after_moving_is_looked_up_once(
    hub: Hub, feed: tuple[FolkeregisterStandIn, str]
) -> None:
    stand_in, url = feed
    late = synthetic_person().national_id
    follow(hub, url)
    stand_in.move(late, "4601", MOVED, postal_place="BERGEN")
    follow(hub, url)
    assert published(hub) == []  # not known when the move was read

    known(hub, late)  # a registration arrives for the person
    status = follow(hub, url)
    [change] = published(hub)
    assert change["sequenceNumber"] < 0 and (change["nationalId"], change["municipality"]) == (late, "4601")
    assert change["postalPlace"] == "BERGEN" and status.looked_up == 1
    follow(hub, url)
    assert len(published(hub)) == 1  # looked up once only


def test_a_look_up_carries_the_identity_change_and_the_death_the_feed_told_before_the_person_was_known(
    hub: Hub, feed: tuple[FolkeregisterStandIn, str]
) -> None:
    """Issue 27, fault 6: a D-number that became a fødselsnummer, and then a death, both read
    while no one knew the person, come again with the look-up made when they become known."""
    stand_in, url = feed
    d_number = make_national_id(dt.date(1991, 5, 6), 23, d_number=True) or ""
    fodselsnummer = synthetic_person().national_id or ""
    stand_in.change_identity(d_number, fodselsnummer)
    stand_in.die(fodselsnummer, dt.date(2026, 11, 2))
    follow(hub, url)
    assert published(hub) == []  # no one the register knew

    known(hub, d_number)  # a registration arrives under the old number
    follow(hub, url)
    by_type = {c["eventType"]: c for c in published(hub)}
    assert set(by_type) == {"ADDRESS_CHANGED", "IDENTITY_CHANGED", "PERSON_DIED"}
    assert all(c["sequenceNumber"] < 0 for c in by_type.values())
    identity = by_type["IDENTITY_CHANGED"]
    assert (identity["nationalId"], identity["formerNationalIds"]) == (fodselsnummer, [d_number])
    assert by_type["PERSON_DIED"]["eventDate"] == dt.date(2026, 11, 2)
    flow = address_flow(hub, RecordingPublisher())
    for change in published(hub):
        value = hub.catalog.encode(ADDRESS_CHANGE, change)
        assert asyncio.run(flow.process(Message(Origin("t", 0, 0), None, value))).failure is None
    with make_session_factory(hub.engine)() as session:
        person_id = find_person_id(session, d_number)
        assert person_id is not None and find_person_id(session, fodselsnummer) == person_id
        shown = describe_person(session, person_id)
    assert [s["state"] for s in shown["states"]] == ["dead"]


def test_a_renumbered_municipality_reaches_the_register_as_a_new_number_without_a_move(
    hub: Hub, feed: tuple[FolkeregisterStandIn, str]
) -> None:
    stand_in, url = feed
    person = synthetic_person().national_id
    known(hub, person)
    follow(hub, url)
    stand_in.move(person, "1507", dt.date(2021, 5, 1))
    follow(hub, url)
    stand_in.renumber(person, "1580", at=dt.datetime(2024, 1, 1, 5, tzinfo=dt.UTC))  # Haram again
    follow(hub, url)
    changes = published(hub)
    assert [(c["eventType"], c["municipality"], c["movedOn"]) for c in changes] == [
        ("ADDRESS_CHANGED", "1507", dt.date(2021, 5, 1)),
        ("ADDRESS_CHANGED_WITHOUT_MOVING", "1580", dt.date(2021, 5, 1)),
    ]

    flow = address_flow(hub, RecordingPublisher())
    for offset, change in enumerate(changes):
        value = hub.catalog.encode(ADDRESS_CHANGE, change)
        origin = Origin(hub.names.address_changes, 0, offset)
        assert asyncio.run(flow.process(Message(origin, None, value))).written
    with make_session_factory(hub.engine)() as session:
        shown = describe_person(session, find_person_id(session, person) or 0)
    assert shown["affiliation"] == [
        {"from": "2021-05-01", "municipality": "1507"},
        {"from": "2024-01-01", "municipality": "1580", "withoutMoving": True},
    ]
    assert shown["municipalityOn"]["municipality"] == "1580"


def test_the_connector_waits_out_429_and_sends_the_configured_token(hub: Hub, tmp_path: Path) -> None:
    stand_in = FolkeregisterStandIn(page_size=5, token="secret-token", throttle_every=2)
    person = synthetic_person().national_id
    known(hub, person)
    token_file = tmp_path / "token"
    token_file.write_text("secret-token\n")
    with serving(stand_in) as url:
        follow(hub, url, token=TokenFile(token_file))
        stand_in.move(person, "0301", MOVED)
        follow(hub, url, token=TokenFile(token_file))
        token_file.write_text("expired-token")
        with pytest.raises(ConfigurationError, match="refused the connector's credentials"):
            follow(hub, url, token=TokenFile(token_file))
    [change] = published(hub)
    assert change["nationalId"] == person and stand_in.requests > 4


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        (
            {
                "adressegradering": "ugradert",
                "matrikkeladresse": {"kommunenummer": "4631", "poststed": {"postnummer": "5911"}},
            },
            {"addressKind": "CADASTRAL_ADDRESS", "municipality": "4631", "postalCode": "5911"},
        ),
        (
            {"ukjentBosted": {"bostedskommune": "0301"}},
            {"addressKind": "UNKNOWN_RESIDENCE", "municipality": "0301"},
        ),
        (
            {"adressegradering": "fortrolig", "vegadresse": {"kommunenummer": "0301", "adressenavn": "X"}},
            {"protection": "CONFIDENTIAL", "addressLine": None, "municipality": "0301"},
        ),
        ({"adressegradering": "nyVerdi", "vegadresse": {"kommunenummer": "0301"}}, {"protection": "UNKNOWN"}),
    ],
)
def test_folkeregister_addresses_map_onto_the_contract(
    address: dict[str, Any], expected: dict[str, Any]
) -> None:
    person = {"bostedsadresse": [{"erGjeldende": True, "flyttedato": "2026-10-01", **address}]}
    change = address_change(7, "ADDRESS_CHANGED", "x", "2026-10-02T00:00:00Z", person)
    assert {k: change[k] for k in expected} == expected


def test_malformed_feed_items_and_person_documents_are_passed_over_and_the_feed_moves_on(
    hub: Hub, feed: tuple[FolkeregisterStandIn, str]
) -> None:
    stand_in, url = feed
    good, broken = synthetic_person().national_id or "", synthetic_person().national_id or ""
    known(hub, good, broken)
    follow(hub, url)  # looked up (nothing yet), and the position kept at the feed's start
    stand_in.add_raw_item("not an object")
    stand_in.add_raw_item({"sekvensnummer": "x", "hendelse": {}})
    stand_in.add_raw_item(
        {
            "sekvensnummer": 3,
            "hendelse": {
                "hendelsetype": "endringIBostedsadresse",
                "folkeregisteridentifikator": good + "\x00",
            },
        }
    )
    stand_in.add_raw_item({"sekvensnummer": 4, "hendelse": None})
    stand_in.move(broken, "0301", MOVED)
    stand_in.set_raw_person(
        broken, {"bostedsadresse": [{"erGjeldende": True, "flyttedato": "yesterday", "vegadresse": 5}]}
    )
    stand_in.move(good, "4601", MOVED)

    status = follow(hub, url)

    assert [c["nationalId"] for c in published(hub)] == [good]
    assert (status.malformed, status.published, status.position) == (5, 1, 7)


@pytest.mark.parametrize(
    "document",
    [
        {"doedsfall": 5, "folkeregisterpersonstatus": "opphoert", "identifikasjonsnummer": 7},
        {
            "doedsfall": [None, "x"],
            "folkeregisterpersonstatus": [1],
            "identifikasjonsnummer": [{"status": 3}],
        },
        {
            "identifikasjonsnummer": [{"foedselsEllerDNummer": "1\x00"}],
            "doedsfall": [{"doedsdato": 20260101}],
        },
        ["not", "an", "object"],
    ],
)
def test_a_look_up_of_a_malformed_person_document_passes_it_over_and_the_connector_goes_on(
    hub: Hub, feed: tuple[FolkeregisterStandIn, str], document: Any
) -> None:
    """The look-up reads a newly known person's identity change, death and cessation from their
    document: whatever shape it has, no change it cannot be read into is published, and nothing
    stops the connector."""
    stand_in, url = feed
    number = synthetic_person().national_id or ""
    stand_in.set_raw_person(number, document)
    known(hub, number)
    status = follow(hub, url)
    assert status.looked_up == 1
    changes = published(hub)
    assert all(c["nationalId"] == number for c in changes)  # never a number the document made up
    assert {c["eventType"] for c in changes} <= {"ADDRESS_CHANGED", "PERSON_DIED"}


def test_the_stand_in_publishes_person_events_over_http_and_refuses_a_body_it_cannot_read() -> None:
    """Issue 15, fault 6: the stand-in published identity changes, deaths and duplicate
    cessations from Python only; the demo and manual testing go through its HTTP endpoints."""
    stand_in = FolkeregisterStandIn()
    old = make_national_id(dt.date(1991, 3, 14), 123, d_number=True) or ""
    new = synthetic_person().national_id or ""

    async def post(url: str, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        async with (
            aiohttp.ClientSession() as session,
            session.post(url.split("/folkeregisteret")[0] + path, json=body) as r,
        ):
            return r.status, await r.json()

    async def run(url: str) -> list[tuple[int, dict[str, Any]]]:
        return [
            await post(url, "/standin/identity-changes", {"oldNationalId": old, "nationalId": new}),
            await post(url, "/standin/deaths", {"nationalId": new, "diedOn": "2026-11-01"}),
            await post(url, "/standin/duplicates", {"nationalId": old, "ceasedOn": "2026-11-02"}),
            await post(url, "/standin/deaths", {"nationalId": new}),
            await post(url, "/standin/deaths", ["not", "an", "object"]),
        ]

    with serving(stand_in) as url:
        answers = asyncio.run(run(url))
    assert [status for status, _ in answers] == [200, 200, 200, 400, 400]
    assert [a["sekvensnummer"] for _, a in answers[:3]] == [1, 2, 3]
    assert "diedOn" in answers[3][1]["error"]
    assert stand_in.latest_sequence == 3
