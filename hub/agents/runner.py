"""How an agent runs a flow: the stream's messages in batches, in order, guarded.

Acknowledgements are manual (Faust's `noack` stream): a message is acknowledged only after its
batch is committed and confirmed, so its offset is never committed before. The stream is read on
(into `Batches`) while the register works on the batch before, so the two overlap.

Two guards stand between a message and its acknowledgement:
- The crash guard (`hub.pipeline.crash_guard`) marks each batch before the flow begins it; a
  message the worker keeps dying on is found by its marks and set aside unread, so one message
  can never stop a partition for good.
- The exit guard: the flows turn every failure into an outcome. Should one still raise (a fault in
  the failure path itself), returning to Faust would acknowledge the event and a graceful
  shutdown would commit its offset: the event would be lost. So the process ends at once
  instead, without committing; the supervisor restarts it and the crash guard takes over.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

import faust

from hub.bootstrap import Hub
from hub.domain.events import Origin
from hub.errors import safe_traceback
from hub.kafka.transport import RecordBatch, records_in
from hub.ops import metrics
from hub.pipeline import crash_guard
from hub.pipeline.flow import Message
from hub.register.unit_of_work import UnitOfWork

T = TypeVar("T")
log = logging.getLogger(__name__)

EXIT_UNHANDLED = 70  # EX_SOFTWARE


class GuardedFlow(Protocol):
    """What the runner needs of a flow (`hub.pipeline.flow.Flow` and its subclasses)."""

    hub: Hub

    async def process_batch(self, messages: list[Message]) -> Sequence[Any]: ...

    async def set_aside(self, message: Message, times: int) -> None: ...

    async def in_transaction(self, work: Callable[[UnitOfWork], T], what: str) -> T: ...


async def or_exit(work: Awaitable[T], where: object) -> T:
    try:
        return await work
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        log.critical(
            "unhandled failure at %s (%s); exiting without committing its offset",
            where,
            safe_traceback(exc),
        )
        logging.shutdown()
        os._exit(EXIT_UNHANDLED)


async def run_guarded(flow: GuardedFlow, name: str, messages: list[Message]) -> None:
    """Run `messages` through `flow`, with the crash guard's marks around the work (see
    `hub.pipeline.crash_guard`); returns once every outcome is committed and confirmed."""
    plan = await flow.in_transaction(
        lambda uow: crash_guard.plan(uow.session, name, messages, flow.hub.clock()), "crash guard"
    )
    if plan.together:
        await or_exit(flow.process_batch(plan.together), plan.together[0].origin)
        await flow.in_transaction(lambda uow: crash_guard.finish(uow.session, plan.marks), "crash guard")
    for message in plan.one_by_one:
        await _run_alone(flow, name, message, flow.hub.settings.crash_attempts)


async def _run_alone(flow: GuardedFlow, name: str, message: Message, limit: int) -> None:
    """One message of a suspected partition, with a mark of its own that counts its beginnings."""
    origin = message.origin
    attempts = await flow.in_transaction(
        lambda uow: crash_guard.begin_one(uow.session, name, origin, flow.hub.clock()), "crash guard"
    )
    if attempts > limit:
        log.error("%s: the worker stopped %d times on %s; set aside unprocessed", name, attempts - 1, origin)
        await or_exit(flow.set_aside(message, attempts - 1), origin)
        metrics.SET_ASIDE.labels(name).inc()
    else:
        await or_exit(flow.process_batch([message]), origin)
    await flow.in_transaction(lambda uow: crash_guard.finish_one(uow.session, name, origin), "crash guard")


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


def flow_agent(
    app: faust.App, topic: faust.TopicT, flow: GuardedFlow, name: str, *, size: int, within: float
) -> Any:
    """Register an agent that runs `topic` through `flow` in batches of up to `size` messages
    (or what arrived within `within` seconds of a batch's first message)."""
    flow_name = _short(name)
    processing = metrics.PROCESSING_SECONDS.labels(flow_name)

    async def run(stream: Any) -> None:
        manual = stream.noack()
        batches = Batches(size, within)

        async def decide() -> None:
            while True:
                events = await batches.next()
                started = time.perf_counter()
                messages = [m for e in events for m in messages_of(e)]
                await run_guarded(flow, flow_name, messages)
                elapsed = time.perf_counter() - started  # each message waited for its whole batch
                for event in events:
                    await manual.ack(event)
                for _ in messages:
                    processing.observe(elapsed)

        deciding = asyncio.ensure_future(or_exit(decide(), f"the {flow_name} batches"))
        try:
            async for event in manual.events():
                await batches.add(event, records_in(event.message))
        finally:
            deciding.cancel()

    run.__name__ = run.__qualname__ = flow_name
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
