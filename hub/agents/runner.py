"""How an agent runs a flow: the stream's messages in batches, in order, each batch through its
checkpoint (`hub.pipeline.checkpoint`: from the crash guard's mark to the acknowledgement).

Acknowledgements are manual (Faust's `noack` stream): the checkpoint acknowledges a batch's events
(`StreamAcknowledgement`) only after they are committed and answered, so no offset is committed
before. The stream is read on (into `Batches`) while the register works on the batch before, so
the two overlap. Faust stays here: the checkpoint sees messages and an acknowledgement.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import faust

from hub import wiring
from hub.bootstrap import Hub
from hub.domain.events import Origin
from hub.domain.transfer import Message
from hub.kafka.transport import RecordBatch, records_in
from hub.ops import metrics
from hub.pipeline.checkpoint import BatchFlow, Checkpoint, or_exit

if TYPE_CHECKING:
    from hub.app import HubApp

log = logging.getLogger(__name__)


def guarded(hub: Hub, flow: BatchFlow, name: str) -> Checkpoint:
    """The checkpoint of `flow`'s batches, its marks kept under `name`'s short form."""
    return wiring.checkpoint(hub, flow, _short(name))


class StreamAcknowledgement:
    """The acknowledgement of a batch's events on a Faust `noack` stream."""

    def __init__(self, stream: Any, events: list[Any]) -> None:
        self.stream, self.events = stream, events

    async def acknowledge(self) -> None:
        for event in self.events:
            await self.stream.ack(event)


class _Unacknowledged:
    """No acknowledgement: a batch run outside a stream."""

    async def acknowledge(self) -> None:
        return None


async def run_guarded(hub: Hub, flow: BatchFlow, name: str, messages: list[Message]) -> None:
    """Run `messages` through `flow`'s checkpoint, acknowledging nothing; returns once every
    outcome is committed and confirmed."""
    await guarded(hub, flow, name).run(messages, _Unacknowledged())


# Kafka's timestamp types: the producer's (CreateTime) or the broker's (LogAppendTime).
LOG_APPEND_TIME = 1


def messages_of(event: Any) -> list[Message]:
    """The messages of a stream event: the records of a `RecordBatch` (the hub's transport
    delivers a partition's fetched records as one), or the one message of any other."""
    delivered = event.message
    if isinstance(delivered, RecordBatch):
        return [
            _message(
                r.topic,
                r.partition,
                r.offset,
                r.key,
                r.value,
                r.headers,
                r.timestamp / 1000.0,
                r.timestamp_type,
            )
            for r in delivered.records
        ]
    m = delivered
    return [
        _message(m.topic, m.partition, m.offset, m.key, m.value, m.headers, m.timestamp, m.timestamp_type)
    ]


def _message(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: Any,
    timestamp: float | None,
    timestamp_type: int,
) -> Message:
    headers = headers.items() if isinstance(headers, dict) else (headers or ())
    # Only the broker's own time says when the hub received a message; a producer's is its claim.
    appended = timestamp_type == LOG_APPEND_TIME
    received_at = dt.datetime.fromtimestamp(timestamp, dt.UTC) if appended and timestamp else None
    return Message(Origin(topic, partition, offset), key, value, tuple(headers), received_at)


def install_flow(wired: HubApp, topic: faust.TopicT, flow: BatchFlow, name: str) -> None:
    """`flow`'s agent on `wired`'s app: `topic`'s messages in batches through its checkpoint."""
    settings = wired.settings
    flow_agent(
        wired.app,
        topic,
        guarded(wired.hub, flow, name),
        name,
        size=settings.batch_size,
        within=settings.batch_window_seconds,
    )


def flow_agent(
    app: faust.App, topic: faust.TopicT, checkpoint: Checkpoint, name: str, *, size: int, within: float
) -> Any:
    """Register an agent that runs `topic` through `checkpoint` in batches of up to `size` messages
    (or what arrived within `within` seconds of a batch's first message)."""
    processing = metrics.PROCESSING_SECONDS.labels(checkpoint.name)

    async def run(stream: Any) -> None:
        manual = stream.noack()
        batches = Batches(size, within)

        async def decide() -> None:
            while True:
                events = await batches.next()
                started = time.perf_counter()
                messages = [m for e in events for m in messages_of(e)]
                await checkpoint.run(messages, StreamAcknowledgement(manual, events))
                elapsed = time.perf_counter() - started  # each message waited for its whole batch
                for _ in messages:
                    processing.observe(elapsed)

        deciding = asyncio.ensure_future(or_exit(decide(), f"the {checkpoint.name} batches"))
        try:
            async for event in manual.events():
                await batches.add(event, records_in(event.message))
        finally:
            deciding.cancel()

    run.__name__ = run.__qualname__ = checkpoint.name
    return app.agent(topic, name=name)(run)


class Batches:
    """Events read from a stream, taken a batch at a time: as many as hold up to `size`
    messages (a `RecordBatch` event holds several; a batch takes at least one event), or what
    arrived within `within` seconds of the first. Reading waits while two batches' worth of
    messages are already waiting.

    The window counts from the first event's arrival, not from when the batch is asked for:
    events that came while the batch before was decided have waited long enough already, and
    waiting a whole window again after every batch left the worker idle for a fifth of the
    time at 1,000 events/s (and their latency a window longer)."""

    def __init__(self, size: int, within: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.size, self.within, self._clock = size, within, clock
        # Each waiting event, with how many messages it holds and when it arrived (monotonic).
        self._waiting: collections.deque[tuple[Any, int, float]] = collections.deque()
        self._messages = 0  # messages waiting
        self._arrived = asyncio.Event()  # one is waiting
        self._full = asyncio.Event()  # a whole batch is waiting
        self._room = asyncio.Event()  # fewer than two batches are waiting
        self._room.set()

    async def add(self, event: Any, messages: int = 1) -> None:
        await self._room.wait()
        self._waiting.append((event, messages, self._clock()))
        self._messages += messages
        self._arrived.set()
        if self._messages >= self.size:
            self._full.set()
            if self._messages >= 2 * self.size:
                self._room.clear()

    async def next(self) -> list[Any]:
        await self._arrived.wait()
        left = self._waiting[0][2] + self.within - self._clock()
        if left > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), left)
        batch: list[Any] = []
        taken = 0
        while self._waiting and (not batch or taken + self._waiting[0][1] <= self.size):
            event, messages, _ = self._waiting.popleft()
            batch.append(event)
            taken += messages
        self._messages -= taken
        if self._messages < self.size:
            self._full.clear()
        if not self._waiting:
            self._arrived.clear()
        if self._messages < 2 * self.size:
            self._room.set()
        return batch


def _short(name: str) -> str:
    """`hub.agents.transfer_registrations` -> `transfer_registrations` (the metrics' flow label)."""
    return name.rsplit(".", 1)[-1]
