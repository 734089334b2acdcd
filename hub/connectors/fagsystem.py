"""The producer API a fagsystem vendor uses from Python.

    async with FagsystemProducer("127.0.0.1:9092", source_id="oslo-fagsystem") as producer:
        sent = await producer.send_json(event)   # the contract's JSON shape, checked first
        print(sent.event_id, sent.partition, sent.offset)

Every event is checked against the contract before it is sent, Avro single-object encoded, and
keyed by the person (DUF number if present, else fødselsnummer/D-number) so that all events of
one person land on one partition and keep their order. A send returns once the broker has
acknowledged the write (acks=all, idempotent producer).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaProducer

from hub.domain.redaction import echo
from hub.errors import HubError
from hub.kafka.connection import KafkaConnection
from hub.kafka.topics import TopicNames
from hub.schemas.codec import REGISTRATION, SchemaCatalog, SchemaVersion, catalog
from hub.schemas.contract import ContractError, from_json


class UnknownSourceTopic(HubError):
    """The source has no registrations topic on the broker."""

    code = "NIR-SOURCE-TOPIC"


class OtherSource(ContractError):
    """The event names another source than the one sending it (its `sourceSystem`)."""

    code = "NIR-SOURCE-001"


@dataclass(frozen=True)
class SentEvent:
    event_id: uuid.UUID
    topic: str
    partition: int
    offset: int


def person_key(datum: dict[str, Any]) -> bytes | None:
    """The message key: the DUF number first, as a person keeps it from the first application."""
    person = datum.get("person") or {}
    value = person.get("dufNumber") or person.get("nationalId")
    return value.encode() if value else None


def checked_datum(
    event: dict[str, Any], source_id: str, version: SchemaVersion | None = None
) -> dict[str, Any]:
    """A JSON event checked against the contract (`version`, default the newest) and against the
    source that sends it; the Avro datum. Raises `ContractError` (`OtherSource` for the source)."""
    datum = from_json(event, version)
    if datum["sourceSystem"] != source_id:
        raise OtherSource(
            [f"sourceSystem: is {echo(datum['sourceSystem'])}, but it is sent as {echo(source_id)}"]
        )
    return datum


class FagsystemProducer:
    def __init__(
        self,
        kafka: KafkaConnection,
        source_id: str,
        *,
        topic_prefix: str = "nir",
        schema_catalog: SchemaCatalog | None = None,
        schema_version: int | None = None,
    ) -> None:
        self.source_id = source_id
        self.topic = TopicNames(topic_prefix).registrations(source_id)
        self.catalog = schema_catalog or catalog()
        self.schema_version = schema_version  # None: the newest; older ones for compatibility
        self._producer = AIOKafkaProducer(**kafka.aiokafka(), acks="all", enable_idempotence=True)

    async def __aenter__(self) -> FagsystemProducer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Connect, and fail at once if this source has no topic (the hub creates one per
        registered source; the broker never auto-creates topics)."""
        await self._producer.start()
        metadata = await self._producer.client.fetch_all_metadata()
        if self.topic not in metadata.topics():
            await self._producer.stop()
            raise UnknownSourceTopic(
                f"topic {self.topic} does not exist: is source {self.source_id!r} in the hub's "
                "source registry, and has the hub been started since it was added?"
            )

    async def stop(self) -> None:
        await self._producer.stop()

    def prepare(self, event: dict[str, Any]) -> dict[str, Any]:
        """Check a JSON event against the contract and this source; return the Avro datum.

        Raises `ContractError` naming every problem.
        """
        version = (
            self.catalog.version(REGISTRATION, self.schema_version)
            if self.schema_version is not None
            else None
        )
        return checked_datum(event, self.source_id, version)

    async def send_json(self, event: dict[str, Any]) -> SentEvent:
        return await self.send_datum(self.prepare(event))

    async def send_datum(self, datum: dict[str, Any]) -> SentEvent:
        """Send an already prepared Avro datum; returns once the broker has acknowledged it."""
        return (await self.send_many([datum]))[0]

    async def send_many_json(self, events: list[dict[str, Any]]) -> list[SentEvent]:
        """Check every event first (nothing is sent if one fails), then send them all."""
        return await self.send_many([self.prepare(e) for e in events])

    async def send_many(self, data: list[dict[str, Any]]) -> list[SentEvent]:
        """Send prepared data in order, batched; returns once the broker has acknowledged all.

        The idempotent producer keeps the order within each partition, so one person's
        events arrive in the order given.
        """
        pending = []
        for datum in data:
            value = self.catalog.encode(REGISTRATION, datum, self.schema_version)
            pending.append(await self._producer.send(self.topic, value, key=person_key(datum)))
        sent = []
        for datum, future in zip(data, pending, strict=True):
            metadata = await future
            sent.append(
                SentEvent(
                    event_id=uuid.UUID(str(datum["eventId"])),
                    topic=metadata.topic,
                    partition=metadata.partition,
                    offset=metadata.offset,
                )
            )
        return sent

    async def send_raw(self, value: bytes, key: bytes | None = None) -> SentEvent | None:
        """Send bytes as they are (for tests of the hub's handling of bad input)."""
        metadata = await self._producer.send_and_wait(self.topic, value, key=key)
        return SentEvent(uuid.UUID(int=0), metadata.topic, metadata.partition, metadata.offset)
