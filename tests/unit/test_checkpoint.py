"""The checkpoint (`hub.pipeline.checkpoint.Checkpoint`) on the fake unit of work: a batch from its
mark to its acknowledgement, and a worker that keeps dying on one message, without a database.
The same on the register and the real broker: tests/integration/test_hostile_pipeline.py and
tests/e2e/test_hostile_input.py."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from hub.domain.events import Origin
from hub.domain.transfer import Message
from hub.pipeline import checkpoint
from hub.pipeline.checkpoint import Checkpoint
from hub.pipeline.flow import Transactions
from hub.pipeline.ports import UnitOfWork
from tests.fakes import FakeMarks, FakeRegister, FakeUnitOfWork

NOW = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)
TOPIC = "nir.source.oslo-fagsystem.registrations"


class _Died(Exception):
    """The process ended (`os._exit`), as the checkpoint ends it on an unforeseen failure."""


class _Flow:
    """Records what it is given; raises on the message whose value is b"poison" (a fault the
    flow did not foresee), as a worker that dies on it would."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.set_aside_: list[tuple[int, int]] = []

    async def process_batch(self, messages: list[Message]) -> list[None]:
        if any(m.value == b"poison" for m in messages):
            raise RuntimeError("a fault the flow did not foresee")
        self.batches.append([m.origin.offset for m in messages])
        return [None for _ in messages]

    async def set_aside(self, message: Message, times: int) -> None:
        self.set_aside_.append((message.origin.offset, times))


class _Acknowledgement:
    def __init__(self) -> None:
        self.acknowledged = 0

    async def acknowledge(self) -> None:
        self.acknowledged += 1


def _checkpoint(flow: _Flow, marks: FakeMarks, crash_attempts: int = 3) -> Checkpoint:
    store = FakeRegister()

    def units() -> UnitOfWork:
        return FakeUnitOfWork(store, marks)

    return Checkpoint(
        "registrations",
        flow,
        Transactions(units, initial_delay=0.01, max_delay=0.01),
        clock=lambda: NOW,
        crash_attempts=crash_attempts,
    )


def _messages(*offsets: int, poison: int | None = None) -> list[Message]:
    return [Message(Origin(TOPIC, 0, o), b"k", b"poison" if o == poison else b"ok") for o in offsets]


@pytest.fixture
def exits(monkeypatch: pytest.MonkeyPatch) -> None:
    def exit_(code: int) -> None:
        raise _Died(code)

    monkeypatch.setattr(checkpoint.os, "_exit", exit_)
    monkeypatch.setattr(checkpoint.logging, "shutdown", lambda: None)


def test_a_batch_is_marked_worked_through_together_unmarked_and_then_acknowledged() -> None:
    flow, marks, acknowledgement = _Flow(), FakeMarks(), _Acknowledgement()
    asyncio.run(_checkpoint(flow, marks).run(_messages(1, 2, 3), acknowledgement))
    assert flow.batches == [[1, 2, 3]]
    assert marks.rows == {}  # unmarked once done
    assert acknowledgement.acknowledged == 1


@pytest.mark.usefixtures("exits")
def test_a_message_the_worker_keeps_dying_on_is_set_aside_after_the_limit_and_the_rest_go_on() -> None:
    flow, marks = _Flow(), FakeMarks()
    deaths, acknowledgement = 0, _Acknowledgement()
    for _ in range(10):  # each pass is a restarted worker given the same messages again
        try:
            asyncio.run(_checkpoint(flow, marks).run(_messages(1, 2, 3, poison=2), acknowledgement))
            break
        except _Died:
            deaths += 1
            assert acknowledgement.acknowledged == 0  # nothing acknowledged by a worker that died
    # Once in the batch, then three times alone (crash_attempts=3): then set aside, unread.
    assert deaths == 4
    assert flow.set_aside_ == [(2, 3)]
    assert [1] in flow.batches and [3] in flow.batches  # its neighbours, one at a time
    assert marks.rows == {} and acknowledgement.acknowledged == 1
