"""How an agent runs a flow: each message, in order, through the flow, guarded.

The guard is the last line of defence before Faust's acknowledgement. The flows turn every failure into an outcome. Should one still raise (a fault in the failure
path itself), returning to Faust would acknowledge the event and a graceful shutdown would commit
its offset: the event would be lost. So the process ends at once instead, without committing;
the supervisor restarts it and the event is delivered again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Sequence
from typing import Any, Protocol, TypeVar

import faust

from hub import metrics
from hub.domain.events import Origin
from hub.errors import safe_traceback
from hub.pipeline.flow import Message

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
log = logging.getLogger(__name__)

EXIT_UNHANDLED = 70  # EX_SOFTWARE


class Processes(Protocol[T_co]):
    async def process(self, message: Message) -> T_co: ...


async def _or_exit(work: Awaitable[T], where: object) -> T:
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


async def process_or_exit(flow: Processes[T_co], message: Message) -> T_co:
    return await _or_exit(flow.process(message), message.origin)


class ProcessesBatches(Protocol[T_co]):
    async def process_batch(self, messages: list[Message]) -> Sequence[T_co]: ...


async def process_batch_or_exit(flow: ProcessesBatches[T_co], messages: list[Message]) -> Sequence[T_co]:
    """The guard of `process_or_exit`, for a batch: none of its offsets is committed."""
    return await _or_exit(flow.process_batch(messages), messages[0].origin)


def message_of(event: Any) -> Message:
    m = event.message
    headers = m.headers.items() if isinstance(m.headers, dict) else (m.headers or ())
    return Message(Origin(m.topic, m.partition, m.offset), m.key, m.value, tuple(headers))


def flow_agent(app: faust.App, topic: faust.TopicT, flow: Processes[Any], name: str) -> Any:
    """Register an agent that runs every message of `topic` through `flow`.

    The flow returns only once its work is committed and confirmed, so the acknowledgement
    Faust makes when the loop moves on is safe.
    """

    processing = metrics.PROCESSING_SECONDS.labels(_short(name))

    async def run(stream: Any) -> None:
        async for event in stream.events():
            with processing.time():
                await process_or_exit(flow, message_of(event))

    return _register(app, topic, name, run)


def batch_agent(
    app: faust.App, topic: faust.TopicT, flow: ProcessesBatches[Any], name: str, *, size: int, within: float
) -> Any:
    """Register an agent that runs `topic` through `flow` in batches of up to `size` messages
    (or what arrived within `within` seconds of a batch's first message).

    The stream's acknowledgements are manual (Faust's `noack`): an event is acknowledged only
    after the flow has committed and confirmed its batch, so its offset is never committed
    before. Faust's own `take_events` stops reading the stream while a batch is processed; here
    the stream is read on (into `Batches`) while the register works on the batch before, so the
    two overlap.
    """
    processing = metrics.PROCESSING_SECONDS.labels(_short(name))

    async def run(stream: Any) -> None:
        manual = stream.noack()
        batches = Batches(size, within)

        async def decide() -> None:
            while True:
                events = await batches.next()
                started = time.perf_counter()
                await process_batch_or_exit(flow, [message_of(e) for e in events])
                elapsed = time.perf_counter() - started  # each event waited for its whole batch
                for event in events:
                    await manual.ack(event)
                    processing.observe(elapsed)

        deciding = asyncio.ensure_future(_or_exit(decide(), f"the {_short(name)} batches"))
        try:
            async for event in manual.events():
                await batches.add(event)
        finally:
            deciding.cancel()

    return _register(app, topic, name, run)


class Batches:
    """Events read from a stream, taken a batch at a time: up to `size`, or what arrived within
    `within` seconds of the first. Reading waits while two batches are already waiting."""

    def __init__(self, size: int, within: float) -> None:
        self.size, self.within = size, within
        self._waiting: list[Any] = []
        self._arrived = asyncio.Event()  # one is waiting
        self._full = asyncio.Event()  # a whole batch is waiting
        self._room = asyncio.Event()  # fewer than two batches are waiting
        self._room.set()

    async def add(self, event: Any) -> None:
        await self._room.wait()
        self._waiting.append(event)
        self._arrived.set()
        if len(self._waiting) >= self.size:
            self._full.set()
            if len(self._waiting) >= 2 * self.size:
                self._room.clear()

    async def next(self) -> list[Any]:
        await self._arrived.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._full.wait(), self.within)
        batch, self._waiting = self._waiting[: self.size], self._waiting[self.size :]
        if len(self._waiting) < self.size:
            self._full.clear()
        if not self._waiting:
            self._arrived.clear()
        self._room.set()
        return batch


def _short(name: str) -> str:
    """`hub.agents.transfer_registrations` -> `transfer_registrations` (the metrics' flow label)."""
    return name.rsplit(".", 1)[-1]


def _register(app: faust.App, topic: faust.TopicT, name: str, run: Any) -> Any:
    run.__name__ = run.__qualname__ = _short(name)
    return app.agent(topic, name=name)(run)
