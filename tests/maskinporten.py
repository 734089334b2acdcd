"""Maskinporten clients for the tests: key pairs, registrations and assertions made to order."""

from __future__ import annotations

import functools
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from hub.dev.maskinporten_standin import RegisteredClient
from hub.maskinporten import JWT_BEARER, MaskinportenClient, generate_rsa_key, key_id, write_private_key

FOLKEREGISTER_SCOPE = "folkeregister:deling/offentligmedhjemmel"
KAFKA_SCOPE = "nir:kafka"
KAFKA_AUDIENCE = "nir-kafka"
GATEWAY_SCOPE = "nir:registrations"  # the gateway's defaults (NIR_GATEWAY_SCOPE, NIR_GATEWAY_AUDIENCE)
GATEWAY_AUDIENCE = "nir-gateway"
ORG_NUMBER = "974760673"


@functools.cache
def rsa_key(number: int) -> rsa.RSAPrivateKey:
    """The number-th test key: made once per test run (a 2048-bit key takes a while)."""
    return generate_rsa_key()


@dataclass(frozen=True)
class KeyedClient:
    client_id: str
    key: rsa.RSAPrivateKey
    key_file: Path

    @property
    def kid(self) -> str:
        return key_id(self.key.public_key())

    def registration(
        self,
        scopes: tuple[str, ...] = (FOLKEREGISTER_SCOPE, KAFKA_SCOPE, GATEWAY_SCOPE),
        audiences: tuple[str, ...] = (KAFKA_AUDIENCE, GATEWAY_AUDIENCE),
    ) -> RegisteredClient:
        return RegisteredClient(
            self.client_id,
            ORG_NUMBER,
            {self.kid: self.key.public_key()},
            frozenset(scopes),
            frozenset(audiences),
        )

    def maskinporten_client(
        self, issuer: str, scope: str = FOLKEREGISTER_SCOPE, **changes: Any
    ) -> MaskinportenClient:
        return MaskinportenClient(
            **{
                "token_url": issuer + "token",
                "issuer": issuer,
                "client_id": self.client_id,
                "key_file": self.key_file,
                "kid": self.kid,
                "scope": scope,
                **changes,
            }
        )


def keyed_client(directory: Path, client_id: str = "nir-hub", key_number: int = 0) -> KeyedClient:
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa_key(key_number)
    write_private_key(directory / f"{client_id}.key.pem", key)
    return KeyedClient(client_id, key, directory / f"{client_id}.key.pem")


def assertion(
    client: KeyedClient,
    issuer: str,
    *,
    now: float | None = None,
    key: rsa.RSAPrivateKey | None = None,
    header: dict[str, Any] | None = None,
    algorithm: str = "RS256",
    **claims: Any,
) -> str:
    """A grant's assertion as the client would sign it, with claims changed (None: left out)."""
    issued = int(time.time() if now is None else now)
    payload = {
        "aud": issuer,
        "iss": client.client_id,
        "scope": FOLKEREGISTER_SCOPE,
        "iat": issued,
        "exp": issued + 60,
        "jti": str(uuid.uuid4()),
        **claims,
    }
    signing_key: Any = key or client.key
    if algorithm.startswith("HS"):
        signing_key = "a shared secret that no registered client has, long enough for HS256"
    return jwt.encode(
        {k: v for k, v in payload.items() if v is not None},
        signing_key,
        algorithm=algorithm,
        headers={k: v for k, v in {"kid": client.kid, **(header or {})}.items() if v is not None},
    )


def grant_form(signed: str, grant_type: str = JWT_BEARER) -> dict[str, str]:
    return {"grant_type": grant_type, "assertion": signed}
