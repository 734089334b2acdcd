"""The HTTPS ingestion gateway end to end: a `hub gateway` process over TLS, tokens from a
Maskinporten stand-in, the real secured broker and a worker writing the register."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.localrun import LocalBroker
from tests.conftest import make_settings
from tests.factories import event, synthetic_person
from tests.gateway import REGISTRY, SOURCE_A, SOURCE_B, GatewayUnderTest, gateway_under_test
from tests.harness import HubHarness
from tests.maskinporten import rsa_key


@pytest.fixture
def harness(kafka_broker: LocalBroker, sqlite_url: str, tmp_path: Path) -> Iterator[HubHarness]:
    registry = tmp_path / "sources.toml"
    registry.write_text(REGISTRY)
    settings = dataclasses.replace(
        make_settings(kafka_broker, sqlite_url, tmp_path), sources_file=str(registry)
    )
    with HubHarness(settings, tmp_path) as h:
        yield h


@pytest.fixture
def gateway(harness: HubHarness, tmp_path: Path) -> Iterator[GatewayUnderTest]:
    with gateway_under_test(harness.settings, tmp_path) as under_test:
        yield under_test.start()


def a_event(**changes: Any) -> dict[str, Any]:
    return event(synthetic_person(), source=SOURCE_A, municipality="0301", **changes)


def test_a_source_posts_its_events_and_reads_its_receipts_and_never_another_sources(
    harness: HubHarness, gateway: GatewayUnderTest
) -> None:
    harness.start_worker()
    token_a, token_b = gateway.granted_token(SOURCE_A), gateway.granted_token(SOURCE_B)
    events = [a_event() for _ in range(3)]

    posted = gateway.call("POST", "/v1/events", token=token_a, body={"events": events})
    assert posted.status == 202, posted
    results = posted.body["results"]
    assert [r["eventId"] for r in results] == [e["eventId"] for e in events]
    assert {r["status"] for r in results} == {"accepted"}
    assert {r["topic"] for r in results} == {harness.hub.names.registrations(SOURCE_A)}

    receipts = gateway.all_receipts(token_a, 3)
    assert {r["eventId"] for r in receipts} == {e["eventId"] for e in events}
    assert {r["outcome"] for r in receipts} == {"ACCEPTED"}
    one = gateway.call("GET", f"/v1/events/{events[0]['eventId']}", token=token_a)
    assert one.status == 200 and one.body["outcome"] == "ACCEPTED", one
    assert harness.registration_count() == 3

    # B sees none of it, and cannot send as A.
    assert gateway.call("GET", f"/v1/events/{events[0]['eventId']}", token=token_b).status == 404
    assert gateway.receipts(token_b).body["receipts"] == []
    assert gateway.receipts(token_b, source=SOURCE_A).status == 403
    assert gateway.receipts(token_b, after=receipts[-1]["cursor"]).status == 403
    as_a = gateway.call("POST", "/v1/events", token=token_b, body=a_event())
    assert as_a.status == 403, as_a
    assert as_a.headers["Content-Type"].startswith("application/problem+json")
    assert as_a.body["type"] == "urn:nir:problem:forbidden-source"
    assert as_a.body["errors"][0]["field"] == "sourceSystem"


def test_expired_wrongly_signed_and_wrong_scope_tokens_get_401(gateway: GatewayUnderTest) -> None:
    now = int(time.time())
    refused = {
        "no token": None,
        "not a token": "not-a-jwt",
        "expired": gateway.token(SOURCE_A, iat=now - 600, exp=now - 300),
        "signed by another key": gateway.token(SOURCE_A, key=rsa_key(7)),
        "for another scope": gateway.token(SOURCE_A, scope="nir:kafka"),
        "for another audience": gateway.token(SOURCE_A, aud="nir-kafka"),
        "from another issuer": gateway.token(SOURCE_A, iss="https://maskinporten.example/"),
        "without a client": gateway.token(SOURCE_A, client_id=None),
    }
    for why, token in refused.items():
        answer = gateway.call("GET", "/v1/receipts", token=token)
        assert answer.status == 401, (why, answer)
        assert answer.headers["WWW-Authenticate"].startswith("Bearer"), why
        assert answer.body["type"] == "urn:nir:problem:invalid-token", why
    unknown = gateway.token(SOURCE_A, client_id=str(uuid.uuid4()))
    assert gateway.call("GET", "/v1/receipts", token=unknown).status == 403
    assert gateway.call("GET", "/v1/receipts", token=gateway.token(SOURCE_A)).status == 200


def test_an_event_posted_twice_is_registered_once(harness: HubHarness, gateway: GatewayUnderTest) -> None:
    token = gateway.granted_token(SOURCE_A)
    once = a_event()
    first = gateway.call("POST", "/v1/events", token=token, body=once)
    # Sent again before any worker has answered it: the gateway knows it sent it.
    again = gateway.call("POST", "/v1/events", token=token, body=once)
    in_one_batch = gateway.call("POST", "/v1/events", token=token, body={"events": [a_event(), once]})
    assert first.status == 202 and first.body["results"][0]["status"] == "accepted", first
    assert first.headers["Location"] == f"/v1/events/{once['eventId']}"
    assert again.status == 202 and again.body["results"][0]["status"] == "already-received", again
    assert again.body["results"][0]["offset"] == first.body["results"][0]["offset"]
    assert [r["status"] for r in in_one_batch.body["results"]] == ["accepted", "already-received"]

    harness.start_worker()
    gateway.all_receipts(token, 2)
    # After a restart the gateway learns it from the receipts.
    gateway.stop()
    gateway.start()
    later = gateway.call("POST", "/v1/events", token=token, body=once)
    assert later.body["results"][0] | {"index": 0} == {
        "index": 0,
        "eventId": once["eventId"],
        "status": "already-received",
        "outcome": "ACCEPTED",
    }, later
    assert harness.registration_count() == 2


def test_a_batch_with_one_bad_event_refuses_only_that_event(
    harness: HubHarness, gateway: GatewayUnderTest
) -> None:
    token = gateway.granted_token(SOURCE_A)
    good, bad, other = a_event(), a_event(), a_event()
    del bad["factDate"]
    bad["payload"] = {"claimedWithinDeadline": "yes"}
    answer = gateway.call("POST", "/v1/events", token=token, body={"events": [good, bad, other]})
    assert answer.status == 202, answer
    statuses = [r["status"] for r in answer.body["results"]]
    assert statuses == ["accepted", "refused", "accepted"]
    problem = answer.body["results"][1]["problem"]
    assert problem["type"] == "urn:nir:problem:invalid-event" and problem["status"] == 400
    assert {e["field"] for e in problem["errors"]} == {"factDate", "payload.claimedWithinDeadline"}
    assert answer.body["results"][1]["eventId"] == bad["eventId"]

    only_bad = gateway.call("POST", "/v1/events", token=token, body=bad)
    assert only_bad.status == 400 and only_bad.body["eventId"] == bad["eventId"], only_bad
