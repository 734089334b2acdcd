"""Talking to the Kafka cluster outside the worker: is it there, does it have our topics, and
what do they hold (for the demo, the tests and support tools)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from hub.errors import BrokerUnavailable, ConfigurationError
from hub.kafka.connection import KafkaConnection
from hub.kafka.topics import TopicSpec

log = logging.getLogger(__name__)

_TOPIC_ALREADY_EXISTS = 36
_TOPIC_AUTHORIZATION_FAILED = 29


async def _admin(kafka: KafkaConnection, timeout: float) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(**kafka.aiokafka(), request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout)
    except (TimeoutError, KafkaError, OSError) as exc:
        await admin.close()
        raise BrokerUnavailable(f"Kafka at {kafka.bootstrap} does not answer: {type(exc).__name__}") from exc
    return admin


async def broker_answers(kafka: KafkaConnection, timeout: float = 5.0) -> bool:
    try:
        admin = await _admin(kafka, timeout)
    except BrokerUnavailable:
        return False
    await admin.close()
    return True


async def list_topics(kafka: KafkaConnection, timeout: float = 15.0) -> set[str]:
    admin = await _admin(kafka, timeout)
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def ensure_topics(
    kafka: KafkaConnection, specs: Iterable[TopicSpec], replication_factor: int
) -> list[str]:
    """Create the topics that do not exist yet, with their partition counts; return those created.

    Topics are never auto-created by the broker: a typo in a topic name must fail, not invent one.
    """
    specs = list(specs)
    admin = await _admin(kafka, 15.0)
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(s.name, s.partitions, replication_factor, topic_configs=dict(s.configs))
                    for s in missing
                ]
            )
            for name, code, *rest in response.topic_errors:
                if code == _TOPIC_AUTHORIZATION_FAILED:
                    raise ConfigurationError(
                        f"topic {name} is missing and {kafka.username or 'this principal'} may not "
                        "create it: run `hub topics ensure` as the admin principal"
                    )
                if code not in (0, _TOPIC_ALREADY_EXISTS):
                    detail = rest[0] if rest and rest[0] else f"error code {code}"
                    raise ConfigurationError(f"could not create topic {name}: {detail}")
        return [s.name for s in missing]
    finally:
        await admin.close()


@dataclass(frozen=True)
class ConfigDrift:
    """A topic created before the hub asked for a config, and without it."""

    topic: str
    key: str
    wanted: str
    actual: str

    def fix(self, bootstrap: str) -> str:
        """The operator's command that puts it right. `hub topics ensure` itself sets only
        `retention.ms` on an existing topic (the retention policy, incrementally); any other
        config it lacks changes what the topic holds or how it is read, so the operator decides."""
        return (
            f"kafka-configs.sh --bootstrap-server {bootstrap} --alter --entity-type topics "
            f"--entity-name {self.topic} --add-config {self.key}={self.wanted}"
        )


# Configs where more than the hub asks for is as good (a topic with min.insync.replicas=3 is
# more durable than asked, not drift).
_AT_LEAST = frozenset({"min.insync.replicas"})


def _falls_short(key: str, wanted: str, actual: str | None) -> bool:
    if key in _AT_LEAST and actual is not None and actual.isdigit():
        return int(actual) < int(wanted)
    return actual != wanted


async def topic_configs(kafka: KafkaConnection, keys: Mapping[str, Iterable[str]]) -> dict[str, dict[str, str]]:
    """The values in force (the topic's own, else the broker's default) of the configs `keys`
    names per topic, for the topics that exist."""
    admin = await _admin(kafka, 15.0)
    try:
        existing = sorted(set(await admin.list_topics()) & set(keys))
        if not existing:
            return {}
        resources = [ConfigResource(ConfigResourceType.TOPIC, t, {k: "" for k in keys[t]}) for t in existing]
        responses = await admin.describe_configs(resources)
    finally:
        await admin.close()
    found: dict[str, dict[str, str]] = {}
    for response in responses:
        for _code, _message, _type, topic, entries in response.resources:
            found[topic] = {entry[0]: entry[1] for entry in entries if entry[1] is not None}
    return found


async def config_drift(kafka: KafkaConnection, specs: Iterable[TopicSpec]) -> list[ConfigDrift]:
    """The configs `specs` ask for that their existing topics do not have."""
    wanted = {s.name: dict(s.configs) for s in specs if s.configs}
    actual = await topic_configs(kafka, wanted)
    return [
        ConfigDrift(topic, key, value, actual[topic].get(key) or "unset")
        for topic in sorted(actual)
        for key, value in wanted[topic].items()
        if _falls_short(key, value, actual[topic].get(key))
    ]


async def shorter_retention(kafka: KafkaConnection, topics: Iterable[str], interval_ms: int) -> dict[str, int]:
    """The topics among `topics` that keep a message for less than `interval_ms` (their
    `retention.ms`, the broker's default if the topic has none): after a restore from a backup
    that old, what they no longer hold cannot be applied again."""
    configs = await topic_configs(kafka, {t: ["retention.ms"] for t in topics})
    kept = {t: int(c.get("retention.ms", "-1")) for t, c in configs.items()}
    return {t: ms for t, ms in sorted(kept.items()) if 0 <= ms < interval_ms}


class OffsetReader:
    """Partitions and offsets, read again and again over one consumer (no group) and one admin
    client, each opened when first needed and kept until `close`: the lag exporter reads every
    interval, a one-shot caller once (`end_offsets`, `committed_offsets`). Describe rights on the
    topics and the group suffice; nothing is read from the topics themselves."""

    def __init__(self, kafka: KafkaConnection, timeout: float = 15.0) -> None:
        self.kafka = kafka
        self.timeout = timeout
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None

    async def __aenter__(self) -> OffsetReader:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        consumer, admin, self._consumer, self._admin = self._consumer, self._admin, None, None
        if consumer is not None:
            await consumer.stop()
        if admin is not None:
            await admin.close()

    async def consumer(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                **self.kafka.aiokafka(), enable_auto_commit=False, request_timeout_ms=int(self.timeout * 1000)
            )
            try:
                await asyncio.wait_for(consumer.start(), self.timeout)
            except (TimeoutError, KafkaError, OSError) as exc:
                await consumer.stop()
                raise BrokerUnavailable(
                    f"Kafka at {self.kafka.bootstrap} does not answer: {type(exc).__name__}"
                ) from exc
            self._consumer = consumer
        return self._consumer

    async def partitions(self, topics: Iterable[str], *, wait: bool = True) -> list[TopicPartition]:
        """Every partition of `topics`. With `wait`, a topic the metadata does not have yet is
        waited for (it may have been created a moment ago) and a missing one is an error;
        without, it is left out."""
        consumer = await self.consumer()
        if not wait:
            await consumer._client.force_metadata_update()
        found = []
        for topic in topics:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions and wait:
                partitions = await _partitions(consumer, topic, self.timeout)
            found += [TopicPartition(topic, p) for p in sorted(partitions or ())]
        return found

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[tuple[str, int], int]:
        ends = await (await self.consumer()).end_offsets(partitions)
        return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}

    async def beginning_offsets(self, partitions: list[TopicPartition]) -> dict[tuple[str, int], int]:
        starts = await (await self.consumer()).beginning_offsets(partitions)
        return {(tp.topic, tp.partition): offset for tp, offset in starts.items()}

    async def committed(self, group: str) -> dict[tuple[str, int], int]:
        """The offsets `group` has committed, by partition (none for a group that never committed)."""
        if self._admin is None:
            self._admin = await _admin(self.kafka, self.timeout)
        offsets = await self._admin.list_consumer_group_offsets(group)
        return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


async def end_offsets(kafka: KafkaConnection, topics: Iterable[str]) -> dict[tuple[str, int], int]:
    """The current end offset of every partition of `topics`."""
    async with OffsetReader(kafka) as reader:
        return await reader.end_offsets(await reader.partitions(topics))


async def committed_offsets(kafka: KafkaConnection, group: str) -> dict[tuple[str, int], int]:
    """The offsets a consumer group has committed, by partition; empty while the group is new
    (its coordinator not found yet)."""
    async with OffsetReader(kafka) as reader:
        try:
            return await reader.committed(group)
        except KafkaError:
            return {}


async def _partitions(consumer: AIOKafkaConsumer, topic: str, timeout: float = 15.0) -> set[int]:
    # A topic created a moment ago may not be in every broker's metadata yet.
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return partitions
        if asyncio.get_running_loop().time() > deadline:
            raise ConfigurationError(f"topic {topic} does not exist")
        await asyncio.sleep(0.2)


async def read_from(
    kafka: KafkaConnection,
    start: dict[tuple[str, int], int],
    *,
    until: Callable[[list[ConsumerRecord]], bool],
    timeout: float,
) -> list[ConsumerRecord]:
    """Read the given partitions from the given offsets (no consumer group) until `until(records)`
    holds or `timeout` seconds have passed; returns what was read."""
    consumer = AIOKafkaConsumer(**kafka.aiokafka(), enable_auto_commit=False)
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        consumer.assign([TopicPartition(t, p) for t, p in start])
        for (topic, partition), offset in start.items():
            consumer.seek(TopicPartition(topic, partition), offset)
        deadline = asyncio.get_running_loop().time() + timeout
        while not until(records) and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for messages in batch.values():
                records.extend(messages)
        return records
    finally:
        await consumer.stop()


async def delete_topics_with_prefix(
    kafka: KafkaConnection, prefix: str | tuple[str, ...], timeout: float = 30.0
) -> list[str]:
    """Delete every topic whose name starts with `prefix` (or with one of several) and wait
    until they are gone.

    Only for throwaway namespaces (the demo's, the benchmarks'); the hub never deletes its own
    topics.
    """
    admin = await _admin(kafka, 15.0)
    try:
        doomed = sorted(t for t in await admin.list_topics() if t.startswith(prefix))
        if doomed:
            await admin.delete_topics(doomed)
        deadline = asyncio.get_running_loop().time() + timeout
        while set(doomed) & set(await admin.list_topics()):
            if asyncio.get_running_loop().time() > deadline:
                raise BrokerUnavailable(f"topics with prefix {prefix} were not deleted in {timeout}s")
            await asyncio.sleep(0.2)
        return doomed
    finally:
        await admin.close()
