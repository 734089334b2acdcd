"""The gateway under test: a `hub gateway` process over TLS in front of a hub harness, two
Maskinporten sources, tokens made to order, and a small HTTP client."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import ipaddress
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from hub.config import Settings
from hub.dev.localrun import LocalBroker, WorkerProcess, free_port
from hub.dev.maskinporten_standin import MaskinportenStandIn, serving
from hub.maskinporten import MaskinportenTokens
from tests.conftest import make_settings
from tests.harness import HubHarness, wait_until
from tests.maskinporten import GATEWAY_AUDIENCE, GATEWAY_SCOPE, KeyedClient, keyed_client, rsa_key

SOURCE_A, SOURCE_B = "bydel-fagsystem", "vestland-fagsystem"
CLIENT_A, CLIENT_B = "7d3e1b7a-0c55-4f0e-9a55-6c2f5b8f0a11", "c1f0a2b4-9d77-4e3c-8f21-0b6a9e4d2c33"
REGISTRY = f"""
[sources.{SOURCE_A}]
name = "Source A, over the gateway"
municipalities = ["0301"]
authentication = "maskinporten"
principal = "{CLIENT_A}"

[sources.{SOURCE_B}]
name = "Source B, over the gateway"
municipalities = ["4601"]
authentication = "maskinporten"
principal = "{CLIENT_B}"
"""


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as a gateway's TLS would have."""
    key = rsa_key(20)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "gateway.crt", directory / "gateway.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any

    def __repr__(self) -> str:
        return f"Answer({self.status}, {json.dumps(self.body)[:2000]})"


@dataclass
class GatewayUnderTest:
    settings: Settings
    log_path: Path
    stand_in: MaskinportenStandIn
    issuer: str
    clients: dict[str, KeyedClient]
    process: WorkerProcess | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.settings.gateway_port}"

    @property
    def operations_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.gateway_metrics_port}"

    def start(self, timeout: float = 60.0) -> GatewayUnderTest:
        self.process = WorkerProcess(self.settings, self.log_path, command=("gateway",)).start()
        wait_until(self.ready, timeout=timeout, what=f"the gateway to be ready:\n{self.log()[-3000:]}")
        return self

    def ready(self) -> bool:
        assert self.process is not None
        if not self.process.running:
            raise AssertionError(f"the gateway stopped:\n{self.log()[-3000:]}")
        try:
            with urllib.request.urlopen(self.operations_url + "/health/ready", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.running:
            self.process.stop()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # --- tokens ----------------------------------------------------------------------------

    def granted_token(self, source: str) -> str:
        """A token from the stand-in's real JWT-bearer grant, as a fagsystem gets one."""
        client = self.clients[source].maskinporten_client(
            self.issuer, scope=GATEWAY_SCOPE, resource=GATEWAY_AUDIENCE
        )
        return asyncio.run(MaskinportenTokens(client).token())

    def token(self, source: str, *, key: Any = None, **claims: Any) -> str:
        """A token as the stand-in would sign it, with `claims` changed."""
        now = int(time.time())
        body = {
            "iss": self.issuer,
            "aud": GATEWAY_AUDIENCE,
            "client_id": self.clients[source].client_id,
            "consumer": {"authority": "iso6523-actorid-upis", "ID": "0192:974760673"},
            "scope": GATEWAY_SCOPE,
            "iat": now,
            "exp": now + 120,
            "jti": str(uuid.uuid4()),
        } | claims
        return jwt.encode(
            {k: v for k, v in body.items() if v is not None},
            key or self.stand_in.key,
            algorithm="RS256",
            headers={"kid": self.stand_in.kid},
        )

    # --- calls -----------------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: Any = None,
        raw: bytes | None = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> Answer:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", content_type)
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        context = ssl.create_default_context(cafile=self.settings.gateway_tls_cert_file)
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
                return _answer(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as error:
            return _answer(error.code, dict(error.headers), error.read())

    def receipts(self, token: str, after: str | None = None, **query: Any) -> Answer:
        parameters = {**({"after": after} if after else {}), **query}
        suffix = "?" + urllib.parse.urlencode(parameters) if parameters else ""
        return self.call("GET", "/v1/receipts" + suffix, token=token)

    def all_receipts(self, token: str, count: int, timeout: float = 90.0) -> list[dict[str, Any]]:
        """The first `count` receipts of the token's source, read by cursor."""
        found: list[dict[str, Any]] = []
        cursor = None
        deadline = time.monotonic() + timeout
        while len(found) < count:
            assert time.monotonic() < deadline, (
                f"only {len(found)} of {count} receipts:\n{self.log()[-3000:]}"
            )
            answer = self.receipts(token, cursor, wait=5)
            assert answer.status == 200, answer
            found += answer.body["receipts"]
            cursor = answer.body["cursor"]
        return found


def _answer(status: int, headers: dict[str, str], body: bytes) -> Answer:
    try:
        parsed: Any = json.loads(body) if body else None
    except ValueError:
        parsed = body
    return Answer(status, headers, parsed)


@contextmanager
def gateway_harness(broker: LocalBroker, database_url: str, tmp_path: Path) -> Iterator[HubHarness]:
    """A hub (its topics, ACLs and workers) whose source registry is `REGISTRY`."""
    registry = tmp_path / "sources.toml"
    registry.write_text(REGISTRY)
    settings = dataclasses.replace(make_settings(broker, database_url, tmp_path), sources_file=str(registry))
    with HubHarness(settings, tmp_path) as harness:
        yield harness


@contextmanager
def gateway_under_test(base: Settings, tmp_path: Path, **changes: Any) -> Iterator[GatewayUnderTest]:
    """A gateway (not started) for `base`'s hub, with its own Maskinporten stand-in and clients
    for two sources; `base` should use `REGISTRY` as its source registry."""
    clients = {
        SOURCE_A: keyed_client(tmp_path / "client-a", CLIENT_A, key_number=11),
        SOURCE_B: keyed_client(tmp_path / "client-b", CLIENT_B, key_number=12),
    }
    registrations = {
        c.client_id: c.registration(scopes=(GATEWAY_SCOPE,), audiences=(GATEWAY_AUDIENCE,))
        for c in clients.values()
    }
    stand_in = MaskinportenStandIn(rsa_key(13), registrations)
    with serving(stand_in) as issuer:
        cert_file, key_file = self_signed_certificate(tmp_path)
        settings = dataclasses.replace(
            base,
            maskinporten_issuer=issuer,
            gateway_jwks_url=issuer + "jwks",
            gateway_port=free_port(),
            gateway_metrics_port=free_port(),
            gateway_tls_cert_file=str(cert_file),
            gateway_tls_key_file=str(key_file),
            **changes,
        )
        under_test = GatewayUnderTest(settings, tmp_path / "gateway.log", stand_in, issuer, clients)
        try:
            yield under_test
        finally:
            under_test.stop()
