"""Stand-ins for the broker side in tests of the pipeline's decisions (never for the broker in
end-to-end tests)."""

from __future__ import annotations

from collections.abc import Sequence

from hub.errors import BrokerUnavailable
from hub.pipeline.deadletter import read_headers
from hub.pipeline.ports import Outgoing


class RecordingPublisher:
    """Records what would have been published; can be told to fail the next sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes, dict[str, str]]] = []
        self.failures_left = 0

    async def send_many(self, messages: Sequence[Outgoing]) -> None:
        for m in messages:
            if self.failures_left:
                self.failures_left -= 1
                raise BrokerUnavailable("broker hiccup")
            self.sent.append((m.topic, m.key, m.value, read_headers(m.headers)))

    def on(self, topic: str) -> list[tuple[str, bytes | None, bytes, dict[str, str]]]:
        return [s for s in self.sent if s[0] == topic]
