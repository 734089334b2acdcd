"""`GET /v1/incidents` (issue 32): a source learns, over the gateway, how its failures group into
incidents (counts by cause, since when), its own only and without personal data; on both
databases, with the gateway in-process (tests/offline_gateway.py) and the register real."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from hub.bootstrap import Hub
from hub.domain.events import Origin
from hub.domain.transfer import Failure
from hub.gateway.server import OPENAPI_FILE
from hub.gateway.tokens import SigningKeys
from hub.pipeline.deadletter import dead_letter_headers
from hub.schemas.codec import REGISTRATION
from hub.schemas.contract import from_json
from hub.support.tickets import DeadLetter, tickets_from_dead_letters
from tests.conftest import pipeline_hub
from tests.factories import Person, event, synthetic_person
from tests.offline_gateway import (
    OTHER_CLIENT,
    OTHER_SOURCE,
    SOURCE,
    JwksEndpoint,
    client_of,
    offline_gateway,
    settings,
    signing_key,
    token,
)

T0 = dt.datetime(2026, 12, 1, 8, tzinfo=dt.UTC)
_offsets = itertools.count()


def _fail(
    hub: Hub, at: dt.datetime, source: str, code: str, person: Person | None = None, version: str = ""
) -> int:
    """A ticket of the source's dead letter at `at`: of an event of release `version` if a person
    is given, else of a message that cannot be decoded."""
    value = b"\x00not avro"
    if person is not None:
        sent = event(person, source=source, municipality="0301")
        sent["fagsystemVersion"] = version
        value = hub.catalog.encode(REGISTRATION, from_json(sent))
    origin = Origin(f"nir.source.{source}.registrations", 0, next(_offsets))
    headers = tuple(dead_letter_headers(origin, Failure("rule", code, f"{code}: failed"), at))
    letter = DeadLetter(Origin("nir.dead-letters", 0, next(_offsets)), b"k", value, headers)
    with hub.unit_of_work() as uow:
        [ticket] = tickets_from_dead_letters(
            uow, hub.catalog, [letter], source_of=lambda t: t.split(".")[2], now=at
        )
        uow.commit()
    return ticket


def _tickets(hub: Hub) -> tuple[list[Person], dict[str, list[int]]]:
    """Two incidents of SOURCE (a release's rule failure for two persons, three tickets; and an
    undecodable message), and two of OTHER_SOURCE, whose failures are the newest of all."""
    h = dt.timedelta(hours=1)
    ola, kari, per = synthetic_person(), synthetic_person(), synthetic_person()
    mine = dict(source=SOURCE, code="NIR-SOURCE-002", version="5.1.0")
    return [ola, kari, per], {
        "release": [
            _fail(hub, T0, person=ola, **mine),
            _fail(hub, T0 + h, person=kari, **mine),
            _fail(hub, T0 + 2 * h, person=ola, **mine),
        ],
        "undecodable": [_fail(hub, T0 + 3 * h, SOURCE, "NIR-DECODE-001")],
        "other": [
            _fail(hub, T0 + 4 * h, OTHER_SOURCE, "NIR-DECODE-001"),
            _fail(hub, T0 + 5 * h, OTHER_SOURCE, "NIR-REF-001", person=per, version="9.9"),
        ],
    }


def _documented(body: Any) -> None:
    """The answer is what the OpenAPI document says a 200 of `GET /v1/incidents` is."""
    document = json.loads(OPENAPI_FILE.read_text())
    base = "urn:nir:gateway-openapi"
    registry = Registry().with_resource(
        base, Resource.from_contents(document, default_specification=DRAFT202012)
    )
    pointer = "paths/~1v1~1incidents/get/responses/200/content/application~1json/schema"
    validator = Draft202012Validator(
        {"$ref": f"{base}#/{pointer}"}, registry=registry, format_checker=FormatChecker()
    )
    assert not [e.message for e in validator.iter_errors(body)]


async def _get(client: Any, path: str, bearer: str | None) -> tuple[int, str, Any]:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    answer = await client.get(path, headers=headers)
    return answer.status, answer.headers["Content-Type"], json.loads(await answer.text())


def test_a_source_reads_its_own_incidents_with_their_counts_and_never_another_sources(
    database_url: str,
) -> None:
    hub = pipeline_hub(database_url)
    persons, tickets = _tickets(hub)

    async def run() -> None:
        key = signing_key()
        async with JwksEndpoint(key).serving() as endpoint:
            gateway = offline_gateway(settings(gateway_database_url=database_url), SigningKeys(endpoint.url))
            async with client_of(gateway) as client:
                status, content_type, body = await _get(client, "/v1/incidents", token(key))
                assert status == 200 and content_type.startswith("application/json")
                assert body == {
                    "source": SOURCE,
                    "windowHours": 24.0,
                    "incidents": [  # the newest last failure first
                        {
                            "errorCode": "NIR-DECODE-001",
                            "eventType": None,
                            "fagsystemVersion": None,
                            "tickets": 1,
                            "firstSeen": "2026-12-01T11:00:00Z",
                            "lastSeen": "2026-12-01T11:00:00Z",
                            "sampleTicket": tickets["undecodable"][0],
                            "municipalities": 0,
                            "persons": 0,
                        },
                        {
                            "errorCode": "NIR-SOURCE-002",
                            "eventType": "TRAINING_CLAIM",
                            "fagsystemVersion": "5.1.0",
                            "tickets": 3,
                            "firstSeen": "2026-12-01T08:00:00Z",
                            "lastSeen": "2026-12-01T10:00:00Z",
                            "sampleTicket": tickets["release"][0],
                            "municipalities": 1,
                            "persons": 2,
                        },
                    ],
                }
                _documented(body)
                text = json.dumps(body)
                for person in persons:
                    for number in (person.national_id, person.duf_number):
                        assert not number or number not in text

                # The other source's incidents are the newest: were the source filtered after
                # the limit, this page would be empty.
                _, _, first = await _get(client, "/v1/incidents?limit=1", token(key))
                assert [i["errorCode"] for i in first["incidents"]] == ["NIR-DECODE-001"]
                assert first["incidents"][0]["sampleTicket"] == tickets["undecodable"][0]

                _, _, theirs = await _get(client, "/v1/incidents", token(key, OTHER_CLIENT))
                assert theirs["source"] == OTHER_SOURCE
                assert [i["sampleTicket"] for i in theirs["incidents"]] == tickets["other"][::-1]

                status, content_type, refused = await _get(
                    client, f"/v1/incidents?source={OTHER_SOURCE}", token(key)
                )
                assert status == 403 and content_type.startswith("application/problem+json")
                assert refused["type"] == "urn:nir:problem:forbidden-source"
            gateway.incidents.close()

    asyncio.run(run())


def test_a_bad_token_or_a_hostile_parameter_gets_a_problem_and_no_incident(database_url: str) -> None:
    hub = pipeline_hub(database_url)
    _tickets(hub)

    async def run() -> None:
        key, stranger = signing_key(), signing_key(14)
        async with JwksEndpoint(key).serving() as endpoint:
            gateway = offline_gateway(settings(gateway_database_url=database_url), SigningKeys(endpoint.url))
            async with client_of(gateway) as client:
                for bearer in (None, "not-a-token", token(stranger)):
                    status, content_type, body = await _get(client, "/v1/incidents", bearer)
                    assert status == 401 and content_type.startswith("application/problem+json")
                    assert body["type"] == "urn:nir:problem:invalid-token" and "incidents" not in body
                for limit in ("0", "-1", "abc", "nan", "-inf", "", "9" * 5000 + "x", "%00"):
                    status, content_type, body = await _get(
                        client, f"/v1/incidents?limit={limit}", token(key)
                    )
                    assert status == 400, limit[:20]
                    assert content_type.startswith("application/problem+json")
                    assert body["type"] == "urn:nir:problem:invalid-parameter"
                    assert body["errors"][0]["field"] == "limit" and "incidents" not in body
                # Beyond the most a page holds is the most, as for the receipts.
                status, _, body = await _get(client, "/v1/incidents?limit=1e9", token(key))
                assert status == 200 and len(body["incidents"]) == 2
            gateway.incidents.close()

    asyncio.run(run())


def test_a_gateway_without_a_register_answers_that_it_does_not_serve_incidents() -> None:
    async def run() -> None:
        key = signing_key()
        async with JwksEndpoint(key).serving() as endpoint:
            gateway = offline_gateway(settings(), SigningKeys(endpoint.url))
            async with client_of(gateway) as client:
                status, content_type, body = await _get(client, "/v1/incidents", token(key))
                assert status == 503 and content_type.startswith("application/problem+json")
                assert body["type"] == "urn:nir:problem:incidents-unavailable"
            gateway.incidents.close()

    asyncio.run(run())
