"""Which sources IMDi has revoked, as the gateway knows it: the source-states topic, followed.

The gateway sends on a source's behalf as its own principal, so taking a source's ACLs away does
not stop it there; the gateway itself must refuse a revoked source. `hub sources revoke` publishes
a `hub.sources.SourceState` keyed by the source id on the compacted topic
`TopicNames.source_states`; `SourceStates` reads that topic from its beginning with no consumer
group (every gateway replica reads all of it, and commits nothing) and then follows it, so a
revocation or a restoration reaches a running gateway within about a second. The latest state of
a source wins; a tombstone (no value) forgets the state, which leaves the source as the registry
has it: not revoked. A value that is not a state this hub wrote is logged by its place (never its
content) and ignored.

Until the topic has been read up to the end it had at start, the gateway cannot know who is
revoked, and takes no request (503, as while it reads the receipts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from hub.domain.sources import SourceState
from hub.errors import safe_traceback
from hub.kafka.connection import KafkaConnection
from hub.kafka.topics import TopicNames

log = logging.getLogger(__name__)


class SourceStates:
    """The latest `SourceState` of each source that has one, from the source-states topic."""

    def __init__(self, kafka: KafkaConnection, names: TopicNames) -> None:
        self.kafka = kafka
        self.topic = names.source_states
        self._states: dict[str, SourceState] = {}
        self._caught_up = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    def revoked(self, source_id: str) -> SourceState | None:
        """The source's revocation, if it is revoked now."""
        state = self._states.get(source_id)
        return state if state is not None and state.revoked else None

    @property
    def caught_up(self) -> bool:
        """Whether every state that was on the topic at start has been read."""
        return self._caught_up.is_set()

    def apply(self, key: bytes | None, value: bytes | None, offset: int) -> None:
        """Take one record of the topic: the state it carries replaces the source's earlier one."""
        source = key.decode("utf-8", "replace") if key is not None else None
        if value is None:
            if source is not None:
                self._states.pop(source, None)
            return
        try:
            state = SourceState.from_bytes(value)
        except ValueError:
            state = None
        if state is None or state.source != source:
            # A state keyed by another source than it names is not one the hub wrote: ignored,
            # or a record could revoke or restore a source it does not name.
            log.warning("source state at %s:%s is not a state this hub wrote; ignored", self.topic, offset)
            return
        before = self._states.get(state.source)
        self._states[state.source] = state
        if before is None or before.revoked != state.revoked:
            log.info(
                "source %s is %s since %s",
                state.source,
                "revoked" if state.revoked else "not revoked",
                state.since.isoformat(),
            )

    def mark_caught_up(self) -> None:
        """For a gateway that runs without the topic (the in-process tests)."""
        self._caught_up.set()

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            **self.kafka.aiokafka(), group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        await self._consumer.start()
        partition = TopicPartition(self.topic, 0)  # one partition: the topic is small and ordered
        self._consumer.assign([partition])
        await self._consumer.seek_to_beginning(partition)
        end = (await self._consumer.end_offsets([partition]))[partition]
        self._task = asyncio.create_task(self._follow(partition, end))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    async def wait_caught_up(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._caught_up.wait(), timeout)
        return self.caught_up

    async def _follow(self, partition: TopicPartition, end: int) -> None:
        assert self._consumer is not None
        while True:
            try:
                # A short wait: a revocation should reach the gateway within a second or so.
                batches = await self._consumer.getmany(partition, timeout_ms=250, max_records=1000)
            except Exception as exc:  # the client reconnects; the next fetch tries again
                log.warning("reading the source states failed: %s", safe_traceback(exc))
                await asyncio.sleep(1.0)
                continue
            for record in batches.get(partition, []):
                self.apply(record.key, record.value, record.offset)
            if not self.caught_up and await self._consumer.position(partition) >= end:
                self._caught_up.set()
