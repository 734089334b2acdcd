"""Fagsystems on the broker with Maskinporten access tokens (SASL/OAUTHBEARER), the real flow
end to end: the fagsystem's client signs an assertion, the Maskinporten stand-in grants a token,
the broker checks it against the stand-in's JWKS (signature, issuer, audience, expiry) and takes
the principal from its client_id, which the source registry maps to a source."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.abc import AbstractTokenProvider
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError

from hub.config import Settings
from hub.connectors.fagsystem import FagsystemProducer
from hub.connectors.receipts import ReceiptReader
from hub.dev.localrun import LocalBroker
from hub.kafka.connection import KafkaConnection
from hub.maskinporten import KafkaTokenProvider
from tests.conftest import FAGSYSTEM_CLIENT_ID, MaskinportenService, make_settings
from tests.factories import event, synthetic_person
from tests.harness import HubHarness
from tests.maskinporten import KAFKA_AUDIENCE, KAFKA_SCOPE, rsa_key

SOURCE = "bydel-fagsystem"
REGISTRY = f"""
[sources.{SOURCE}]
name = "A fagsystem that signs in with Maskinporten"
municipalities = ["0301"]
authentication = "maskinporten"
principal = "{FAGSYSTEM_CLIENT_ID}"

[sources.vestland-fagsystem]
name = "Another source"
municipalities = ["4601"]
"""


@pytest.fixture
def harness(kafka_broker: LocalBroker, sqlite_url: str, tmp_path: Path) -> Iterator[HubHarness]:
    registry = tmp_path / "sources.toml"
    registry.write_text(REGISTRY)
    settings = dataclasses.replace(
        make_settings(kafka_broker, sqlite_url, tmp_path), sources_file=str(registry)
    )
    with HubHarness(settings, tmp_path) as h:
        yield h


def fagsystem_settings(settings: Settings, maskinporten: MaskinportenService) -> Settings:
    """The fagsystem's own settings: its Maskinporten client, OAUTHBEARER to Kafka."""
    return maskinporten.client_settings(
        settings,
        kafka_sasl_mechanism="OAUTHBEARER",
        kafka_oauth_scope=KAFKA_SCOPE,
        kafka_oauth_resource=KAFKA_AUDIENCE,
    )


class FixedToken(AbstractTokenProvider):
    def __init__(self, token: str) -> None:
        self.value = token

    async def token(self) -> str:
        return self.value


def _write_with(
    kafka: KafkaConnection, provider: AbstractTokenProvider, topic: str, timeout: float = 10
) -> None:
    """Connect with the token and write one message to `topic`.

    aiokafka takes the broker's error challenge after a refused token for success (it never
    sends the final message that would fetch the SaslAuthenticate error); the broker then
    closes the connection at the first request. So a refusal shows as a KafkaError from the
    client's first request, not as SaslAuthenticationFailed."""
    options = {**kafka.aiokafka(), "sasl_oauth_token_provider": provider, "sasl_mechanism": "OAUTHBEARER"}
    options.pop("sasl_plain_username", None)
    options.pop("sasl_plain_password", None)

    async def connect() -> None:
        producer = AIOKafkaProducer(**options, request_timeout_ms=int(timeout * 1000))
        try:
            await producer.start()
            await producer.send_and_wait(topic, b"x")
        finally:
            await producer.stop()

    asyncio.run(connect())


def _token(maskinporten: MaskinportenService, *, key: Any = None, **claims: Any) -> str:
    """An access token as the stand-in would sign it, with `claims` changed."""
    now = int(time.time())
    body = {
        "iss": maskinporten.issuer,
        "aud": KAFKA_AUDIENCE,
        "client_id": FAGSYSTEM_CLIENT_ID,
        "scope": KAFKA_SCOPE,
        "iat": now,
        "exp": now + 60,
        "jti": str(uuid.uuid4()),
    } | claims
    stand_in = maskinporten.stand_in
    return jwt.encode(body, key or stand_in.key, algorithm="RS256", headers={"kid": stand_in.kid})


def test_a_fagsystem_sends_with_a_maskinporten_token_and_reads_its_receipts(
    harness: HubHarness, broker_maskinporten: MaskinportenService
) -> None:
    fagsystem = fagsystem_settings(harness.settings, broker_maskinporten)
    granted_before = broker_maskinporten.stand_in.granted
    harness.start_worker()
    events = [event(synthetic_person(), source=SOURCE, municipality="0301") for _ in range(3)]

    async def send_and_follow() -> dict[str, Any]:
        async with FagsystemProducer(
            fagsystem.kafka, SOURCE, topic_prefix=fagsystem.topic_prefix
        ) as producer:
            sent = await producer.send_many_json(events)
        async with ReceiptReader(
            fagsystem.kafka,
            SOURCE,
            topic_prefix=fagsystem.topic_prefix,
            group_id=f"{fagsystem.topic_prefix}.source.{SOURCE}.receipts",
        ) as reader:
            return await reader.wait_for([s.event_id for s in sent], timeout=60)

    receipts = asyncio.run(send_and_follow())
    assert len(receipts) == 3 and {r.outcome for r in receipts.values()} == {"ACCEPTED"}, receipts
    assert broker_maskinporten.stand_in.granted > granted_before  # the real grant ran

    # Its token makes it that source and no other.
    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(_send(fagsystem.kafka, harness.hub.names.registrations("vestland-fagsystem"), 1))


async def _send(kafka: KafkaConnection, topic: str, count: int, every: float = 0.0) -> int:
    producer = AIOKafkaProducer(**kafka.aiokafka(), acks="all", request_timeout_ms=15_000)
    await producer.start()
    sent = 0
    try:
        for n in range(count):
            await producer.send_and_wait(topic, f"{n}".encode())
            sent += 1
            await asyncio.sleep(every)
    finally:
        await producer.stop()
    return sent


def test_expired_wrongly_signed_and_misaddressed_tokens_are_refused(
    harness: HubHarness, broker_maskinporten: MaskinportenService
) -> None:
    kafka = harness.settings.kafka
    topic = harness.hub.names.registrations(SOURCE)
    now = int(time.time())
    refused = {
        "expired": _token(broker_maskinporten, iat=now - 600, exp=now - 300),
        "signed by another key": _token(broker_maskinporten, key=rsa_key(7)),
        "for another audience": _token(broker_maskinporten, aud="another-api"),
        "from another issuer": _token(broker_maskinporten, iss="https://maskinporten.example/"),
        "not a token": "not-a-jwt",
    }
    for why, token in refused.items():
        with pytest.raises(KafkaError):
            _write_with(kafka, FixedToken(token), topic, timeout=2)
            pytest.fail(f"a token {why} was accepted")
    _write_with(kafka, FixedToken(_token(broker_maskinporten)), topic)  # the same, done right, is


def test_a_token_renewed_mid_stream_keeps_a_producer_going(
    harness: HubHarness, broker_maskinporten: MaskinportenService
) -> None:
    stand_in = broker_maskinporten.stand_in
    lifetime = stand_in.token_lifetime
    stand_in.token_lifetime = 4  # the broker ends a session when its token expires
    try:
        kafka = fagsystem_settings(harness.settings, broker_maskinporten).kafka
        provider = kafka.token_provider
        assert isinstance(provider, KafkaTokenProvider)
        sent = asyncio.run(_send(kafka, harness.hub.names.registrations(SOURCE), 40, every=0.3))
    finally:
        stand_in.token_lifetime = lifetime
    assert sent == 40
    # About 12 s of sending on 4 s tokens: renewed on the way, not only fetched once.
    assert provider.tokens.grants >= 3, provider.tokens.grants
