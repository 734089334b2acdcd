"""The outside world as the pipeline sees it: a publisher whose sends are confirmed, the
acknowledgement of a batch's messages to the broker (Faust's, behind `hub.agents.runner`), and the
register's unit of work as far as the registration flow and its checkpoint use it.

`UnitOfWork` is satisfied by the real one (`hub.register.unit_of_work.UnitOfWork`, over SQLAlchemy)
and by the tests' fake (`tests.fakes.FakeUnitOfWork`, in memory), both checked by mypy."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from hub.domain.events import Origin, Registration
from hub.domain.snapshot import Change, HeldEntry, Snapshot
from hub.domain.sources import SourceState
from hub.register.marks import Mark, NewMark
from hub.register.unit_of_work import Transaction


@dataclass(frozen=True)
class Outgoing:
    """A message the pipeline publishes: a receipt or a dead letter."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


class Publisher(Protocol):
    async def send_many(self, messages: Sequence[Outgoing]) -> None:
        """Publish all, in this order, and return only once the broker has confirmed every one.

        Raises `BrokerUnavailable` when one could not be confirmed; the caller then sends them
        all again (a receipt or dead letter may arrive twice, never out of order first).
        """
        ...


class Acknowledgement(Protocol):
    async def acknowledge(self) -> None:
        """Tell the broker the batch's messages are done: their offsets may now be committed.

        The last step of the checkpoint (`hub.pipeline.checkpoint`), and the only one."""
        ...


class RegistrationStore(Protocol):
    """The register as the registration flow reads and writes it (`uow.register`)."""

    def snapshot(self, events: Sequence[Registration]) -> Snapshot:
        """What the register knows of the persons and registrations `events` touch."""
        ...

    def revoked_sources(self) -> dict[str, SourceState]: ...

    def apply(self, changes: Iterable[Change]) -> None:
        """Write what the decisions changed."""
        ...

    def release(self, event_ids: Sequence[str]) -> None:
        """The held events whose answers are confirmed are held no more."""
        ...

    def held_to_try_again(self) -> list[HeldEntry]: ...

    def expired_held(self, held_before: dt.datetime) -> list[HeldEntry]: ...


class Marks(Protocol):
    """Where the crash guard keeps its marks of unfinished work (`uow.marks`)."""

    def marks_of(self, flow: str, topics: Sequence[str]) -> list[Mark]: ...

    def mark(self, flow: str, marks: Sequence[NewMark], now: dt.datetime) -> list[int]: ...

    def remove(self, ids: Sequence[int]) -> None: ...

    def begin_one(self, flow: str, origin: Origin, now: dt.datetime) -> int: ...

    def finish_one(self, flow: str, origin: Origin) -> None: ...


class UnitOfWork(Transaction, Protocol):
    """What the registration flow and its checkpoint need of one transaction on the register."""

    @property
    def register(self) -> RegistrationStore: ...

    @property
    def marks(self) -> Marks: ...
