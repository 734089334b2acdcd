"""The sources' receipts as the gateway serves them: read from the receipts topics by offset,
kept in order, and found by cursor or by event id.

Each source's receipts topic has one partition (`hub.topics.RECEIPT_PARTITIONS`), so a receipt's
offset is its place in the source's one ordered history, and a cursor is that offset: opaque to
callers (base64url of `v1:<source>:<next offset>`), refused when malformed, another source's, or
past what the topic holds. The gateway reads with no consumer group and commits nothing, so a
restart, or another replica, serves the same cursors.

Why the receipts and not the register answer `GET /v1/events/{id}`: only the receipts hold every
outcome (the register keeps no rejected event), they are the source's own (the register's event
ids are everyone's), and the gateway needs no access to the register's personal data.

What it keeps: every receipt of every source in memory, as served (about 300 bytes each).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import contextlib
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from hub.errors import safe_traceback
from hub.gateway.problems import Problem
from hub.kafka_client import KafkaConnection
from hub.schemas.codec import SchemaCatalog
from hub.schemas.contract import to_json
from hub.sources import SOURCE_ID_PATTERN
from hub.topics import TopicNames

log = logging.getLogger(__name__)

CURSOR_VERSION = "v1"
_CURSOR = re.compile(rf"{CURSOR_VERSION}:({SOURCE_ID_PATTERN}):(0|[1-9][0-9]{{0,18}})")
# What an event id's answer is when its receipts say it arrived: a DUPLICATE says only that a
# later copy was not written again, so the event's own outcome is the last receipt that is not one.
_NOT_AGAIN = {"ACCEPTED", "ACCEPTED_WITH_WARNINGS", "HELD", "DUPLICATE"}


def encode_cursor(source_id: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{CURSOR_VERSION}:{source_id}:{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str, source_id: str) -> int:
    """The offset a cursor stands for, if it is one of this source's; else a 400 or 403."""
    invalid = Problem(
        400, "invalid-cursor", "The cursor is not one this API gave", "start again without `after`"
    )
    if len(cursor) > 200:
        raise invalid
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise invalid from None
    match = _CURSOR.fullmatch(text)
    if match is None:
        raise invalid
    if match.group(1) != source_id:
        raise Problem(
            403, "forbidden-source", "The cursor is another source's", "use a cursor from your own receipts"
        )
    return int(match.group(2))


@dataclass
class SourceReceipts:
    """One source's receipts in offset order, and each event's receipts by id."""

    source_id: str
    offsets: list[int] = field(default_factory=list)
    receipts: list[dict[str, Any]] = field(default_factory=list)
    by_event: dict[str, list[int]] = field(default_factory=dict)  # event id -> indexes
    next_offset: int = 0  # one past the last offset read
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, offset: int, receipt: dict[str, Any]) -> None:
        receipt["cursor"] = encode_cursor(self.source_id, offset + 1)
        self.offsets.append(offset)
        self.receipts.append(receipt)
        if receipt.get("eventId"):
            self.by_event.setdefault(receipt["eventId"], []).append(len(self.receipts) - 1)
        self.next_offset = offset + 1

    def after(self, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """At most `limit` receipts from `offset` on, and the offset after the last of them."""
        start = bisect.bisect_left(self.offsets, offset)
        found = self.receipts[start : start + limit]
        return found, (self.offsets[start + len(found) - 1] + 1 if found else offset)

    def outcome(self, event_id: str) -> dict[str, Any] | None:
        """The event's outcome: its last receipt other than DUPLICATE, else its last."""
        indexes = self.by_event.get(event_id)
        if not indexes:
            return None
        found = [self.receipts[i] for i in indexes]
        return next((r for r in reversed(found) if r["outcome"] != "DUPLICATE"), found[-1])

    def received(self, event_id: str) -> dict[str, Any] | None:
        """The receipt that shows the event arrived and need not be sent again (a rejected
        event may be sent again, corrected, under the same id)."""
        outcome = self.outcome(event_id)
        return outcome if outcome is not None and outcome["outcome"] in _NOT_AGAIN else None


class ReceiptLog:
    """Follows every source's receipts topic from its beginning, with one consumer and no group."""

    def __init__(
        self, kafka: KafkaConnection, names: TopicNames, source_ids: list[str], catalog: SchemaCatalog
    ) -> None:
        self.catalog = catalog
        self.sources = {s: SourceReceipts(s) for s in source_ids}
        self._topics = {names.receipts(s): s for s in source_ids}
        self._consumer = AIOKafkaConsumer(
            **kafka.aiokafka(), group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        self._caught_up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def caught_up(self) -> bool:
        """Whether every receipt that was on the topics at start has been read."""
        return self._caught_up.is_set()

    async def start(self) -> None:
        await self._consumer.start()
        partitions = [TopicPartition(topic, 0) for topic in self._topics]
        self._consumer.assign(partitions)
        await self._consumer.seek_to_beginning(*partitions)
        ends = await self._consumer.end_offsets(partitions)
        self._task = asyncio.create_task(self._follow(ends))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    async def wait_caught_up(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._caught_up.wait(), timeout)
        return self.caught_up

    async def _follow(self, ends: dict[TopicPartition, int]) -> None:
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=500, max_records=2000)
            except Exception as exc:  # the client reconnects; the next fetch tries again
                log.warning("reading the receipts failed: %s", safe_traceback(exc))
                await asyncio.sleep(1.0)
                continue
            for tp, records in batches.items():
                source = self.sources[self._topics[tp.topic]]
                for record in records:
                    try:
                        receipt = to_json(self.catalog.decode(record.value).datum)
                    except Exception as exc:  # a receipt the hub wrote is readable; skip one that is not
                        log.warning(
                            "receipt at %s:%s unreadable: %s", tp.topic, record.offset, type(exc).__name__
                        )
                        source.next_offset = record.offset + 1
                        continue
                    source.add(record.offset, receipt)
                if records:
                    source.arrived.set()
                    source.arrived = asyncio.Event()
            if not self.caught_up and await self._reached(ends):
                self._caught_up.set()

    async def _reached(self, ends: dict[TopicPartition, int]) -> bool:
        for tp, end in ends.items():
            if await self._consumer.position(tp) < end:
                return False
        return True

    async def read(
        self, source_id: str, offset: int, limit: int, wait: float
    ) -> tuple[list[dict[str, Any]], int]:
        """Receipts from `offset` on (at most `limit`), waiting up to `wait` seconds for the first;
        and the offset to go on from."""
        source = self.sources[source_id]
        if offset > source.next_offset:
            raise Problem(
                400, "invalid-cursor", "The cursor is not one this API gave", "start again without `after`"
            )
        found, next_offset = source.after(offset, limit)
        if not found and wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(source.arrived.wait(), wait)
            found, next_offset = source.after(offset, limit)
        return found, next_offset
