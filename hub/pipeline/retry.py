"""Retrying transient failures with capped exponential backoff.

A database or broker outage blocks the partition until it is over: retrying forever is right,
because dead-lettering an event for an outage would turn a pause into a support case. A write
conflict is retried only a few times (see `hub.errors.WriteConflict`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from hub.errors import HubError, WriteConflict

T = TypeVar("T")
log = logging.getLogger(__name__)

MAX_CONFLICT_ATTEMPTS = 5


async def retry_transient(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    initial_delay: float,
    max_delay: float,
) -> T:
    """Run `operation` until it succeeds or fails with a non-retriable error."""
    delay = initial_delay
    attempt = 0
    while True:
        attempt += 1
        try:
            return await operation()
        except HubError as exc:
            if not exc.retriable:
                raise
            if isinstance(exc, WriteConflict) and attempt >= MAX_CONFLICT_ATTEMPTS:
                raise
            log.warning("%s failed (%s, attempt %d); retrying in %.1fs", what, exc.code, attempt, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)
