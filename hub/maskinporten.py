"""Maskinporten access tokens for the hub's own clients: the JWT-bearer grant, a cache that
renews before expiry, and the adapter aiokafka's SASL/OAUTHBEARER takes.

- **The grant** (RFC 7523, as Maskinporten does it): an assertion signed RS256 with the client's
  private key, `kid` in its header, `aud` = Maskinporten's issuer URL, `iss` = the client id,
  the scopes and optionally the `resource` (the API the token is for), POSTed to `/token`.
- **The cache.** One token per `MaskinportenTokens`, renewed when less than a fifth of its
  lifetime (at most 30 s) is left; concurrent callers share one grant in flight. A renewal that
  fails because Maskinporten is unreachable hands out the old token while it is still valid,
  trying again every 5 s.
- **Keys.** `generate_rsa_key`, `write_private_key` (0600, never overwritten) and `key_id` (the
  RFC 7638 thumbprint) are shared with the stand-in (`hub.dev.maskinporten_standin`).

Tokens, assertions and private keys never appear in a log line or an error message.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import jwt
from aiokafka.abc import AbstractTokenProvider
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from hub.errors import ConfigurationError, HubError

if TYPE_CHECKING:
    from hub.config import Settings

log = logging.getLogger(__name__)

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Maskinporten refuses an assertion that lives longer than 120 s; a short one is enough.
ASSERTION_SECONDS = 60
RSA_KEY_BITS = 2048
# After a failed renewal, the still-valid token is handed out this long before the next try,
# so callers do not send Maskinporten one grant each while it is down.
RENEWAL_PAUSE_SECONDS = 5.0


class MaskinportenError(HubError):
    """Maskinporten gave no access token."""

    code = "NIR-MASKINPORTEN"


class MaskinportenRefused(MaskinportenError):
    """Maskinporten refused the grant: the client's registration, key, scope or resource is wrong,
    so the same grant would be refused again."""

    code = "NIR-MASKINPORTEN-REFUSED"


class MaskinportenUnavailable(MaskinportenError):
    """Maskinporten could not be reached or failed (timeout, broken connection, HTTP 5xx)."""

    code = "NIR-MASKINPORTEN-UNAVAILABLE"
    retriable = True


# --- keys ------------------------------------------------------------------------------------


def generate_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)


def private_key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_key_pem(key: rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def write_private_key(path: Path, key: rsa.RSAPrivateKey) -> bool:
    """Write the key readable by its owner only. False if a key is there already: it is kept,
    since tokens or registrations may depend on it. The key appears whole or not at all."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(private_key_pem(key))
        os.link(temporary, path)  # fails if the path exists, unlike a rename
        return True
    except FileExistsError:
        return False
    finally:
        temporary.unlink()


def read_private_key(path: Path) -> rsa.RSAPrivateKey:
    """An unencrypted PEM RSA private key; the error names the file, never its content."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the private key file {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ConfigurationError(f"{path} is not an unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < RSA_KEY_BITS:
        raise ConfigurationError(f"{path} is not an RSA private key of at least {RSA_KEY_BITS} bits")
    return key


def read_public_key(pem: bytes, where: str) -> rsa.RSAPublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise ConfigurationError(f"{where} is not a PEM public key") from None
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < RSA_KEY_BITS:
        raise ConfigurationError(f"{where} is not an RSA public key of at least {RSA_KEY_BITS} bits")
    return key


def key_id(key: rsa.RSAPublicKey) -> str:
    """The key's RFC 7638 JWK thumbprint: the same key always gets the same `kid`."""
    numbers = key.public_numbers()

    def b64(number: int) -> str:
        raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    canonical = json.dumps({"e": b64(numbers.e), "kty": "RSA", "n": b64(numbers.n)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


# --- the grant -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MaskinportenClient:
    """Who the hub is at Maskinporten, and what it asks for."""

    token_url: str  # https://maskinporten.no/token
    issuer: str  # Maskinporten's issuer URL, the assertion's `aud`: https://maskinporten.no/
    client_id: str
    key_file: Path  # the client's RSA private key (PEM); its public key is registered with `kid`
    kid: str
    scope: str  # space-separated
    resource: str | None = None  # the audience of the access token, for APIs that want one


def client_from_settings(settings: Settings, scope: str, resource: str | None = None) -> MaskinportenClient:
    """The hub's Maskinporten client (`NIR_MASKINPORTEN_*`) asking for `scope`."""
    missing = [
        name
        for name, value in (
            ("NIR_MASKINPORTEN_CLIENT_ID", settings.maskinporten_client_id),
            ("NIR_MASKINPORTEN_KEY_FILE", settings.maskinporten_key_file),
            ("NIR_MASKINPORTEN_KID", settings.maskinporten_kid),
        )
        if not value
    ]
    if missing:
        raise ConfigurationError(f"Maskinporten needs {', '.join(missing)}")
    return MaskinportenClient(
        token_url=settings.maskinporten_token_url,
        issuer=settings.maskinporten_issuer,
        client_id=settings.maskinporten_client_id,
        key_file=Path(settings.maskinporten_key_file),
        kid=settings.maskinporten_kid,
        scope=scope,
        resource=resource,
    )


def client_assertion(client: MaskinportenClient, key: rsa.RSAPrivateKey, now: float) -> str:
    """The JWT grant: the client proves who it is by signing this with its private key."""
    issued = int(now)
    claims: dict[str, Any] = {
        "aud": client.issuer,
        "iss": client.client_id,
        "scope": client.scope,
        "iat": issued,
        "exp": issued + ASSERTION_SECONDS,
        "jti": str(uuid.uuid4()),  # Maskinporten takes each assertion once
    }
    if client.resource:
        claims["resource"] = client.resource
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": client.kid})


@dataclass(frozen=True)
class AccessToken:
    value: str
    expires_at: float  # by the hub's clock: when the grant was sent, plus `expires_in`
    renew_at: float

    def __repr__(self) -> str:  # a token must not reach a log through a repr
        return f"AccessToken(expires_at={self.expires_at:.0f})"


def renewal_margin(lifetime: float) -> float:
    """How long before expiry a token is renewed: a fifth of its lifetime, at most 30 s. Short
    tokens (the stand-in's, a test's) are renewed in proportion; long ones not needlessly early."""
    return min(0.2 * lifetime, 30.0)


class MaskinportenTokens:
    """Access tokens for one client and scope, granted when needed and renewed before expiry.
    Used from one event loop (the grant in flight is that loop's future)."""

    def __init__(
        self,
        client: MaskinportenClient,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.clock = clock
        self.attempts = 0  # how many grants were sent
        self.grants = 0  # how many were answered with a token
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._owns_session = session is None
        self._key: rsa.RSAPrivateKey | None = None
        self._current: AccessToken | None = None
        self._in_flight: asyncio.Future[AccessToken] | None = None
        self._paused_until = 0.0

    @property
    def current(self) -> AccessToken | None:
        """The token last granted, if any (its `repr` does not show it)."""
        return self._current

    async def token(self) -> str:
        """A valid access token, from the cache unless it is due for renewal."""
        current = self._current
        now = self.clock()
        if current is not None and now < max(current.renew_at, min(self._paused_until, current.expires_at)):
            return current.value
        if self._in_flight is None:
            self._in_flight = asyncio.ensure_future(self._grant())
            self._in_flight.add_done_callback(self._grant_done)
        try:
            # Shielded: a caller that gives up does not cancel the grant the others wait for.
            return (await asyncio.shield(self._in_flight)).value
        except MaskinportenUnavailable:
            if current is not None and self.clock() < current.expires_at:
                log.warning("Maskinporten could not renew the access token; the current one is still valid")
                self._paused_until = self.clock() + RENEWAL_PAUSE_SECONDS
                return current.value
            raise

    def _grant_done(self, grant: asyncio.Future[AccessToken]) -> None:
        self._in_flight = None
        if not grant.cancelled():
            grant.exception()  # retrieved here, so an unawaited failure is not logged by asyncio

    async def _grant(self) -> AccessToken:
        if self._key is None:
            self._key = await asyncio.to_thread(read_private_key, self.client.key_file)
        sent = self.clock()
        self.attempts += 1
        form = {"grant_type": JWT_BEARER, "assertion": client_assertion(self.client, self._key, sent)}
        # Without a session of the caller's, one per grant: a grant is rare (once per token
        # lifetime), and nothing is left open between grants or bound to an ended event loop.
        session = self._session or aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with session.post(
                self.client.token_url,
                data=form,
                headers={"Accept": "application/json"},
                timeout=self._timeout,
            ) as response:
                status = response.status
                body = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise MaskinportenUnavailable(
                f"Maskinporten's token endpoint {self.client.token_url} failed: {type(exc).__name__}"
            ) from None
        finally:
            if self._owns_session:
                await session.close()
        if status >= 500:
            raise MaskinportenUnavailable(f"Maskinporten answered the grant with HTTP {status}")
        answer = _json_object(body)
        if status != 200:
            raise MaskinportenRefused(
                f"Maskinporten refused the grant for client {self.client.client_id} (HTTP {status}): "
                f"{_oauth_error(answer)}"
            )
        value, expires_in = answer.get("access_token"), answer.get("expires_in")
        if not isinstance(value, str) or not value or isinstance(expires_in, bool):
            raise MaskinportenError("Maskinporten's answer to the grant has no access token")
        if not isinstance(expires_in, int) or expires_in <= 0:
            raise MaskinportenError("Maskinporten's answer to the grant has no valid expires_in")
        self.grants += 1
        # Counted from when the grant was sent: the token cannot be older than that.
        expires_at = sent + expires_in
        self._current = AccessToken(value, expires_at, expires_at - renewal_margin(expires_in))
        return self._current

    async def close(self) -> None:
        if self._in_flight is not None:
            self._in_flight.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._in_flight

    async def __aenter__(self) -> MaskinportenTokens:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def kafka_token_provider(settings: Settings) -> KafkaTokenProvider:
    """Tokens for this process's Kafka clients (NIR_KAFKA_SASL_MECHANISM=OAUTHBEARER): the
    hub's Maskinporten client asking for NIR_KAFKA_OAUTH_SCOPE, for the broker's audience."""
    client = client_from_settings(settings, settings.kafka_oauth_scope, settings.kafka_oauth_resource or None)
    return KafkaTokenProvider(MaskinportenTokens(client))


class KafkaTokenProvider(AbstractTokenProvider):
    """Maskinporten tokens for aiokafka: `AIOKafkaProducer(..., security_protocol="SASL_SSL",
    sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider=KafkaTokenProvider(tokens))`."""

    def __init__(self, tokens: MaskinportenTokens) -> None:
        self.tokens = tokens

    async def token(self) -> str:
        return await self.tokens.token()


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(body)
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _oauth_error(answer: dict[str, Any]) -> str:
    """The OAuth error and its description, shortened and printable: they go into a log line."""
    error, description = answer.get("error"), answer.get("error_description")
    text = str(error) if isinstance(error, str) else "no OAuth error in the answer"
    if isinstance(description, str) and description:
        text += f" ({description})"
    return "".join(c if c.isprintable() else "?" for c in text)[:300]
