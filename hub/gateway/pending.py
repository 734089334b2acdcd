"""The events this gateway sent whose receipt has not come yet, remembered for a while.

They let a retry be answered `already-received` (and `GET /v1/events/{id}` `PENDING`) before the
worker has answered. Remembering is a convenience, not a guarantee: the register keys on the
event id, so an event forgotten here and posted again is sent again and written once (receipt
DUPLICATE). That is why the memory may be bounded: an entry goes when the event's receipt comes,
when it is older than `max_age` seconds, or, the oldest first, when more than `max_entries` are
remembered.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

Key = tuple[str, str]  # (source id, event id)


class PendingEvents:
    """(source, event id) -> where the broker put the event, in the order they were sent."""

    def __init__(self, max_age: float, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age, self.max_entries, self.clock = max_age, max_entries, clock
        self._sent: OrderedDict[Key, tuple[float, dict[str, Any]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sent)

    def add(self, key: Key, place: dict[str, Any]) -> None:
        now = self.clock()
        self._sent[key] = (now, place)
        self._sent.move_to_end(key)
        self._prune(now)

    def get(self, key: Key) -> dict[str, Any] | None:
        self._prune(self.clock())
        found = self._sent.get(key)
        return found[1] if found is not None else None

    def pop(self, key: Key) -> None:
        self._sent.pop(key, None)

    def _prune(self, now: float) -> None:
        # Entries are in the order they were sent, so the expired ones are at the front.
        while self._sent and (
            len(self._sent) > self.max_entries or now - next(iter(self._sent.values()))[0] > self.max_age
        ):
            self._sent.popitem(last=False)
