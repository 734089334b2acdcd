"""An issuer's signing keys (its JWKS), cached: Maskinporten's for the gateway's access tokens,
the identity provider's for the support page's ID tokens (`hub.support.oidc`).

The keys are cached by `SigningKeys` so that the issuer being slow or
down does not stop the hub: a request whose token names a key the hub knows never waits
for a read; the keys are read again in the background every `refresh_seconds`, and kept while
reads fail for up to `max_stale_seconds` after the last good read (then dropped: every token is
refused with 401 until a read succeeds). After a failed read the next waits 1 s, 2 s, 4 s, … up
to `backoff_max_seconds`. A token naming an unknown key makes the hub read at most once per
`unknown_kid_seconds` (a flood of made-up `kid`s must not become a flood of requests to
the issuer); there is never more than one read in flight, and the requests that need it wait
for that one read, at most its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import jwt

log = logging.getLogger(__name__)

READ_TIMEOUT_SECONDS = 5.0
FIRST_BACKOFF_SECONDS = 1.0


class SigningKeys:
    """The issuer's signing keys by `kid`, read from its JWKS: one read at a time, in the
    background while the keys are known (see the module's docstring)."""

    def __init__(
        self,
        jwks_url: str,
        *,
        name: str = "the issuer",
        timeout: float = READ_TIMEOUT_SECONDS,
        refresh_seconds: float = 3600.0,
        max_stale_seconds: float = 86400.0,
        unknown_kid_seconds: float = 60.0,
        backoff_max_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.jwks_url = jwks_url
        self.name = name  # whose keys, for the logs
        self.timeout = timeout
        self.refresh_seconds, self.max_stale_seconds = refresh_seconds, max_stale_seconds
        self.unknown_kid_seconds, self.backoff_max_seconds = unknown_kid_seconds, backoff_max_seconds
        self._clock = clock
        self._keys: dict[str, Any] = {}
        self._read_at: float | None = None  # when the keys were last read successfully
        self._started_at = -math.inf  # when the last read began
        self._failures = 0  # reads failed in a row
        self._not_before = -math.inf  # no read begins before this (the back-off)
        self._reading: asyncio.Task[None] | None = None
        self.reads = 0  # reads begun, for the tests and the logs

    def start(self) -> None:
        """Begin the first read now, so that the first requests find the keys there."""
        self._begin_read(self._clock())

    async def close(self) -> None:
        if self._reading is not None:
            self._reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reading

    async def key(self, kid: str) -> Any | None:
        """The public key with this `kid`, or None if the issuer has none such (or none can be
        trusted now)."""
        now = self._clock()
        keys = self._trusted(now)
        if kid in keys:
            if self._read_at is None or now - self._read_at >= self.refresh_seconds:
                self._begin_read(now)  # in the background: this request goes on with the key it has
            return keys[kid]
        if self._reading is None:
            # With keys known, an unknown kid is most likely made up: it may cause a read only
            # once per interval. With none known, every kid is unknown and the back-off alone
            # spaces the reads.
            if keys and now - self._started_at < self.unknown_kid_seconds:
                return None
            if not self._begin_read(now):
                return None
        reading = self._reading
        assert reading is not None
        # One bounded wait for the one read in flight, shared by every request that waits; the
        # shield keeps a request that gives up from cancelling the read for the others.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(reading), self.timeout)
        return self._trusted(self._clock()).get(kid)

    def _trusted(self, now: float) -> dict[str, Any]:
        """The keys, unless the last good read is older than the staleness bound: a key the issuer
        may have withdrawn long ago must not be trusted for ever."""
        if self._keys and self._read_at is not None and now - self._read_at > self.max_stale_seconds:
            log.warning(
                "%s's JWKS has not been read for %.0f s: its keys are no longer trusted, "
                "and every token is refused until a read succeeds",
                self.name,
                now - self._read_at,
            )
            self._keys = {}
        return self._keys

    def _begin_read(self, now: float) -> bool:
        """Start a read unless one is in flight or the back-off forbids it; whether one is in flight."""
        if self._reading is not None:
            return True
        if now < self._not_before:
            return False
        self._started_at = now
        self.reads += 1
        self._reading = asyncio.get_running_loop().create_task(self._read())
        return True

    async def _read(self) -> None:
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as session,
                session.get(self.jwks_url) as response,
            ):
                response.raise_for_status()
                document = await response.json(content_type=None)
            keys = {k.key_id: k.key for k in jwt.PyJWKSet.from_dict(document).keys if k.key_id}
            if not keys:
                raise ValueError("no key with a kid")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure is one failed read: the task is shared and must not die
            self._failures += 1
            pause = min(self.backoff_max_seconds, FIRST_BACKOFF_SECONDS * 2 ** min(self._failures - 1, 30))
            self._not_before = self._clock() + pause
            log.warning(
                "could not read %s's JWKS at %s (%s); %s, next read in %.0f s at the earliest",
                self.name,
                self.jwks_url,
                type(exc).__name__,
                "keeping the keys read before" if self._keys else "no key is known",
                pause,
            )
        else:
            self._keys, self._read_at = keys, self._clock()
            self._failures, self._not_before = 0, -math.inf
        finally:
            self._reading = None
