"""The agents' runner: an exception that escapes a flow ends the process instead of reaching
Faust's acknowledgement; batches are taken whole, in order, with a bounded read-ahead."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hub.agents.runner import Batches
from hub.domain.events import Origin
from hub.domain.transfer import Message
from hub.pipeline.checkpoint import EXIT_UNHANDLED, or_exit

MESSAGE = Message(Origin("t", 0, 1), None, b"")


class Exited(Exception):
    pass


class Failing:
    async def process(self, message: Message) -> None:
        raise RuntimeError("a fault in the failure path")


class Working:
    async def process(self, message: Message) -> str:
        return "done"


def test_an_escaping_exception_exits_the_process_without_returning(monkeypatch: pytest.MonkeyPatch) -> None:
    codes: list[int] = []

    def fake_exit(code: int) -> None:
        codes.append(code)
        raise Exited

    monkeypatch.setattr("hub.pipeline.checkpoint.os._exit", fake_exit)
    with pytest.raises(Exited):
        asyncio.run(or_exit(Failing().process(MESSAGE), MESSAGE.origin))
    assert codes == [EXIT_UNHANDLED]


def test_a_flow_that_returns_is_passed_through() -> None:
    assert asyncio.run(or_exit(Working().process(MESSAGE), MESSAGE.origin)) == "done"


def test_batches_are_taken_whole_in_order_and_a_partial_one_after_the_window() -> None:
    async def run() -> list[list[int]]:
        batches = Batches(size=2, within=0.01)
        for number in range(3):
            await batches.add(number)
        taken = [await batches.next()]
        await batches.add(3)
        await batches.add(4)
        return taken + [await batches.next() for _ in range(2)]

    assert asyncio.run(run()) == [[0, 1], [2, 3], [4]]


def test_reading_waits_while_two_batches_are_waiting() -> None:
    async def run() -> None:
        batches = Batches(size=2, within=0.01)
        for number in range(4):
            await batches.add(number)
        fifth = asyncio.ensure_future(batches.add(4))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not fifth.done()  # two whole batches wait: the stream is not read further
        assert await batches.next() == [0, 1]
        await asyncio.wait_for(fifth, 1)
        assert await batches.next() == [2, 3]
        assert await batches.next() == [4]

    asyncio.run(run())


def test_taking_a_batch_waits_for_the_first_event() -> None:
    async def run() -> None:
        batches = Batches(size=3, within=0.01)
        taking = asyncio.ensure_future(batches.next())
        await asyncio.sleep(0.05)
        assert not taking.done()
        await batches.add("only")
        assert await asyncio.wait_for(taking, 1) == ["only"]

    asyncio.run(run())


def test_the_window_counts_from_the_first_events_arrival_not_from_the_asking() -> None:
    """Events that arrived while the batch before was decided are taken at once when their
    window has passed; the worker does not wait a whole window again."""

    async def run() -> list[Any]:
        now = [0.0]
        batches = Batches(size=100, within=60, clock=lambda: now[0])
        await batches.add("came while the batch before was decided")
        now[0] = 61  # its window has passed meanwhile
        return await asyncio.wait_for(batches.next(), 5)  # not another 60 s

    assert asyncio.run(run()) == ["came while the batch before was decided"]


def test_a_partial_batch_still_waits_out_its_window() -> None:
    async def run() -> list[Any]:
        batches = Batches(size=2, within=60)
        await batches.add(1)
        taking = asyncio.ensure_future(batches.next())
        await asyncio.sleep(0.1)
        assert not taking.done()  # its window is not over: more may come
        await batches.add(2)  # and now the batch is whole
        return await asyncio.wait_for(taking, 2)

    assert asyncio.run(run()) == [1, 2]


def test_a_batch_counts_messages_and_takes_whole_events() -> None:
    """A record batch is one event of several messages: a batch takes whole events up to `size`
    messages, and at least one however large."""

    async def run() -> list[list[str]]:
        batches = Batches(size=10, within=60)
        for name, messages in (("a", 4), ("b", 5), ("c", 3), ("huge", 25)):
            await batches.add(name, messages)
        return [await asyncio.wait_for(batches.next(), 5) for _ in range(3)]

    assert asyncio.run(run()) == [["a", "b"], ["c"], ["huge"]]
