"""Maskinporten over HTTP: the stand-in served on a free port, the hub's token provider against
it, the Folkeregister connector's `maskinporten` auth, and the `hub maskinporten` commands."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.abc import AbstractTokenProvider

from hub.config import Settings
from hub.connectors.folkeregister import FeedClient, token_provider
from hub.dev.folkeregister_standin import FolkeregisterStandIn
from hub.dev.folkeregister_standin import serving as folkeregister_serving
from hub.dev.localrun import WorkerProcess, free_port
from hub.dev.maskinporten_standin import MaskinportenStandIn, serving
from hub.errors import ConfigurationError
from hub.maskinporten import (
    JWT_BEARER,
    KafkaTokenProvider,
    MaskinportenRefused,
    MaskinportenTokens,
    MaskinportenUnavailable,
)
from tests.conftest import MaskinportenService
from tests.harness import hub_command, wait_until
from tests.maskinporten import (
    FOLKEREGISTER_SCOPE,
    KAFKA_AUDIENCE,
    KAFKA_SCOPE,
    ORG_NUMBER,
    assertion,
    keyed_client,
    rsa_key,
)

FORM = "application/x-www-form-urlencoded"


def post(url: str, body: bytes, content_type: str = FORM) -> tuple[int, dict[str, Any], str]:
    """POST and read the answer as (status, JSON, raw text), whatever the status."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read().decode()
    return status, json.loads(raw), raw


def grant_body(signed: str, grant_type: str = JWT_BEARER) -> bytes:
    return urllib.parse.urlencode({"grant_type": grant_type, "assertion": signed}).encode()


def test_a_granted_token_verifies_against_the_jwks_with_issuer_audience_client_and_scope(
    maskinporten: MaskinportenService,
) -> None:
    client = maskinporten.client
    status, answer, _ = post(
        maskinporten.token_url,
        grant_body(assertion(client, maskinporten.issuer, scope=KAFKA_SCOPE, resource=KAFKA_AUDIENCE)),
    )
    assert status == 200, answer
    assert (answer["token_type"], answer["expires_in"], answer["scope"]) == ("Bearer", 120, KAFKA_SCOPE)

    metadata = json.load(
        urllib.request.urlopen(maskinporten.issuer + ".well-known/oauth-authorization-server")
    )
    assert metadata["issuer"] == maskinporten.issuer
    assert metadata["token_endpoint"] == maskinporten.token_url
    signing_key = jwt.PyJWKClient(metadata["jwks_uri"]).get_signing_key_from_jwt(answer["access_token"])
    claims = jwt.decode(
        answer["access_token"],
        signing_key.key,
        algorithms=["RS256"],
        issuer=maskinporten.issuer,
        audience=KAFKA_AUDIENCE,
        options={"require": ["iss", "aud", "exp", "iat", "jti", "client_id", "scope"]},
    )
    assert claims["client_id"] == client.client_id
    assert claims["scope"] == KAFKA_SCOPE
    assert claims["consumer"] == {"authority": "iso6523-actorid-upis", "ID": f"0192:{ORG_NUMBER}"}
    assert claims["exp"] - claims["iat"] == 120 and abs(claims["iat"] - time.time()) < 5


@pytest.mark.parametrize(
    ("case", "changes", "status", "error"),
    [
        ("signed by another key", {"key": rsa_key(1)}, 400, "invalid_grant"),
        ("expired", {"now": time.time() - 300}, 400, "invalid_grant"),
        ("for another audience", {"aud": "https://maskinporten.no/"}, 400, "invalid_grant"),
        ("asking for a scope the client lacks", {"scope": "altinn:x"}, 400, "invalid_scope"),
        ("from an unknown client", {"iss": "someone-else"}, 401, "invalid_client"),
    ],
)
def test_a_grant_is_refused_over_http_with_an_oauth_error(
    maskinporten: MaskinportenService, case: str, changes: dict[str, Any], status: int, error: str
) -> None:
    signed = assertion(maskinporten.client, maskinporten.issuer, **changes)
    got_status, answer, raw = post(maskinporten.token_url, grant_body(signed))
    assert (got_status, answer["error"]) == (status, error), case
    assert answer["error_description"] and signed not in raw


def test_a_replayed_assertion_is_refused(maskinporten: MaskinportenService) -> None:
    body = grant_body(assertion(maskinporten.client, maskinporten.issuer))
    assert post(maskinporten.token_url, body)[0] == 200
    status, answer, _ = post(maskinporten.token_url, body)
    assert (status, answer["error"]) == (400, "invalid_grant")
    assert "used already" in answer["error_description"]


def _nested_jwt(depth: int) -> str:
    def part(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return ".".join((part(b'{"alg":"RS256","kid":"k"}'), part(b"[" * depth + b"]" * depth), part(b"sig")))


@pytest.mark.parametrize(
    ("case", "body", "content_type", "error"),
    [
        ("a garbage assertion", grant_body("garbage.garbage.garbage"), FORM, "invalid_grant"),
        ("a wrong grant type", grant_body("x", "client_credentials"), FORM, "unsupported_grant_type"),
        ("JSON instead of a form", b'{"grant_type": "x"}', "application/json", "invalid_request"),
        ("a body of 1 MB", b"a=" + b"x" * 1_000_000, FORM, "invalid_request"),
        ("bytes that are not UTF-8", b"grant_type=\xff\xfe", FORM, "invalid_request"),
        ("a field given twice", grant_body("x") + b"&assertion=y", FORM, "invalid_request"),
        ("a thousand fields", b"&".join(b"f%d=1" % i for i in range(1000)), FORM, "invalid_request"),
        ("no fields", b"", FORM, "invalid_request"),
        ("an assertion nested 5,000 deep", grant_body(_nested_jwt(5_000)), FORM, "invalid_grant"),
    ],
)
def test_hostile_input_gets_a_clean_400_without_a_trace(
    maskinporten: MaskinportenService, case: str, body: bytes, content_type: str, error: str
) -> None:
    status, answer, raw = post(maskinporten.token_url, body, content_type)
    assert (status, answer["error"]) == (400, error), case
    assert "Traceback" not in raw and "File " not in raw


def test_the_provider_grants_once_for_many_callers_and_reuses_the_token(
    maskinporten: MaskinportenService,
) -> None:
    async def run() -> list[str]:
        async with MaskinportenTokens(maskinporten.client.maskinporten_client(maskinporten.issuer)) as tokens:
            together = await asyncio.gather(*(tokens.token() for _ in range(10)))
            return [*together, await tokens.token()]

    tokens = asyncio.run(run())
    assert len(set(tokens)) == 1
    assert maskinporten.stand_in.granted == 1


def test_the_provider_renews_the_token_when_a_fifth_of_its_lifetime_is_left(
    maskinporten: MaskinportenService,
) -> None:
    maskinporten.stand_in.token_lifetime = 3

    async def run() -> tuple[str, str, str, float]:
        async with MaskinportenTokens(maskinporten.client.maskinporten_client(maskinporten.issuer)) as tokens:
            first = await tokens.token()
            await asyncio.sleep(1.0)
            still = await tokens.token()
            assert tokens.current is not None
            await asyncio.sleep(max(0.0, tokens.current.renew_at - time.time()) + 0.05)
            renewed = await tokens.token()
            return first, still, renewed, tokens.current.expires_at - time.time()

    first, still, renewed, left = asyncio.run(run())
    assert first == still != renewed
    assert maskinporten.stand_in.granted == 2
    assert 2.5 < left <= 3


def test_a_refused_grant_raises_an_error_that_says_why_without_the_assertion(
    maskinporten: MaskinportenService,
) -> None:
    client = maskinporten.client.maskinporten_client(maskinporten.issuer, scope="altinn:not-allowed")

    async def run() -> None:
        async with MaskinportenTokens(client) as tokens:
            await tokens.token()

    with pytest.raises(MaskinportenRefused) as refused:
        asyncio.run(run())
    assert "invalid_scope" in refused.value.message and not refused.value.retriable
    assert "eyJ" not in refused.value.message  # no JWT, neither the assertion nor a token


def test_an_unreachable_maskinporten_is_retriable_and_a_still_valid_token_is_used_meanwhile(
    tmp_path: Path,
) -> None:
    client = keyed_client(tmp_path)
    stand_in = MaskinportenStandIn(rsa_key(9), {client.client_id: client.registration()})
    now = [time.time()]

    async def run() -> None:
        with serving(stand_in) as issuer:
            tokens = MaskinportenTokens(client.maskinporten_client(issuer), clock=lambda: now[0])
            token = await tokens.token()
        # The stand-in has stopped: renewal fails, but the token is good for 120 s.
        now[0] += 100
        assert await tokens.token() == token
        attempts = tokens.attempts
        now[0] += 4
        assert await tokens.token() == token
        assert tokens.attempts == attempts  # the next try waits 5 s
        now[0] += 30
        with pytest.raises(MaskinportenUnavailable) as unavailable:
            await tokens.token()
        assert unavailable.value.retriable
        await tokens.close()

    asyncio.run(run())


def test_the_kafka_adapter_hands_aiokafka_the_raw_access_token(maskinporten: MaskinportenService) -> None:
    client = maskinporten.client.maskinporten_client(
        maskinporten.issuer, scope=KAFKA_SCOPE, resource=KAFKA_AUDIENCE
    )

    async def run() -> tuple[str, str]:
        async with MaskinportenTokens(client) as tokens:
            adapter = KafkaTokenProvider(tokens)
            # aiokafka checks the provider's type when the client is made; nothing connects here.
            AIOKafkaProducer(
                bootstrap_servers="127.0.0.1:1",
                security_protocol="SASL_PLAINTEXT",
                sasl_mechanism="OAUTHBEARER",
                sasl_oauth_token_provider=adapter,
            )
            return await adapter.token(), await tokens.token()

    raw, cached = asyncio.run(run())
    assert isinstance(KafkaTokenProvider, type) and issubclass(KafkaTokenProvider, AbstractTokenProvider)
    assert isinstance(raw, str) and raw == cached
    assert maskinporten.stand_in.accepts(raw, KAFKA_SCOPE, audience=KAFKA_AUDIENCE)


def _connector_settings(maskinporten: MaskinportenService, **changes: Any) -> Settings:
    return maskinporten.client_settings(Settings(), folkeregister_auth="maskinporten", **changes)


def test_the_folkeregister_connector_sends_a_granted_token_as_its_bearer_token(
    maskinporten: MaskinportenService,
) -> None:
    folkeregister = FolkeregisterStandIn(
        accepts=lambda t: maskinporten.stand_in.accepts(t, FOLKEREGISTER_SCOPE)
    )
    folkeregister.move("01010112345", "0301", dt.date(2026, 11, 30))

    async def latest(settings: Settings, url: str) -> int:
        async with aiohttp.ClientSession() as session:
            auth = token_provider(settings, session)
            assert isinstance(auth, MaskinportenTokens)
            feed = FeedClient(url, auth, session)
            return await feed.latest_sequence() + await feed.latest_sequence()

    with folkeregister_serving(folkeregister) as url:
        assert asyncio.run(latest(_connector_settings(maskinporten), url)) == 2
        assert maskinporten.stand_in.granted == 1  # two calls, one grant
        with pytest.raises(ConfigurationError, match="refused the connector's credentials"):
            asyncio.run(latest(_connector_settings(maskinporten, folkeregister_scope=KAFKA_SCOPE), url))


def test_the_commands_register_a_client_serve_the_stand_in_and_check_a_grant(tmp_path: Path) -> None:
    clients_dir = tmp_path / "clients"
    settings = Settings()
    made = hub_command(
        settings,
        "maskinporten",
        "client-keys",
        "kommune-fagsystem",
        "--out",
        str(clients_dir),
        "--org-number",
        ORG_NUMBER,
        "--scope",
        FOLKEREGISTER_SCOPE,
    )
    assert made.returncode == 0, made.stderr
    (clients_dir / "clients.toml").write_text(made.stdout)
    client_settings = dict(line.strip().split("=", 1) for line in made.stderr.splitlines() if "=" in line)
    assert set(client_settings) == {
        "NIR_MASKINPORTEN_CLIENT_ID",
        "NIR_MASKINPORTEN_KEY_FILE",
        "NIR_MASKINPORTEN_KID",
    }
    assert "PRIVATE KEY" not in made.stdout + made.stderr

    port = free_port()
    stand_in = WorkerProcess(
        settings,
        tmp_path / "stand-in.log",
        command=(
            "maskinporten",
            "stand-in",
            "--port",
            str(port),
            "--clients",
            str(clients_dir / "clients.toml"),
            "--keys-dir",
            str(tmp_path / "keys"),
        ),
    ).start()

    def answers() -> bool:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/jwks", timeout=1).status == 200
        except OSError:
            return False

    wait_until(answers, timeout=30, what="the Maskinporten stand-in")
    checked = hub_command(
        dataclasses.replace(
            settings,
            maskinporten_token_url=f"http://127.0.0.1:{port}/token",
            maskinporten_issuer=f"http://127.0.0.1:{port}/",
            maskinporten_client_id=client_settings["NIR_MASKINPORTEN_CLIENT_ID"],
            maskinporten_key_file=client_settings["NIR_MASKINPORTEN_KEY_FILE"],
            maskinporten_kid=client_settings["NIR_MASKINPORTEN_KID"],
        ),
        "maskinporten",
        "check",
    )
    refused = hub_command(
        dataclasses.replace(
            settings, maskinporten_client_id="x", maskinporten_key_file="x", maskinporten_kid="x"
        ),
        "maskinporten",
        "check",
        "--scope",
        "x:y",
    )
    stand_in.stop()

    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith(
        f"granted: {FOLKEREGISTER_SCOPE} for client kommune-fagsystem, valid for 1"
    )
    assert "eyJ" not in checked.stdout + checked.stderr
    assert refused.returncode == 2 and "cannot read the private key file x" in refused.stderr
    assert f"issuer http://127.0.0.1:{port}/" in (tmp_path / "stand-in.log").read_text()


def test_the_connector_waits_out_an_unreachable_maskinporten_and_stops_on_a_refusal() -> None:
    class FailingOnce:
        def __init__(self, error: Exception) -> None:
            self.error: Exception | None = error

        async def token(self) -> str | None:
            error, self.error = self.error, None
            if error is not None:
                raise error
            return None

    pauses: list[float] = []

    async def pause(seconds: float) -> None:
        pauses.append(seconds)

    async def latest(url: str, auth: FailingOnce) -> int:
        async with aiohttp.ClientSession() as session:
            return await FeedClient(url, auth, session, sleep=pause).latest_sequence()

    with folkeregister_serving(FolkeregisterStandIn()) as url:
        assert asyncio.run(latest(url, FailingOnce(MaskinportenUnavailable("unreachable")))) == 0
        assert pauses == [0.5]
        with pytest.raises(MaskinportenRefused):
            asyncio.run(latest(url, FailingOnce(MaskinportenRefused("invalid_scope"))))
        assert pauses == [0.5]
