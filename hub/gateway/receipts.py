"""The sources' receipts as the gateway serves them: read from the receipts topics by offset,
kept in order, and found by cursor or by event id.

Each source's receipts topic has one partition (`hub.kafka.topics.RECEIPT_PARTITIONS`), so a receipt's
offset is its place in the source's one ordered history, and a cursor is that offset: opaque to
callers (base64url of `v1:<source>:<next offset>`), refused when malformed, another source's, or
past what the topic holds. The gateway reads with no consumer group and commits nothing, so a
restart, or another replica, serves the same cursors.

Why the receipts and not the register answer `GET /v1/events/{id}`: only the receipts hold every
outcome (the register keeps no rejected event), they are the source's own (the register's event
ids are everyone's), and the gateway needs no access to the register's personal data.

What it keeps: the latest receipts of all sources together, at most `kept`
(NIR_GATEWAY_RECEIPTS_KEPT), in memory as served; when more arrive the oldest go first, whichever
source they are of. A cursor before what is kept is served from the topic itself (one such read
at a time, with a consumer of its own), so every cursor stays good; an event whose receipts are
no longer kept is not known to `GET /v1/events/{id}` (404) nor to the retry check (a retry is
sent again, and the register answers DUPLICATE).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import contextlib
import logging
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from hub.errors import safe_traceback
from hub.gateway.problems import Problem
from hub.kafka.connection import KafkaConnection
from hub.kafka.topics import TopicNames
from hub.schemas.codec import SchemaCatalog
from hub.schemas.contract import to_json
from hub.sources import SOURCE_ID_PATTERN

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
    """The receipts kept of one source in offset order, and each event's receipts by id."""

    source_id: str
    offsets: deque[int] = field(default_factory=deque)
    by_offset: dict[int, dict[str, Any]] = field(default_factory=dict)
    by_event: dict[str, list[int]] = field(default_factory=dict)  # event id -> offsets, oldest first
    next_offset: int = 0  # one past the last offset read
    kept_from: int = 0  # receipts before this offset are no longer kept: read them from the topic
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, offset: int, receipt: dict[str, Any]) -> None:
        receipt["cursor"] = encode_cursor(self.source_id, offset + 1)
        self.offsets.append(offset)
        self.by_offset[offset] = receipt
        if receipt.get("eventId"):
            self.by_event.setdefault(receipt["eventId"], []).append(offset)
        self.next_offset = offset + 1

    def drop_oldest(self) -> None:
        offset = self.offsets.popleft()
        receipt = self.by_offset.pop(offset)
        event_id = receipt.get("eventId")
        if event_id:
            kept = self.by_event[event_id]
            kept.remove(offset)  # the first: receipts are dropped in offset order
            if not kept:
                del self.by_event[event_id]
        self.kept_from = offset + 1

    def __len__(self) -> int:
        return len(self.offsets)

    def after(self, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """At most `limit` kept receipts from `offset` on, and the offset after the last of them."""
        start = bisect.bisect_left(self.offsets, offset)
        found = [self.by_offset[o] for o in islice(self.offsets, start, start + limit)]
        return found, (self.offsets[start + len(found) - 1] + 1 if found else offset)

    def outcome(self, event_id: str) -> dict[str, Any] | None:
        """The event's outcome: its last receipt other than DUPLICATE, else its last."""
        offsets = self.by_event.get(event_id)
        if not offsets:
            return None
        found = [self.by_offset[o] for o in offsets]
        return next((r for r in reversed(found) if r["outcome"] != "DUPLICATE"), found[-1])

    def received(self, event_id: str) -> dict[str, Any] | None:
        """The receipt that shows the event arrived and need not be sent again (a rejected
        event may be sent again, corrected, under the same id)."""
        outcome = self.outcome(event_id)
        return outcome if outcome is not None and outcome["outcome"] in _NOT_AGAIN else None


class ReceiptLog:
    """Follows every source's receipts topic from its beginning, with one consumer and no group,
    keeping the latest `kept` receipts; `on_receipt` is told of each receipt as it is read."""

    def __init__(
        self,
        kafka: KafkaConnection,
        names: TopicNames,
        source_ids: list[str],
        catalog: SchemaCatalog,
        *,
        kept: int = 100_000,
        on_receipt: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.kafka = kafka
        self.catalog = catalog
        self.kept = kept
        self.on_receipt = on_receipt
        self.sources = {s: SourceReceipts(s) for s in source_ids}
        self._topics = {names.receipts(s): s for s in source_ids}
        self._order: deque[SourceReceipts] = deque()  # whose receipt each kept one is, oldest first
        self._consumer: AIOKafkaConsumer | None = None
        self._history: AIOKafkaConsumer | None = None  # reads what is no longer kept
        self._history_lock = asyncio.Lock()
        self._caught_up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def caught_up(self) -> bool:
        """Whether every receipt that was on the topics at start has been read."""
        return self._caught_up.is_set()

    def mark_caught_up(self) -> None:
        """For a gateway that runs without the topics (the in-process tests)."""
        self._caught_up.set()

    def __len__(self) -> int:
        """How many receipts are kept in memory."""
        return len(self._order)

    def add(self, source_id: str, offset: int, receipt: dict[str, Any]) -> None:
        """Keep a receipt read from the source's topic, letting the oldest kept one go if there
        are too many."""
        source = self.sources[source_id]
        source.add(offset, receipt)
        self._order.append(source)
        while len(self._order) > self.kept:
            self._order.popleft().drop_oldest()
        if self.on_receipt is not None:
            self.on_receipt(source_id, receipt)

    async def start(self) -> None:
        options = dict(group_id=None, enable_auto_commit=False, auto_offset_reset="earliest")
        self._consumer = AIOKafkaConsumer(**self.kafka.aiokafka(), **options)
        self._history = AIOKafkaConsumer(**self.kafka.aiokafka(), **options)
        await self._consumer.start()
        await self._history.start()
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
        for consumer in (self._consumer, self._history):
            if consumer is not None:
                await consumer.stop()

    async def wait_caught_up(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._caught_up.wait(), timeout)
        return self.caught_up

    def _decode(self, record: ConsumerRecord[Any, Any]) -> dict[str, Any] | None:
        try:
            receipt: dict[str, Any] = to_json(self.catalog.decode(record.value).datum)
        except Exception as exc:  # a receipt the hub wrote is readable; skip one that is not
            log.warning("receipt at %s:%s unreadable: %s", record.topic, record.offset, type(exc).__name__)
            return None
        return receipt

    async def _follow(self, ends: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=500, max_records=2000)
            except Exception as exc:  # the client reconnects; the next fetch tries again
                log.warning("reading the receipts failed: %s", safe_traceback(exc))
                await asyncio.sleep(1.0)
                continue
            for tp, records in batches.items():
                source_id = self._topics[tp.topic]
                source = self.sources[source_id]
                for record in records:
                    receipt = self._decode(record)
                    if receipt is None:
                        source.next_offset = record.offset + 1
                        continue
                    self.add(source_id, record.offset, receipt)
                if records:
                    source.arrived.set()
                    source.arrived = asyncio.Event()
            if not self.caught_up and await self._reached(ends):
                self._caught_up.set()

    async def _reached(self, ends: dict[TopicPartition, int]) -> bool:
        assert self._consumer is not None
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
        if offset < source.kept_from:
            return await self._from_topic(source, offset, limit)
        found, next_offset = source.after(offset, limit)
        if not found and wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(source.arrived.wait(), wait)
            if offset < source.kept_from:  # so many came meanwhile that the first went already
                return await self._from_topic(source, offset, limit)
            found, next_offset = source.after(offset, limit)
        return found, next_offset

    async def _from_topic(
        self, source: SourceReceipts, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """Receipts from `offset` on that are no longer kept, read from the source's topic up to
        where the kept ones begin (the next page comes from memory)."""
        assert self._history is not None
        topic = next(t for t, s in self._topics.items() if s == source.source_id)
        tp = TopicPartition(topic, 0)
        found: list[dict[str, Any]] = []
        async with self._history_lock:  # one consumer, one position: one such read at a time
            self._history.assign([tp])
            self._history.seek(tp, offset)
            position = offset
            while len(found) < limit and position < source.kept_from:
                batches = await self._history.getmany(tp, timeout_ms=2000, max_records=limit - len(found))
                records = [r for r in batches.get(tp, []) if r.offset < source.kept_from]
                if not batches.get(tp):
                    # Nothing came in time, or only markers of transactions were there: the
                    # caller goes on from where the consumer got to.
                    position = max(position, min(await self._history.position(tp), source.kept_from))
                    break
                for record in records:
                    position = record.offset + 1
                    receipt = self._decode(record)
                    if receipt is not None:
                        receipt["cursor"] = encode_cursor(source.source_id, record.offset + 1)
                        found.append(receipt)
                if len(records) < len(batches[tp]):
                    position = source.kept_from
        return found, position
