"""The worker's publisher (`FaustPublisher` over `hub.kafka.transport.HubProducer`) on the real broker:
every message arrives once, on the partition its key chooses, each partition's messages in the
order they were given, with their headers."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections import defaultdict

import faust
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from hub.app import FaustPublisher
from hub.kafka.admin import ensure_topics
from hub.kafka.connection import KafkaConnection
from hub.kafka.topics import TopicSpec
from hub.kafka.transport import HubProducer
from hub.pipeline.ports import Outgoing

PARTITIONS = 3


def _app(kafka: KafkaConnection, scheme: str = "nirkafka") -> faust.App:
    return faust.App(
        f"publisher-test-{uuid.uuid4().hex[:8]}",
        broker=f"{scheme}://{kafka.bootstrap}",
        broker_credentials=kafka.faust_credentials(),
    )


async def _read_all(
    kafka: KafkaConnection, topics: list[str], expected: int
) -> list[tuple[str, int, object]]:
    consumer = AIOKafkaConsumer(**kafka.aiokafka(), enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[tuple[str, int, object]] = []
        for _ in range(50):
            for tp, batch in (await consumer.getmany(timeout_ms=200)).items():
                records += [(tp.topic, tp.partition, r) for r in batch]
            if len(records) >= expected:
                break
        return records
    finally:
        await consumer.stop()


def test_publisher_delivers_every_message_once_in_order_on_its_keys_partition(
    kafka_admin: KafkaConnection,
) -> None:
    topics = [f"publisher-{uuid.uuid4().hex[:8]}-{n}" for n in ("receipts", "dead-letters", "counted")]
    receipts, dead_letters, counted = topics
    keys = [b"oslo-fagsystem", b"bergen-fagsystem", b"trondheim-fagsystem", None]
    # Large enough that each partition's messages take several record batches.
    messages = [
        Outgoing(
            receipts if i % 5 else dead_letters,
            keys[i % len(keys)],
            f"{i:06d}".encode() + b"x" * 1000,
            [("nir-sequence", str(i).encode())],
        )
        for i in range(600)
    ]

    async def scenario() -> tuple[int, list[tuple[str, int, object]]]:
        await ensure_topics(kafka_admin, [TopicSpec(t, PARTITIONS) for t in topics], 1)
        app = _app(kafka_admin)
        producer = app.producer
        assert isinstance(producer, HubProducer)
        await producer.start()
        try:
            await FaustPublisher(app).send_many(messages)
            confirmations = await producer.send_batches(
                [dataclasses.replace(m, topic=counted) for m in messages]
            )
            await asyncio.gather(*confirmations)
        finally:
            await producer.stop()
        return len(confirmations), await _read_all(kafka_admin, [receipts, dead_letters], len(messages))

    batches, records = asyncio.run(scenario())
    assert batches > 2 * PARTITIONS  # full batches were split: that path ran

    partitioner = DefaultPartitioner()
    index_of = {m.value: i for i, m in enumerate(messages)}
    received: dict[tuple[str, int], list[int]] = defaultdict(list)
    for topic, partition, record in records:
        index = index_of[record.value]  # type: ignore[attr-defined]
        message = messages[index]
        assert topic == message.topic
        assert record.key == message.key  # type: ignore[attr-defined]
        assert list(record.headers) == message.headers  # type: ignore[attr-defined]
        if message.key is not None:
            assert partition == partitioner(message.key, list(range(PARTITIONS)), list(range(PARTITIONS)))
        received[(topic, partition)].append(index)
    every = sorted(i for indexes in received.values() for i in indexes)
    assert every == list(range(len(messages)))  # each exactly once
    for indexes in received.values():
        assert indexes == sorted(indexes)  # each partition in the order given


def test_publisher_refuses_a_transport_without_record_batches(kafka_admin: KafkaConnection) -> None:
    publisher = FaustPublisher(_app(kafka_admin, scheme="kafka"))
    with pytest.raises(TypeError, match="nirkafka"):
        asyncio.run(publisher.send_many([Outgoing("any", b"k", b"v", [])]))
