"""The HTTPS ingestion gateway end to end: a `hub gateway` process over TLS, tokens from a
Maskinporten stand-in, the real secured broker and a worker writing the register."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.dev.localrun import LocalBroker
from hub.domain.sources import SourceState
from hub.kafka.admin import end_offsets
from hub.schemas.codec import REGISTRATION
from hub.schemas.contract import from_json
from tests.factories import event, synthetic_person
from tests.gateway import SOURCE_A, SOURCE_B, GatewayUnderTest, gateway_harness, gateway_under_test
from tests.harness import HubHarness, wait_until
from tests.maskinporten import rsa_key


@pytest.fixture
def harness(kafka_broker: LocalBroker, sqlite_url: str, tmp_path: Path) -> Iterator[HubHarness]:
    with gateway_harness(kafka_broker, sqlite_url, tmp_path) as h:
        yield h


@pytest.fixture
def gateway(harness: HubHarness, tmp_path: Path) -> Iterator[GatewayUnderTest]:
    # Limits a test that posts as fast as it can does not reach (one test tries them); few
    # receipts kept in memory, so that reading from the start goes to the topic.
    with gateway_under_test(
        harness.settings,
        tmp_path,
        gateway_rate_per_second=1000.0,
        gateway_rate_burst=1000,
        gateway_receipts_kept=10,
    ) as under_test:
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


def _offset(cursor: str) -> int:
    from hub.gateway.receipts import decode_cursor

    return decode_cursor(cursor, SOURCE_A)


def test_a_killed_gateway_loses_no_acknowledged_event_and_receipts_read_by_cursor_are_complete_and_in_order(
    harness: HubHarness, gateway: GatewayUnderTest
) -> None:
    harness.start_worker()
    token = gateway.granted_token(SOURCE_A)
    acknowledged: list[str] = []
    stop = threading.Event()

    def post_until_stopped() -> None:
        while not stop.is_set():
            batch = [a_event() for _ in range(5)]
            try:
                answer = gateway.call("POST", "/v1/events", token=token, body={"events": batch}, timeout=10)
            except OSError:  # the gateway is gone: nothing of this batch was acknowledged
                continue
            if answer.status == 202:
                acknowledged.extend(r["eventId"] for r in answer.body["results"] if r["status"] == "accepted")

    poster = threading.Thread(target=post_until_stopped)
    poster.start()
    try:
        wait_until(lambda: len(acknowledged) >= 40, timeout=60, what="40 acknowledged events")
        # Part of the receipts by cursor before the crash, the rest after it.
        first_page = gateway.receipts(token, limit=7, wait=10)
        gateway.kill()
        stop.set()
    finally:
        stop.set()
        poster.join(30)
    gateway.start()
    assert first_page.status == 200 and first_page.body["receipts"], first_page

    harness.wait_until(
        lambda: set(acknowledged) <= {r.event_id for r in harness.registrations()},
        timeout=90,
        what="every acknowledged event in the register",
    )
    registered = {r.event_id for r in harness.registrations()}
    topic = harness.hub.names.receipts(SOURCE_A)
    time.sleep(2)  # the receipts of the last events written
    [end] = asyncio.run(end_offsets(harness.admin.kafka, [topic])).values()

    receipts = list(first_page.body["receipts"])
    cursor = first_page.body["cursor"]
    while _offset(cursor) < end:
        page = gateway.receipts(token, after=cursor, limit=7, wait=5)
        assert page.status == 200, page
        receipts += page.body["receipts"]
        cursor = page.body["cursor"]
    offsets = [_offset(r["cursor"]) - 1 for r in receipts]
    assert offsets == list(range(end)), "every receipt once, in the topic's order"
    assert {r["eventId"] for r in receipts if r["outcome"] == "ACCEPTED"} == registered
    assert gateway.receipts(token, after=cursor).body == {"receipts": [], "cursor": cursor}


def test_hostile_bodies_get_precise_problems_and_none_harms_the_gateway(
    harness: HubHarness, gateway: GatewayUnderTest
) -> None:
    token = gateway.granted_token(SOURCE_A)
    limit = gateway.settings.gateway_max_request_bytes
    nul = a_event()
    nul["payload"] = {"claimedWithinDeadline": True, "\x00": "\x00"}
    person_in_a_field_name = a_event()
    person_in_a_field_name["12345678901"] = 1
    hostile: dict[str, tuple[bytes, str, int, str]] = {
        "not JSON": (b"{not json", "application/json", 400, "invalid-json"),
        "not UTF-8": (b'{"a": "\xff"}', "application/json", 400, "invalid-json"),
        "NaN": (b'{"events": [NaN]}', "application/json", 400, "invalid-json"),
        "a list": (b"[]", "application/json", 400, "invalid-body"),
        "a string": (b'"event"', "application/json", 400, "invalid-body"),
        "events not a list": (b'{"events": {}}', "application/json", 400, "invalid-body"),
        "no events": (b'{"events": []}', "application/json", 400, "invalid-body"),
        "deep nesting": (
            b'{"events": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            "application/json",
            400,
            "invalid-json",
        ),
        "too large": (b" " * (limit + 1), "application/json", 413, "request-too-large"),
        "too many events": (
            json.dumps({"events": [{}] * (gateway.settings.gateway_max_batch_events + 1)}).encode(),
            "application/json",
            413,
            "batch-too-large",
        ),
        "wrong content type": (json.dumps(a_event()).encode(), "text/plain", 415, "unsupported-media-type"),
        "a form": (b"a=b", "application/x-www-form-urlencoded", 415, "unsupported-media-type"),
        "NUL bytes": (json.dumps(nul).encode(), "application/json", 400, "invalid-event"),
        "wrong types": (
            json.dumps({"eventId": 5, "payload": []}).encode(),
            "application/json",
            400,
            "invalid-event",
        ),
        "an identifier as a field": (
            json.dumps(person_in_a_field_name).encode(),
            "application/json",
            400,
            "invalid-event",
        ),
        "garbage as Avro": (b"\xc3\x01" + b"\x00" * 20, "application/avro", 400, "invalid-event"),
        "JSON as Avro": (json.dumps(a_event()).encode(), "application/avro", 400, "invalid-event"),
    }
    for why, (body, content_type, status, kind) in hostile.items():
        answer = gateway.call("POST", "/v1/events", token=token, raw=body, content_type=content_type)
        assert answer.status == status, (why, answer)
        assert answer.headers["Content-Type"].startswith("application/problem+json"), why
        assert answer.body["type"] == f"urn:nir:problem:{kind}", (why, answer)
        assert "12345678901" not in json.dumps(answer.body), why
    assert gateway.call("GET", "/v1/events/not-a-uuid", token=token).status == 400
    assert gateway.call("GET", "/v1/nothing", token=token).body["type"] == "urn:nir:problem:not-found"
    assert gateway.call("DELETE", "/v1/events", token=token).status == 405
    for cursor in (
        "x",
        "djE6Ynlk",
        "AAAA" * 100,
        "djI6YnlkZWwtZmFnc3lzdGVtOjA",
        "djE6YnlkZWwtZmFnc3lzdGVtOjk5OTk",
    ):
        assert gateway.receipts(token, after=cursor).status == 400, cursor
    assert gateway.receipts(token, wait="soon").status == 400
    assert "12345678901" not in gateway.log()
    assert gateway.process is not None and gateway.process.running
    assert gateway.call("POST", "/v1/events", token=token, body=a_event()).status == 202


def test_an_event_sent_as_avro_single_object_bytes_is_taken_as_it_came(
    harness: HubHarness, gateway: GatewayUnderTest
) -> None:
    token = gateway.granted_token(SOURCE_A)
    catalog = harness.hub.catalog
    for version in (3, None):
        sent = a_event()
        schema = catalog.version(REGISTRATION, version) if version else None
        value = catalog.encode(REGISTRATION, from_json(sent, schema), version)
        answer = gateway.call("POST", "/v1/events", token=token, raw=value, content_type="application/avro")
        assert answer.status == 202 and answer.body["results"][0]["eventId"] == sent["eventId"], answer
    other = event(synthetic_person(), source=SOURCE_B, municipality="4601")
    value = catalog.encode(REGISTRATION, from_json(other))
    refused = gateway.call("POST", "/v1/events", token=token, raw=value, content_type="application/avro")
    assert refused.status == 403 and refused.body["type"] == "urn:nir:problem:forbidden-source", refused


def test_a_source_over_its_rate_gets_429_with_retry_after_and_the_others_go_on(
    harness: HubHarness, tmp_path: Path
) -> None:
    with gateway_under_test(
        harness.settings, tmp_path / "limited", gateway_rate_per_second=0.5, gateway_rate_burst=3
    ) as gateway:
        gateway.start()
        token_a, token_b = gateway.token(SOURCE_A), gateway.token(SOURCE_B)
        answers = [gateway.receipts(token_a).status for _ in range(4)]
        assert answers == [200, 200, 200, 429]
        limited = gateway.receipts(token_a)
        assert limited.status == 429 and int(limited.headers["Retry-After"]) >= 1, limited
        assert gateway.receipts(token_b).status == 200

        with urllib.request.urlopen(gateway.operations_url + "/metrics", timeout=5) as response:
            exposition = response.read().decode()
        assert 'nir_gateway_refusals_total{reason="rate-limited"} 2.0' in exposition
        assert 'nir_gateway_requests_total{method="GET",route="/v1/receipts",status="429"} 2.0' in exposition
        assert "nir_gateway_request_duration_seconds_bucket" in exposition
        access = [
            json.loads(line.split(": ", 1)[1])
            for line in gateway.log().splitlines()
            if "hub.gateway.access" in line
        ]
        assert access and access[-1]["source"] == SOURCE_B and access[-1]["route"] == "/v1/receipts"
        assert {"request_id", "status", "duration_ms"} <= set(access[-1])


def test_a_revoked_source_is_refused_by_the_running_gateway_and_let_in_again_when_restored(
    harness: HubHarness, gateway: GatewayUnderTest
) -> None:
    token_a, token_b = gateway.token(SOURCE_A), gateway.token(SOURCE_B)
    b_event = event(synthetic_person(), source=SOURCE_B, municipality="4601")
    assert gateway.call("POST", "/v1/events", token=token_a, body=a_event()).status == 202

    def publish(revoked: bool) -> None:
        """What `hub sources revoke` and `restore` write: the state, keyed by the source, as the admin."""
        state = SourceState(SOURCE_A, revoked, dt.datetime.now(dt.UTC), "imdi-support", "issue 29")
        harness.publish_raw(harness.hub.names.source_states, state.as_bytes(), key=SOURCE_A.encode())

    def post_a() -> int:
        return gateway.call("POST", "/v1/events", token=token_a, body=a_event()).status

    publish(True)
    wait_until(lambda: post_a() == 403, timeout=15, what="the running gateway to refuse the revoked source")
    refused = gateway.call("POST", "/v1/events", token=token_a, body=a_event())
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    assert refused.body["type"] == "urn:nir:problem:source-revoked" and refused.body["status"] == 403
    assert gateway.receipts(token_a).status == 403
    assert gateway.call("POST", "/v1/events", token=token_b, body=b_event).status == 202

    # A restarted gateway reads the revocation before it takes any request.
    gateway.stop()
    gateway.start()
    assert post_a() == 403

    publish(False)
    wait_until(lambda: post_a() == 202, timeout=15, what="the restored source to be let in again")
    assert gateway.receipts(token_a).status == 200
