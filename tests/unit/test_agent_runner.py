"""An exception that escapes a flow ends the process instead of reaching Faust's acknowledgement."""

from __future__ import annotations

import asyncio

import pytest

from hub.agents.runner import EXIT_UNHANDLED, process_or_exit
from hub.domain.events import Origin
from hub.pipeline.flow import Message

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

    monkeypatch.setattr("hub.agents.runner.os._exit", fake_exit)
    with pytest.raises(Exited):
        asyncio.run(process_or_exit(Failing(), MESSAGE))
    assert codes == [EXIT_UNHANDLED]


def test_a_flow_that_returns_is_passed_through() -> None:
    assert asyncio.run(process_or_exit(Working(), MESSAGE)) == "done"
