"""The broker's trust boundary, tried as an attacker would, on the real secured broker: no
client gets in without TLS and a valid credential, a source's principal reaches only its own
topics and groups, the hub's own principals only what their work needs, and `hub sources
grant`/`revoke` take effect at once and may be repeated."""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.conn import create_conn
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
)

from hub.dev.localrun import LocalBroker
from hub.errors import ConfigurationError
from hub.kafka.admin import OffsetReader
from hub.kafka.connection import KafkaConnection
from hub.kafka.principals import BrokerAccess, source_acls
from hub.ops.lag_exporter import consumed_topics, read_group_lag
from tests.conftest import make_settings
from tests.harness import HubHarness, hub_command

OSLO, VESTLAND = "oslo-fagsystem", "vestland-fagsystem"


@pytest.fixture
def harness(kafka_broker: LocalBroker, sqlite_url: str, tmp_path: Path) -> Iterator[HubHarness]:
    with HubHarness(make_settings(kafka_broker, sqlite_url, tmp_path), tmp_path) as h:
        yield h


def _host_port(kafka: KafkaConnection) -> tuple[str, int]:
    host, port = kafka.bootstrap.rsplit(":", 1)
    return host, int(port)


async def _write(kafka: KafkaConnection, topic: str) -> None:
    producer = AIOKafkaProducer(**kafka.aiokafka(), acks="all", request_timeout_ms=10_000)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"x")
    finally:
        await producer.stop()


async def _read(kafka: KafkaConnection, topic: str, group: str) -> None:
    """Read a topic's first partition and commit the position in `group`, as a reader does."""
    consumer = AIOKafkaConsumer(**kafka.aiokafka(), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.getmany(timeout_ms=1_000)
        # The commit is what the broker authorizes by type: the group first, then the topic (a
        # fetch from a topic the client may not see is never sent, so it would not fail).
        await consumer.commit({partition: 0})
    finally:
        await consumer.stop()


def test_a_client_without_tls_or_without_a_valid_password_is_refused(harness: HubHarness) -> None:
    kafka = harness.source_kafka(OSLO)
    host, port = _host_port(kafka)

    async def connect(**options: object) -> None:
        conn = await create_conn(host, port, request_timeout_ms=5_000, **options)  # type: ignore[arg-type]
        conn.close()

    # No TLS at all: there is no plaintext listener to talk to.
    with pytest.raises((KafkaConnectionError, ConnectionError, asyncio.TimeoutError)):
        asyncio.run(connect(security_protocol="PLAINTEXT"))

    # TLS, but no SASL: the broker answers nothing before a SASL handshake.
    async def tls_only() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka.bootstrap, security_protocol="SSL", ssl_context=kafka.ssl_context
        )
        try:
            await producer.start()
        finally:
            await producer.stop()

    with pytest.raises(KafkaConnectionError):
        asyncio.run(tls_only())

    def scram(password: str, trusted: ssl.SSLContext = kafka.ssl_context) -> None:
        asyncio.run(
            connect(
                security_protocol="SASL_SSL",
                ssl_context=trusted,
                sasl_mechanism="SCRAM-SHA-512",
                sasl_plain_username=kafka.username,
                sasl_plain_password=password,
            )
        )

    with pytest.raises(SaslAuthenticationFailed):
        scram(kafka.password + "x")  # a wrong password
    # A client that does not trust the broker's CA refuses the broker.
    with pytest.raises((KafkaConnectionError, ssl.SSLError)):
        scram(kafka.password, ssl.create_default_context())
    scram(kafka.password)  # the right one works: the refusals above were about the credential


def test_a_source_writes_only_its_own_registrations_and_reads_only_its_own_receipts(
    harness: HubHarness,
) -> None:
    names = harness.hub.names
    oslo = harness.source_kafka(OSLO)
    own_group = f"{harness.settings.topic_prefix}.source.{OSLO}.follower"

    asyncio.run(_write(oslo, names.registrations(OSLO)))
    asyncio.run(_read(oslo, names.receipts(OSLO), group=own_group))

    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(_write(oslo, names.registrations(VESTLAND)))
    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(_read(oslo, names.receipts(VESTLAND), group=own_group))
    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(_write(oslo, names.receipts(OSLO)))  # receipts are the hub's to write
    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(_read(oslo, names.dead_letters, group=own_group))
    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(_write(oslo, names.address_changes))
    # The hub's consumer group: joining it would take partitions from the worker.
    with pytest.raises(GroupAuthorizationFailedError):
        asyncio.run(_read(oslo, names.receipts(OSLO), group=harness.settings.app_id))
    # Another source's groups.
    with pytest.raises(GroupAuthorizationFailedError):
        asyncio.run(
            _read(oslo, names.receipts(OSLO), group=f"{harness.settings.topic_prefix}.source.{VESTLAND}.x")
        )


def test_the_hubs_own_principals_have_only_what_their_work_needs(harness: HubHarness) -> None:
    names = harness.hub.names
    settings = harness.settings
    connector = settings.as_kafka_user(settings.kafka_connector_user).kafka
    worker = settings.kafka

    asyncio.run(_write(worker, names.receipts(OSLO)))
    asyncio.run(_write(worker, names.dead_letters))
    asyncio.run(_read(worker, names.registrations(OSLO), group=settings.app_id))
    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(_write(worker, names.address_changes))  # only the connector writes these
    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(_write(worker, names.registrations(OSLO)))  # the worker cannot write as a source

    replay = settings.kafka_as(settings.kafka_replay_user)
    asyncio.run(_write(replay, names.registrations(OSLO)))
    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(_write(replay, names.receipts(OSLO)))

    asyncio.run(_write(connector, names.address_changes))
    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(_write(connector, names.registrations(OSLO)))
    with pytest.raises(GroupAuthorizationFailedError):  # it consumes in no group at all
        asyncio.run(_read(connector, names.address_changes, group=settings.app_id))

    # Neither may hand out rights: that is the admin's.
    with pytest.raises(ConfigurationError, match="admin principal"):
        BrokerAccess(settings).grant(harness.hub.registry.sources[OSLO])


def test_the_monitor_reads_the_groups_lag_and_no_message(harness: HubHarness) -> None:
    names = harness.hub.names
    settings = harness.settings
    monitor = settings.kafka_as(settings.kafka_monitor_user)
    asyncio.run(_write(settings.kafka_as(settings.kafka_replay_user), names.registrations(OSLO)))
    asyncio.run(_read(settings.kafka, names.registrations(OSLO), group=settings.app_id))  # commits 0

    async def lag() -> dict[tuple[str, int], int]:
        async with OffsetReader(monitor) as reader:
            topics = consumed_topics(settings, harness.hub.registry)
            return await read_group_lag(reader, settings.app_id, topics)

    behind = asyncio.run(lag())
    assert sum(behind.values()) == 1  # the one message, committed or not on its partition
    assert (names.registrations(OSLO), 0) in behind and (names.dead_letters, 0) in behind

    async def fetch(topic: str) -> None:  # no group: only the topic's read right is asked for
        consumer = AIOKafkaConsumer(**monitor.aiokafka(), enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign([TopicPartition(topic, p) for p in range(settings.registration_partitions)])
            for _ in range(5):
                await consumer.getmany(timeout_ms=1_000)
        finally:
            await consumer.stop()

    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(fetch(names.registrations(OSLO)))

    async def commit_in_group() -> None:
        consumer = AIOKafkaConsumer(**monitor.aiokafka(), group_id=settings.app_id, enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign([TopicPartition(names.registrations(OSLO), 0)])
            await consumer.commit({TopicPartition(names.registrations(OSLO), 0): 0})
        finally:
            await consumer.stop()

    with pytest.raises(GroupAuthorizationFailedError):  # describing the group is not using it
        asyncio.run(commit_in_group())
    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(_write(monitor, names.registrations(OSLO)))


def test_grant_and_revoke_take_effect_at_once_and_may_be_repeated(harness: HubHarness) -> None:
    names = harness.hub.names
    oslo_source = harness.hub.registry.sources[OSLO]
    access = BrokerAccess(harness.admin)
    topic = names.registrations(OSLO)

    revoked = hub_command(harness.admin, "sources", "revoke", OSLO, "--reason", "test")
    assert revoked.returncode == 0, revoked.stderr
    again = hub_command(harness.admin, "sources", "revoke", OSLO, "--reason", "test")
    assert again.returncode == 0, again.stderr
    assert ": 0 ACL(s) of" in again.stdout
    assert access.acls_of(oslo_source.kafka_principal) == []
    # Its credential is gone: it cannot even authenticate.
    with pytest.raises(KafkaConnectionError):
        asyncio.run(_write(harness.source_kafka(OSLO), topic))

    restored = hub_command(harness.admin, "sources", "restore", OSLO, "--reason", "test over")
    assert restored.returncode == 0, restored.stderr
    for _ in range(2):
        granted = hub_command(harness.admin, "sources", "grant", OSLO)
        assert granted.returncode == 0, granted.stderr
    assert sorted(map(str, access.acls_of(oslo_source.kafka_principal))) == sorted(
        map(str, source_acls(harness.settings, oslo_source))
    )
    asyncio.run(_write(harness.source_kafka(OSLO), topic))  # no broker restart in between

    # The other source was never touched.
    asyncio.run(_write(harness.source_kafka(VESTLAND), names.registrations(VESTLAND)))


def test_an_unknown_source_cannot_be_granted(harness: HubHarness) -> None:
    result = hub_command(harness.admin, "sources", "grant", "nobody")
    assert result.returncode != 0
    assert "not in the source registry" in result.stderr


def test_the_worker_serves_the_support_page_over_https_when_given_a_certificate(
    kafka_broker: LocalBroker, sqlite_url: str, tmp_path: Path
) -> None:
    cert, key = tmp_path / "support.crt", tmp_path / "support.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    settings = dataclasses.replace(
        make_settings(kafka_broker, sqlite_url, tmp_path),
        web_tls_cert_file=str(cert),
        web_tls_key_file=str(key),
    )
    with HubHarness(settings, tmp_path) as harness:
        harness.start_worker()
        trusted = ssl.create_default_context(cafile=str(cert))
        url = f"https://127.0.0.1:{settings.web_port}/support/login"

        def answer() -> http.client.HTTPResponse | None:
            try:
                return urllib.request.urlopen(url, context=trusted, timeout=5)  # type: ignore[no-any-return]
            except (urllib.error.URLError, ConnectionError):
                return None

        harness.wait_until(lambda: answer() is not None, timeout=60, what="the support page over HTTPS")
        response = answer()
        assert response is not None and response.status == 200
        assert "max-age=" in response.headers["Strict-Transport-Security"]
        assert "Secure" in response.headers["Set-Cookie"]
        # Plain HTTP on the same port gets no page.
        with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
            urllib.request.urlopen(url.replace("https", "http"), timeout=5)
