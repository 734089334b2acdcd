"""Reading receipts: how a fagsystem learns the outcome of every event it sent.

    async with ReceiptReader("127.0.0.1:9092", source_id="oslo-fagsystem") as receipts:
        outcomes = await receipts.wait_for([sent.event_id for sent in sent_events], timeout=60)
        async for receipt in receipts.stream():      # or follow them as they come
            ...

A HELD receipt is not final: the same event gets another receipt when it is accepted or finally
rejected. `wait_for` therefore waits for the final one.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, TopicPartition

from hub.kafka.connection import KafkaConnection
from hub.kafka.topics import TopicNames
from hub.schemas.codec import SchemaCatalog, catalog
from hub.schemas.contract import to_json

FINAL = {"ACCEPTED", "ACCEPTED_WITH_WARNINGS", "DUPLICATE", "REJECTED"}


@dataclass(frozen=True)
class Receipt:
    event_id: uuid.UUID | None
    outcome: str
    violations: list[dict[str, Any]]
    registered_at: dt.datetime | None
    processed_at: dt.datetime
    original_topic: str
    original_partition: int
    original_offset: int
    # The receipt as its Avro record has it, for `as_json`.
    contract: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def as_json(self) -> dict[str, Any]:
        """The receipt in the contract's JSON shape (camelCase), as the gateway gives it."""
        return cast(dict[str, Any], to_json(self.contract))

    @property
    def final(self) -> bool:
        return self.outcome in FINAL

    def describe(self) -> str:
        codes = ", ".join(f"{v['code']} ({v['severity']})" for v in self.violations)
        when = self.processed_at.isoformat(timespec="seconds")
        return f"{when}  {self.event_id or '-'}  {self.outcome}" + (f"  {codes}" if codes else "")


def decode_receipt(schema_catalog: SchemaCatalog, value: bytes) -> Receipt:
    d = schema_catalog.decode(value).datum
    return Receipt(
        event_id=d["eventId"],
        outcome=d["outcome"],
        violations=d["violations"],
        registered_at=d["registeredAt"],
        processed_at=d["processedAt"],
        original_topic=d["originalTopic"],
        original_partition=d["originalPartition"],
        original_offset=d["originalOffset"],
        contract=d,
    )


class ReceiptReader:
    """Reads one source's receipts topic, from the beginning or from a consumer group's position."""

    def __init__(
        self,
        kafka: KafkaConnection,
        source_id: str,
        *,
        topic_prefix: str = "nir",
        group_id: str | None = None,
        schema_catalog: SchemaCatalog | None = None,
    ) -> None:
        self.topic = TopicNames(topic_prefix).receipts(source_id)
        self.catalog = schema_catalog or catalog()
        self._consumer = AIOKafkaConsumer(
            self.topic,
            **kafka.aiokafka(),
            group_id=group_id,
            auto_offset_reset="earliest",
            enable_auto_commit=group_id is not None,
        )

    async def __aenter__(self) -> ReceiptReader:
        await self._consumer.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._consumer.stop()

    async def stream(self) -> AsyncIterator[Receipt]:
        """Every receipt, in order, as it arrives (forever)."""
        async for record in self._consumer:
            yield decode_receipt(self.catalog, record.value)

    async def until_caught_up(self) -> list[Receipt]:
        """The receipts already on the topic (from this reader's position to the current end)."""
        partitions = [
            TopicPartition(self.topic, p) for p in self._consumer.partitions_for_topic(self.topic) or []
        ]
        end = await self._consumer.end_offsets(partitions)
        receipts: list[Receipt] = []
        while [tp for tp, offset in end.items() if await self._consumer.position(tp) < offset]:
            batch = await self._consumer.getmany(timeout_ms=500)
            for records in batch.values():
                receipts.extend(decode_receipt(self.catalog, r.value) for r in records)
        return receipts

    async def wait_for(self, event_ids: Iterable[uuid.UUID], timeout: float) -> dict[uuid.UUID, Receipt]:
        """The final receipt of each event, or what there is of them when `timeout` runs out."""
        wanted = set(event_ids)
        found: dict[uuid.UUID, Receipt] = {}

        async def collect() -> None:
            async for receipt in self.stream():
                if receipt.event_id in wanted and (receipt.final or receipt.event_id not in found):
                    found[receipt.event_id] = receipt
                if all(e in found and found[e].final for e in wanted):
                    return

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(collect(), timeout)
        return found
