"""The outside world as the pipeline sees it: a publisher whose sends are confirmed."""

from __future__ import annotations

from typing import Protocol


class Publisher(Protocol):
    async def send(
        self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        """Publish and return only once the broker has confirmed the write.

        Raises `BrokerUnavailable` when the write could not be confirmed.
        """
        ...
