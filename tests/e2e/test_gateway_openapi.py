"""The gateway's OpenAPI document says what the gateway really answers: every answer of a
session that touches each route and refusal is checked against the document's schema for its
route, method, status and content type."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from hub.dev.localrun import LocalBroker
from hub.gateway.server import OPENAPI_FILE
from tests.factories import event, synthetic_person
from tests.gateway import SOURCE_A, SOURCE_B, Answer, GatewayUnderTest, gateway_harness, gateway_under_test

BASE = "urn:nir:gateway-openapi"


@pytest.fixture
def gateway(kafka_broker: LocalBroker, sqlite_url: str, tmp_path: Path) -> Iterator[GatewayUnderTest]:
    with (
        gateway_harness(kafka_broker, sqlite_url, tmp_path) as harness,
        gateway_under_test(
            harness.settings,
            tmp_path,
            gateway_rate_burst=40,
            gateway_database_url=harness.settings.database_url,
        ) as under_test,
    ):
        harness.start_worker()
        yield under_test.start()


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def check(document: dict[str, Any], route: str, method: str, answer: Answer) -> None:
    operation = document["paths"][route][method.lower()]
    responses = operation["responses"]
    assert str(answer.status) in responses, f"{method} {route} answered {answer.status}, not documented"
    content_type = answer.headers["Content-Type"].split(";")[0]
    content = responses[str(answer.status)].get("content", {})
    assert content_type in content, f"{method} {route} {answer.status} answered {content_type}"
    for header, spec in responses[str(answer.status)].get("headers", {}).items():
        assert header in answer.headers or not spec.get("required"), (
            f"{method} {route} {answer.status} lacks {header}"
        )
    pointer = _pointer(
        "paths", route, method.lower(), "responses", str(answer.status), "content", content_type, "schema"
    )
    registry = Registry().with_resource(
        BASE, Resource.from_contents(document, default_specification=DRAFT202012)
    )
    validator = Draft202012Validator(
        {"$ref": f"{BASE}#/{pointer}"}, registry=registry, format_checker=FormatChecker()
    )
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(answer.body)
    ]
    assert not errors, f"{method} {route} {answer.status}: {errors}\n{answer}"


def test_the_openapi_document_describes_every_answer_the_gateway_gives(gateway: GatewayUnderTest) -> None:
    served = gateway.call("GET", "/v1/openapi.json")
    assert served.status == 200 and served.body == json.loads(OPENAPI_FILE.read_text())
    document = served.body
    assert document["openapi"].startswith("3.1")
    Draft202012Validator.check_schema(document["components"]["schemas"]["Problem"])

    token, other = gateway.granted_token(SOURCE_A), gateway.token(SOURCE_B)
    good = event(synthetic_person(), source=SOURCE_A, municipality="0301")
    bad = {**event(synthetic_person(), source=SOURCE_A, municipality="0301"), "factDate": "soon"}
    answers: list[tuple[str, str, Answer]] = [
        ("/v1/events", "POST", gateway.call("POST", "/v1/events", token=token, body=good)),
        ("/v1/events", "POST", gateway.call("POST", "/v1/events", token=token, body={"events": [good, bad]})),
        ("/v1/events", "POST", gateway.call("POST", "/v1/events", token=token, body=bad)),
        ("/v1/events", "POST", gateway.call("POST", "/v1/events", token=token, body={"events": [bad, bad]})),
        ("/v1/events", "POST", gateway.call("POST", "/v1/events", token=other, body=good)),
        (
            "/v1/events",
            "POST",
            gateway.call("POST", "/v1/events", token=token, raw=b"{", content_type="application/json"),
        ),
        (
            "/v1/events",
            "POST",
            gateway.call("POST", "/v1/events", token=token, raw=b"x", content_type="text/csv"),
        ),
        ("/v1/events", "POST", gateway.call("POST", "/v1/events", body=good)),
        ("/v1/events/{eventId}", "GET", gateway.call("GET", f"/v1/events/{good['eventId']}", token=token)),
        ("/v1/events/{eventId}", "GET", gateway.call("GET", "/v1/events/x", token=token)),
        ("/v1/events/{eventId}", "GET", gateway.call("GET", f"/v1/events/{bad['eventId']}", token=token)),
        ("/v1/receipts", "GET", gateway.receipts(token, wait=10)),
        ("/v1/receipts", "GET", gateway.receipts(token, after="forged")),
        ("/v1/receipts", "GET", gateway.receipts(token, source=SOURCE_B)),
        ("/v1/incidents", "GET", gateway.call("GET", "/v1/incidents", token=token)),
        ("/v1/incidents", "GET", gateway.call("GET", "/v1/incidents?limit=none", token=token)),
        ("/v1/incidents", "GET", gateway.call("GET", f"/v1/incidents?source={SOURCE_B}", token=token)),
        ("/v1/incidents", "GET", gateway.call("GET", "/v1/incidents")),
    ]
    gateway.all_receipts(token, 1)
    answers.append(
        ("/v1/events/{eventId}", "GET", gateway.call("GET", f"/v1/events/{good['eventId']}", token=token))
    )
    while (limited := gateway.receipts(other)).status != 429:
        pass
    answers.append(("/v1/receipts", "GET", limited))
    statuses = set()
    for route, method, answer in answers:
        check(document, route, method, answer)
        statuses.add((route, answer.status))
    assert {s for _, s in statuses} >= {200, 202, 400, 401, 403, 404, 415, 429}
