"""Who is calling: a Maskinporten access token verified against the issuer's JWKS, and the
source in the registry its client stands for.

A token is accepted only if it is a JWT signed RS256 by a key in the issuer's JWKS (`kid`), with
the configured issuer, the gateway's audience (the `resource` the client asked for), a time that
has not passed, and the gateway's scope. Its `client_id` is then looked up as the broker does it:
a source with `authentication = "maskinporten"` whose principal is that client id. The
organisation number (`consumer`) is not enough on its own: one vendor runs installations for
several municipalities, each a source of its own.

The issuer's keys are cached by `hub.jwks.SigningKeys` (see there how).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import jwt

from hub import jwks
from hub.config import Settings
from hub.domain.sources import Source
from hub.gateway.problems import Problem, unauthorized
from hub.sources import SourceRegistry

log = logging.getLogger(__name__)

CLOCK_SKEW_SECONDS = 10
MAX_TOKEN_CHARACTERS = 8192  # a Maskinporten token is about 1 KB


@dataclass(frozen=True)
class Caller:
    """A verified caller: its source, and the client and organisation the token names."""

    source: Source
    client_id: str
    organisation: str | None


class SigningKeys(jwks.SigningKeys):
    """Maskinporten's keys, read and kept as the gateway's settings say."""

    @classmethod
    def from_settings(cls, settings: Settings) -> SigningKeys:
        return cls(
            settings.gateway_jwks_url,
            name="Maskinporten",
            refresh_seconds=settings.gateway_jwks_refresh_seconds,
            max_stale_seconds=settings.gateway_jwks_max_stale_seconds,
            unknown_kid_seconds=settings.gateway_jwks_unknown_kid_seconds,
            backoff_max_seconds=settings.gateway_jwks_backoff_max_seconds,
        )


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
            # Also when no key can be trusted now (Maskinporten unreachable past the staleness
            # bound): the token cannot be verified, which is what 401 says.
            raise unauthorized(
                "the token is not signed by a key of the issuer that the gateway can verify now"
            )
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
