"""The outside world as the pipeline sees it: a publisher whose sends are confirmed."""

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
