"""The gateway in-process without a broker: its own handling code, a producer that confirms every
event at once, a JWKS endpoint the test controls, and tokens made to order."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import jwt
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric import rsa

from hub.config import Settings
from hub.gateway.server import Gateway
from hub.gateway.tokens import SigningKeys
from hub.maskinporten import key_id
from hub.schemas.codec import catalog
from hub.sources import SourceRegistry
from tests.maskinporten import GATEWAY_AUDIENCE, GATEWAY_SCOPE, rsa_key

SOURCE, CLIENT = "bydel-fagsystem", "7d3e1b7a-0c55-4f0e-9a55-6c2f5b8f0a11"
OTHER_SOURCE, OTHER_CLIENT = "vestland-fagsystem", "c1f0a2b4-9d77-4e3c-8f21-0b6a9e4d2c33"
ISSUER = "https://maskinporten.example/"
REGISTRY = {
    "sources": {
        SOURCE: {"municipalities": ["0301"], "authentication": "maskinporten", "principal": CLIENT},
        OTHER_SOURCE: {
            "municipalities": ["4601"],
            "authentication": "maskinporten",
            "principal": OTHER_CLIENT,
        },
    }
}


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class JwksEndpoint:
    """Maskinporten's JWKS as a test wants it: serving, failing (500) or hanging until released."""

    def __init__(self, *keys: rsa.RSAPrivateKey) -> None:
        self.keys = list(keys)
        self.mode = "serve"
        self.reads = 0
        self.entered = asyncio.Event()  # set when a read arrives
        self.release = asyncio.Event()  # a hanging read answers once this is set
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.reads += 1
        self.entered.set()
        if self.mode == "hang":
            await self.release.wait()
        if self.mode == "fail":
            return web.Response(status=500)
        return web.json_response({"keys": [jwk(k) for k in self.keys]})

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[JwksEndpoint]:
        app = web.Application()
        app.router.add_get("/jwks", self.handle)
        server = TestServer(app)
        await server.start_server()
        self.url = str(server.make_url("/jwks"))
        try:
            yield self
        finally:
            self.release.set()
            await server.close()


def kid(key: rsa.RSAPrivateKey) -> str:
    return key_id(key.public_key())


def jwk(key: rsa.RSAPrivateKey) -> dict[str, Any]:
    public = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**public, "kid": kid(key), "use": "sig", "alg": "RS256"}


def token(key: rsa.RSAPrivateKey, client_id: str = CLIENT, key_id: str | None = None) -> str:
    now = int(time.time())
    return jwt.encode(
        {
            "iss": ISSUER,
            "aud": GATEWAY_AUDIENCE,
            "client_id": client_id,
            "scope": GATEWAY_SCOPE,
            "iat": now,
            "exp": now + 120,
            "jti": str(uuid.uuid4()),
        },
        key,
        algorithm="RS256",
        headers={"kid": key_id or kid(key)},
    )


def settings(**changes: Any) -> Settings:
    """Settings a gateway is built from without a broker (it is never started)."""
    base = Settings()
    return dataclasses.replace(
        base,
        kafka_ca_file="",
        kafka_username=base.kafka_gateway_user,
        kafka_password="not used: nothing connects",
        maskinporten_issuer=ISSUER,
        **changes,
    )


class ConfirmingProducer:
    """Confirms every event at once, at the next offset of its topic."""

    def __init__(self) -> None:
        self.offsets: dict[str, itertools.count[int]] = {}

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        offset = next(self.offsets.setdefault(topic, itertools.count()))
        future.set_result(SimpleNamespace(topic=topic, partition=0, offset=offset))
        return future


def offline_gateway(
    settings: Settings, keys: SigningKeys | None = None, *, caught_up: bool = True
) -> Gateway:
    """A gateway whose broker is `ConfirmingProducer` and whose topics are read (or not yet)."""
    gateway = Gateway(settings, SourceRegistry.from_mapping(REGISTRY), catalog())
    gateway.producer = ConfirmingProducer()  # type: ignore[assignment]
    if keys is not None:
        gateway.keys = gateway.verifier.keys = keys
    if caught_up:
        gateway.receipts.mark_caught_up()
        gateway.states.mark_caught_up()
    return gateway


@asynccontextmanager
async def client_of(gateway: Gateway) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(gateway.app())) as client:
        yield client


def signing_key(number: int = 13) -> rsa.RSAPrivateKey:
    return rsa_key(number)
