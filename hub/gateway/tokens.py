"""Who is calling: a Maskinporten access token verified against the issuer's JWKS, and the
source in the registry its client stands for.

A token is accepted only if it is a JWT signed RS256 by a key in the issuer's JWKS (`kid`), with
the configured issuer, the gateway's audience (the `resource` the client asked for), a time that
has not passed, and the gateway's scope. Its `client_id` is then looked up as the broker does it:
a source with `authentication = "maskinporten"` whose principal is that client id. The
organisation number (`consumer`) is not enough on its own: one vendor runs installations for
several municipalities, each a source of its own.

The JWKS is read when a token names a key not seen before, at most once per
`REFRESH_PAUSE_SECONDS` (a flood of made-up `kid`s must not become a flood of requests to
Maskinporten), and every `JWKS_MAX_AGE_SECONDS` to follow Maskinporten's key rotation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt

from hub.gateway.problems import Problem, unauthorized
from hub.sources import Source, SourceRegistry

log = logging.getLogger(__name__)

REFRESH_PAUSE_SECONDS = 30.0
JWKS_MAX_AGE_SECONDS = 3600.0
CLOCK_SKEW_SECONDS = 10
MAX_TOKEN_CHARACTERS = 8192  # a Maskinporten token is about 1 KB


@dataclass(frozen=True)
class Caller:
    """A verified caller: its source, and the client and organisation the token names."""

    source: Source
    client_id: str
    organisation: str | None


class SigningKeys:
    """The issuer's signing keys, by `kid`, read from its JWKS when needed."""

    def __init__(self, jwks_url: str, *, timeout: float = 5.0) -> None:
        self.jwks_url = jwks_url
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._keys: dict[str, Any] = {}
        self._read_at = -JWKS_MAX_AGE_SECONDS
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> Any | None:
        """The public key with this `kid`, or None if the issuer has none such."""
        stale = time.monotonic() - self._read_at > JWKS_MAX_AGE_SECONDS
        if stale or (kid not in self._keys and time.monotonic() - self._read_at > REFRESH_PAUSE_SECONDS):
            async with self._lock:  # concurrent callers share one read
                if time.monotonic() - self._read_at > REFRESH_PAUSE_SECONDS or not self._keys:
                    await self._read()
        return self._keys.get(kid)

    async def _read(self) -> None:
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as session,
                session.get(self.jwks_url) as response,
            ):
                response.raise_for_status()
                document = await response.json(content_type=None)
            keys = jwt.PyJWKSet.from_dict(document).keys
        except (aiohttp.ClientError, TimeoutError, ValueError, jwt.PyJWTError) as exc:
            log.warning("could not read Maskinporten's JWKS at %s: %s", self.jwks_url, type(exc).__name__)
            if not self._keys:
                raise Problem(
                    503,
                    "issuer-unavailable",
                    "The token issuer's keys cannot be read now",
                    "try again shortly",
                    headers={"Retry-After": "5"},
                ) from None
            return  # keep the keys already known
        self._keys = {k.key_id: k.key for k in keys if k.key_id}
        self._read_at = time.monotonic()


class TokenVerifier:
    def __init__(
        self, keys: SigningKeys, registry: SourceRegistry, *, issuer: str, audience: str, scope: str
    ) -> None:
        self.keys = keys
        self.issuer, self.audience, self.scope = issuer, audience, scope
        self._clients = {s.user: s for s in registry if s.authentication == "maskinporten"}

    async def caller(self, authorization: str | None) -> Caller:
        """The caller an `Authorization: Bearer` header proves, or a 401/403 `Problem`."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized(
                "send a Maskinporten access token as Authorization: Bearer <token>", error="invalid_request"
            )
        claims = await self.claims(token.strip())
        client_id = claims["client_id"]
        source = self._clients.get(client_id) if isinstance(client_id, str) else None
        if source is None:
            raise Problem(
                403,
                "unknown-client",
                "The token's client is not a registered source",
                "ask IMDi to register this Maskinporten client in the hub's source registry",
            )
        consumer = claims.get("consumer")
        organisation = consumer.get("ID") if isinstance(consumer, dict) else None
        return Caller(source, client_id, organisation if isinstance(organisation, str) else None)

    async def claims(self, token: str) -> dict[str, Any]:
        if len(token) > MAX_TOKEN_CHARACTERS:
            raise unauthorized("the token is too long to be a Maskinporten access token")
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, ValueError, TypeError, RecursionError):
            raise unauthorized("the token is not a signed JWT") from None
        kid = header.get("kid")
        if header.get("alg") != "RS256" or not isinstance(kid, str) or len(kid) > 200:
            raise unauthorized("the token must be signed RS256 with a key of the issuer (header kid)")
        key = await self.keys.key(kid)
        if key is None:
            raise unauthorized("the token is not signed by a key of the issuer")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                issuer=self.issuer,
                audience=self.audience,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["iss", "aud", "exp", "iat", "client_id", "scope"]},
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("the token has expired") from None
        except jwt.InvalidSignatureError:
            raise unauthorized("the token's signature does not verify") from None
        except jwt.InvalidIssuerError:
            raise unauthorized("the token is from another issuer") from None
        except jwt.InvalidAudienceError:
            raise unauthorized(
                f"the token is not for this API: ask Maskinporten for resource {self.audience}"
            ) from None
        except jwt.MissingRequiredClaimError as exc:
            raise unauthorized(f"the token has no {exc.claim} claim") from None
        except (jwt.PyJWTError, ValueError, TypeError, RecursionError):
            raise unauthorized("the token is not valid") from None
        scopes = claims["scope"].split() if isinstance(claims["scope"], str) else []
        if self.scope not in scopes:
            raise unauthorized(
                f"the token does not grant the scope {self.scope}",
                error="insufficient_scope",
                scope=self.scope,
            )
        return claims
