"""No message, whatever its bytes, stops the hub: a fuzz run on the real broker, on SQLite and on
PostgreSQL; a message that kills the worker every time it is read; the support page's hostile
parameters.

The fuzz run sends 5,000 hostile messages (`tests.hostile`) to both sources' registrations
topics, the address changes and the dead letters, with the worker logging at debug level, then
valid events from two sources. It checks that the worker never ends, that every message ends as
a final receipt, a dead letter or a ticket, that every input partition is committed to its end,
that the valid events after it are accepted within 60 seconds, and that no fødselsnummer appears in
clear in the log, a receipt, a dead-letter header, a ticket or `hub cases list`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import http.cookiejar
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import select

from hub.dev.localrun import LocalBroker
from hub.kafka.admin import committed_offsets, end_offsets
from hub.kafka.connection import KafkaConnection
from hub.pipeline.deadletter import H_OFFSET, H_PARTITION, H_TOPIC
from hub.register.database import make_session_factory
from hub.register.models import CaseTicket, UnfinishedWork
from hub.support.access import Role, create_user
from tests.conftest import make_settings
from tests.factories import event, synthetic_person
from tests.harness import HubHarness, hub_command, wait_until
from tests.hostile import Hostile, hostile_messages, identifiers_in, routed

SOURCES = ["oslo-fagsystem", "vestland-fagsystem"]
MUNICIPALITY = {"oslo-fagsystem": "0301", "vestland-fagsystem": "4601"}
FUZZ_MESSAGES = 5000
FAULTS = Path(__file__).resolve().parent / "faults"
PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _long_timeout(request: pytest.FixtureRequest) -> None:
    request.node.add_marker(pytest.mark.timeout(900))


@pytest.fixture
def hostile_hub(kafka_broker: LocalBroker, database_url: str, tmp_path: Path) -> Iterator[HubHarness]:
    # Held events end (as rejections) within seconds, so every message reaches a final outcome.
    settings = dataclasses.replace(
        make_settings(kafka_broker, database_url, tmp_path), hold_seconds=2.0, hold_check_seconds=1.0
    )
    with HubHarness(settings, tmp_path) as harness:
        yield harness


async def _send(kafka: KafkaConnection, messages: list[tuple[str, Hostile]]) -> list[tuple[str, int, int]]:
    """Send each to its topic as it is (no checks); returns where each was written."""
    producer = AIOKafkaProducer(**kafka.aiokafka(), acks="all", max_request_size=2_000_000)
    await producer.start()
    try:
        futures = [await producer.send(topic, m.value, key=m.key) for topic, m in messages]
        return [(md.topic, md.partition, md.offset) for md in await asyncio.gather(*futures)]
    finally:
        await producer.stop()


def _all_committed(harness: HubHarness, topics: list[str]) -> bool:
    ends = asyncio.run(end_offsets(harness.admin.kafka, topics))
    committed = asyncio.run(committed_offsets(harness.admin.kafka, harness.settings.app_id))
    return all(committed.get(tp, 0) >= end for tp, end in ends.items() if end > 0)


def _tickets(harness: HubHarness) -> list[CaseTicket]:
    with make_session_factory(harness.hub.engine)() as session:
        return list(session.scalars(select(CaseTicket)))


def test_no_message_whatever_its_bytes_stops_the_hub_or_shows_an_identifier(hostile_hub: HubHarness) -> None:
    harness = hostile_hub
    names = harness.hub.names
    fuzz = hostile_messages(harness.hub.catalog, seed=12, count=FUZZ_MESSAGES, sources=SOURCES)
    routes = routed(fuzz, names, SOURCES)
    planted = {i for m in fuzz for i in m.identifiers}
    worker = harness.start_worker(log_level="debug")

    sent = asyncio.run(_send(harness.admin.kafka, routes))
    registrations = [where for where, (_, m) in zip(sent, routes, strict=True) if m.kind == "registrations"]

    # Then valid events from both sources: each accepted within 60 s of being sent.
    valid = [
        event(synthetic_person(), source=s, municipality=MUNICIPALITY[s]) for s in SOURCES for _ in range(10)
    ]
    published_at = time.monotonic()
    harness.publish(valid)
    wanted = {e["eventId"] for e in valid}
    records = harness.read_outputs(
        until=lambda rs: (
            wanted <= {str(r["eventId"]) for r in harness.receipts(rs) if r["outcome"] == "ACCEPTED"}
        ),
        timeout=60,
    )
    waited = time.monotonic() - published_at
    accepted = {str(r["eventId"]) for r in harness.receipts(records) if r["outcome"] == "ACCEPTED"}
    assert wanted <= accepted, f"{len(wanted - accepted)} valid events not accepted within 60 s"
    print(f"valid events after {FUZZ_MESSAGES} hostile messages accepted within {waited:.1f} s")

    # Every input partition is committed to its end: nothing is stuck.
    inputs = [names.address_changes, names.dead_letters, *(names.registrations(s) for s in SOURCES)]
    harness.wait_until(lambda: _all_committed(harness, inputs), timeout=240, what="every input committed")
    assert worker.running, harness.worker_logs()[-3000:]

    # Every registrations message has a final receipt (both sources are in the registry).
    def answered(rs: list[Any]) -> set[tuple[str, int, int]]:
        return {
            (r["originalTopic"], r["originalPartition"], r["originalOffset"])
            for r in harness.receipts(rs)
            if r["outcome"] != "HELD"
        }

    records = harness.read_outputs(until=lambda rs: set(registrations) <= answered(rs), timeout=60)
    receipts = harness.receipts(records)
    final = {
        (r["originalTopic"], r["originalPartition"], r["originalOffset"]): r["outcome"]
        for r in receipts
        if r["outcome"] != "HELD"
    }
    unanswered = [where for where in registrations if where not in final]
    assert unanswered == [], f"{len(unanswered)} messages without a final receipt, e.g. {unanswered[:3]}"
    codes = {v["code"] for r in receipts for v in r["violations"]}
    assert "NIR-INTERNAL" not in codes and "NIR-REGISTER-REFUSED" not in codes, codes

    # Every dead letter the hub wrote became a ticket (or attached to its event's ticket).
    letters = harness.dead_letters(records)
    hub_letters = [d for d in letters if H_TOPIC in d.headers]
    tickets = _tickets(harness)  # the dead letters were committed above, so their tickets are there
    places = {(t.original_topic, t.original_partition, t.original_offset) for t in tickets}
    event_ids = {t.event_id for t in tickets}
    for letter in hub_letters:
        where = (letter.headers[H_TOPIC], int(letter.headers[H_PARTITION]), int(letter.headers[H_OFFSET]))
        try:
            event_id = str(harness.hub.catalog.decode(letter.value).datum["eventId"])
        except Exception:
            event_id = None
        assert where in places or event_id in event_ids, where

    # No identifier in clear anywhere the hub writes text.
    listed = hub_command(harness.settings, "cases", "list", "--json", "--reason", "test")
    assert listed.returncode == 0, listed.stderr
    outputs = {
        "the worker log": harness.worker_logs(),
        "hub cases list": listed.stdout + listed.stderr,
        "the receipts": "\n".join(str(r) for r in receipts),
        "the dead-letter headers": "\n".join(" ".join(d.headers.values()) for d in letters),
        "the tickets": "\n".join(
            " ".join(
                str(v)
                for v in (t.error_message, t.source_system, t.municipality, t.event_type, t.description)
            )
            for t in tickets
        ),
    }
    for name, text in outputs.items():
        leaked = identifiers_in(text) | {i for i in planted if i in text}
        example = next(iter(leaked), "")
        context = text[max(0, text.find(example) - 300) : text.find(example) + 100] if example else ""
        assert not leaked, f"{len(leaked)} identifiers in clear in {name}, e.g.:\n{context}"
    assert "exiting without committing" not in harness.worker_logs()
    assert "Logging error" not in harness.worker_logs()
    # The log is quiet enough to read, even at debug level: the Kafka client's request dumps (a
    # line per fetch, with message bytes) are kept out, and repeats are held back.
    lines = len(harness.worker_logs().splitlines())
    print(f"worker log: {lines} lines for {FUZZ_MESSAGES + len(valid)} messages")
    assert lines < 1000

    _support_page_refuses_hostile_parameters_clearly(harness)


def _support_page_refuses_hostile_parameters_clearly(harness: HubHarness) -> None:
    with harness.hub.unit_of_work() as uow:
        create_user(uow, "imdi", PASSWORD, Role.IMDI_SUPPORT, None, harness.hub.clock())
        uow.commit()
    base = f"http://127.0.0.1:{harness.settings.web_port}/support"
    cookies = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies))

    def call(path: str, form: dict[str, str] | None = None) -> tuple[int, str]:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        try:
            with opener.open(base + path, data=data, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    # The sign-in form's anti-forgery value, from the cookie the form comes with.
    _, page = call("/login")
    found = re.search(r'name="form_token" value="([0-9a-f]+)"', page)
    assert found is not None
    token = found.group(1)
    status, body = call("/login", {"username": "imdi\x00", "password": PASSWORD, "form_token": token})
    assert status == 400 and "feil brukernavn eller passord" in body  # Norwegian by default
    status, page = call(
        "/login", {"username": "imdi", "password": PASSWORD, "next": "/tickets", "form_token": token}
    )
    # The second factor: enrol with the secret the page shows, as an authenticator app would.
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page)
    second = re.search(r'name="form_token" value="([0-9a-f]+)"', page)
    assert status == 200 and secret is not None and second is not None
    code = pyotp.TOTP(secret.group(1).replace(" ", "")).now()
    status, page = call("/login/second-factor", {"code": code, "next": "/tickets", "form_token": second.group(1)})
    assert status == 200 and 'id="recovery-codes"' in page
    duf = "201812345604"
    for query, expected in (
        ({"from": "01.01.0001"}, "datoer er fra 01.01.1900"),
        ({"until": "31.12.9999"}, "datoer er fra 01.01.1900"),
        ({"from": "yesterday"}, "datoer skrives DD.MM.ÅÅÅÅ"),
        ({"from": "2026-12-01"}, "datoer skrives DD.MM.ÅÅÅÅ"),
        ({"code": "\x00"}, "feilkoden må være lesbar tekst"),
        ({"page": "0"}, "sidenummeret må være et helt tall"),
        ({"sort": "password"}, "har en verdi siden ikke tilbyr"),
        ({"person": duf}, "hører ikke hjemme i en adresse"),  # a person is searched for by POST
    ):
        status, body = call("/tickets?" + urllib.parse.urlencode(query))
        assert (status, expected in body) == (400, True), (query, status)
    _, page = call("/tickets")
    found = re.search(r'name="form_token" value="([0-9a-f]+)"', page)
    assert found is not None
    for person in ("\x00abc", duf + "x" * 100, duf[:8]):  # a part would list others' cases
        status, body = call("/tickets/search", {"person": person, "form_token": found.group(1)})
        assert (status, "søk med et helt DUF-nummer" in body) == (400, True), (person, status)
    status, _ = call("/tickets/search", {"person": duf, "code": "NIR-TEXT-001", "form_token": found.group(1)})
    assert status == 200
    log = harness.worker_logs()
    assert "Traceback" not in log and duf not in log


def test_a_message_that_kills_the_worker_every_time_is_set_aside_and_its_partition_moves_on(
    kafka_broker: LocalBroker, sqlite_url: str, tmp_path: Path
) -> None:
    settings = dataclasses.replace(make_settings(kafka_broker, sqlite_url, tmp_path), crash_attempts=2)
    with HubHarness(settings, tmp_path) as harness:
        persons = [synthetic_person() for _ in range(6)]
        events = [event(p) for p in persons]
        events[2]["fagsystemVersion"] = "CRASH-ME"
        values = [harness.hub.catalog.encode("registration_event", _datum(e)) for e in events]
        topic = harness.hub.names.registrations("oslo-fagsystem")

        async def send() -> None:  # all on one partition, the crashing one third
            producer = AIOKafkaProducer(**harness.admin.kafka.aiokafka(), acks="all")
            await producer.start()
            try:
                for value in values:
                    await producer.send_and_wait(topic, value, partition=0)
            finally:
                await producer.stop()

        asyncio.run(send())
        # Before any path the test itself runs with, so the fault is found first.
        path = os.pathsep.join(p for p in (str(FAULTS), os.environ.get("PYTHONPATH")) if p)
        environment = {"PYTHONPATH": path, "NIR_TEST_CRASH_MARKER": "CRASH-ME"}
        deaths = 0
        started = time.monotonic()
        wanted = {e["eventId"] for e in events}
        while True:
            worker = harness.start_worker(environment=environment, same_port=True)
            wait_until(
                lambda: not worker.running or len(harness.registrations()) == 5,  # noqa: B023
                timeout=90,
                what="the worker to die or finish",
            )
            if worker.running:
                break
            deaths += 1
            assert worker.process.returncode == 134
            assert deaths <= 5, harness.worker_logs()[-3000:]
        receipts, letters = harness.wait_for_receipts(6, timeout=60)
        print(f"set aside after {deaths} deaths, {time.monotonic() - started:.0f} s")
        outcomes = {str(r["eventId"]): r for r in receipts if r["eventId"] is not None}
        # Once in a batch, then twice on its own (NIR_CRASH_ATTEMPTS=2): then set aside, unread.
        assert deaths == 3
        poisoned = next(r for r in receipts if r["eventId"] is None)
        assert poisoned["outcome"] == "REJECTED" and poisoned["violations"][0]["code"] == "NIR-POISON"
        assert poisoned["originalOffset"] == 2
        assert {k for k, r in outcomes.items() if r["outcome"] == "ACCEPTED"} == wanted - {
            events[2]["eventId"]
        }
        assert [d.headers["nir.error.code"] for d in letters] == ["NIR-POISON"]
        harness.wait_until(
            lambda: [t.error_code for t in _tickets(harness)] == ["NIR-POISON"], timeout=60, what="the ticket"
        )
        with make_session_factory(harness.hub.engine)() as session:
            assert list(session.scalars(select(UnfinishedWork))) == []


def _datum(e: dict[str, Any]) -> dict[str, Any]:
    from hub.schemas.contract import from_json

    return from_json(e)
