"""The outside world as the pipeline sees it: a publisher whose sends are confirmed, and the
acknowledgement of a batch's messages to the broker (Faust's, behind `hub.agents.runner`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


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
