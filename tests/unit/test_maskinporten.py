"""Maskinporten without a server: the grant's assertion, when tokens are renewed, the stand-in's
decisions on grants (called directly, on a fixed clock), its clients file and its keys."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import jwt
import pytest

from hub.config import Settings
from hub.dev.maskinporten_standin import (
    GrantRefused,
    MaskinportenStandIn,
    client_entry,
    load_clients,
    make_client_keys,
    signing_key,
)
from hub.errors import ConfigurationError
from hub.maskinporten import (
    JWT_BEARER,
    client_assertion,
    client_from_settings,
    key_id,
    read_private_key,
    renewal_margin,
    write_private_key,
)
from tests.maskinporten import (
    FOLKEREGISTER_SCOPE,
    KAFKA_AUDIENCE,
    KAFKA_SCOPE,
    ORG_NUMBER,
    KeyedClient,
    assertion,
    grant_form,
    keyed_client,
    rsa_key,
)

ISSUER = "http://maskinporten.test/"
NOW = 1_800_000_000.0


@pytest.fixture
def client(tmp_path: Path) -> KeyedClient:
    return keyed_client(tmp_path / "client")


@pytest.fixture
def stand_in(client: KeyedClient) -> MaskinportenStandIn:
    return MaskinportenStandIn(
        rsa_key(9),
        {client.client_id: client.registration()},
        issuer=ISSUER,
        default_audience="unspecified",
        token_lifetime=120,
        clock=lambda: NOW,
    )


def test_a_token_is_renewed_when_a_fifth_of_its_lifetime_is_left_but_at_most_30_seconds_early() -> None:
    assert renewal_margin(120) == pytest.approx(24)
    assert renewal_margin(3) == pytest.approx(0.6)
    assert renewal_margin(3600) == 30


def test_the_assertion_is_signed_by_the_clients_key_and_names_client_scope_and_maskinporten(
    client: KeyedClient,
) -> None:
    mp_client = client.maskinporten_client(ISSUER, scope=KAFKA_SCOPE, resource=KAFKA_AUDIENCE)
    signed = client_assertion(mp_client, client.key, NOW)

    assert jwt.get_unverified_header(signed)["kid"] == client.kid
    claims = jwt.decode(
        signed,
        client.key.public_key(),
        algorithms=["RS256"],
        audience=ISSUER,
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["iss"] == client.client_id
    assert (claims["scope"], claims["resource"]) == (KAFKA_SCOPE, KAFKA_AUDIENCE)
    assert claims["iat"] == int(NOW) and 0 < claims["exp"] - claims["iat"] <= 120
    assert client_assertion(mp_client, client.key, NOW) != signed  # a new jti each time


def test_a_good_grant_gets_an_access_token_for_the_client_its_organisation_and_its_scopes(
    client: KeyedClient, stand_in: MaskinportenStandIn
) -> None:
    claims = stand_in.grant(
        grant_form(assertion(client, ISSUER, now=NOW, scope=f"{FOLKEREGISTER_SCOPE} {KAFKA_SCOPE}"))
    )

    assert claims["iss"] == ISSUER
    assert claims["aud"] == "unspecified"
    assert claims["client_id"] == client.client_id
    assert claims["consumer"] == {"authority": "iso6523-actorid-upis", "ID": f"0192:{ORG_NUMBER}"}
    assert claims["scope"] == f"{FOLKEREGISTER_SCOPE} {KAFKA_SCOPE}"
    assert (claims["iat"], claims["exp"]) == (int(NOW), int(NOW) + 120)
    assert claims["jti"] and claims["token_type"] == "Bearer"


def test_a_grant_naming_an_allowed_resource_gets_a_token_for_that_audience(
    client: KeyedClient, stand_in: MaskinportenStandIn
) -> None:
    claims = stand_in.grant(grant_form(assertion(client, ISSUER, now=NOW, resource=KAFKA_AUDIENCE)))
    assert claims["aud"] == KAFKA_AUDIENCE


REFUSALS: dict[str, tuple[dict[str, Any], str, str]] = {
    # case: (changes to the assertion, OAuth error, words in its description)
    "signed by another key": ({"key": rsa_key(1)}, "invalid_grant", "signature"),
    "expired": ({"now": NOW - 200}, "invalid_grant", "iat"),
    "expired, though issued recently": (
        {"exp": int(NOW) - 11, "iat": int(NOW) - 9},
        "invalid_grant",
        "expired",
    ),
    "issued in the future": ({"now": NOW + 30}, "invalid_grant", "iat"),
    "living longer than 120 s": ({"exp": int(NOW) + 121}, "invalid_grant", "at most 120 s"),
    "for another audience": ({"aud": "https://maskinporten.no/"}, "invalid_grant", "aud must be"),
    "with a list as audience": ({"aud": [ISSUER]}, "invalid_grant", "aud must be"),
    "asking for a scope the client lacks": (
        {"scope": f"{FOLKEREGISTER_SCOPE} altinn:x"},
        "invalid_scope",
        "scope",
    ),
    "asking for no scope": ({"scope": " "}, "invalid_scope", "no scope"),
    "from an unknown client": ({"iss": "someone-else"}, "invalid_client", "unknown client"),
    "with an unregistered kid": ({"header": {"kid": "other"}}, "invalid_grant", "kid"),
    "with a certificate chain instead of a kid": (
        {"header": {"kid": None, "x5c": ["MII..."]}},
        "invalid_grant",
        "kid",
    ),
    "signed with a shared secret": ({"algorithm": "HS256"}, "invalid_grant", "RS256"),
    "without jti": ({"jti": None}, "invalid_grant", "jti"),
    "with iat as text": ({"iat": str(int(NOW))}, "invalid_grant", "whole seconds"),
    "for a resource the client may not have": ({"resource": "another-api"}, "invalid_target", "resource"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_a_grant_is_refused_with_an_oauth_error_when_the_assertion(
    client: KeyedClient, stand_in: MaskinportenStandIn, case: str
) -> None:
    changes, error, words = REFUSALS[case]
    signed = assertion(client, ISSUER, **{"now": NOW, **changes})

    with pytest.raises(GrantRefused) as refused:
        stand_in.grant(grant_form(signed))

    assert refused.value.error == error
    assert words in refused.value.description
    assert refused.value.status == (401 if error == "invalid_client" else 400)
    assert signed not in refused.value.description


def test_an_assertion_is_taken_once(client: KeyedClient, stand_in: MaskinportenStandIn) -> None:
    signed = assertion(client, ISSUER, now=NOW)
    stand_in.grant(grant_form(signed))

    with pytest.raises(GrantRefused, match="used already"):
        stand_in.grant(grant_form(signed))


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "client_credentials", "assertion": "x"}, "unsupported_grant_type"),
        ({"grant_type": JWT_BEARER}, "invalid_request"),
        ({"grant_type": JWT_BEARER, "assertion": "not.a.jwt"}, "invalid_grant"),
        ({"grant_type": JWT_BEARER, "assertion": "e30.e30.e30"}, "invalid_grant"),
        ({"grant_type": JWT_BEARER, "assertion": ""}, "invalid_grant"),
    ],
)
def test_a_form_that_is_no_jwt_bearer_grant_is_refused(
    stand_in: MaskinportenStandIn, form: dict[str, str], error: str
) -> None:
    with pytest.raises(GrantRefused) as refused:
        stand_in.grant(form)
    assert refused.value.error == error


def test_an_access_token_is_one_the_stand_in_accepts_for_its_scope_and_audience_only(
    client: KeyedClient, tmp_path: Path
) -> None:
    stand_in = MaskinportenStandIn(rsa_key(9), {client.client_id: client.registration()}, issuer=ISSUER)
    claims = stand_in.grant(grant_form(assertion(client, ISSUER, resource=KAFKA_AUDIENCE)))
    token = jwt.encode(claims, stand_in.key, algorithm="RS256", headers={"kid": stand_in.kid})

    assert stand_in.accepts(token, FOLKEREGISTER_SCOPE)
    assert stand_in.accepts(token, FOLKEREGISTER_SCOPE, audience=KAFKA_AUDIENCE)
    assert not stand_in.accepts(token, FOLKEREGISTER_SCOPE, audience="another-api")
    assert not stand_in.accepts(token, KAFKA_SCOPE)
    assert not stand_in.accepts(token[:-4] + "AAAA", FOLKEREGISTER_SCOPE)


def test_the_clients_file_entry_that_client_keys_prints_registers_the_client(tmp_path: Path) -> None:
    kid, private_file, public_file = make_client_keys(tmp_path, "kommune-fagsystem")
    clients_file = tmp_path / "clients.toml"
    clients_file.write_text(
        client_entry("kommune-fagsystem", ORG_NUMBER, kid, public_file.name, [KAFKA_SCOPE], [KAFKA_AUDIENCE])
    )

    registered = load_clients(clients_file)["kommune-fagsystem"]

    assert registered.org_number == ORG_NUMBER
    assert (registered.scopes, registered.audiences) == ({KAFKA_SCOPE}, {KAFKA_AUDIENCE})
    assert key_id(registered.keys[kid]) == kid == key_id(read_private_key(private_file).public_key())
    assert stat.S_IMODE(private_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o700
    with pytest.raises(ConfigurationError, match="not overwritten"):
        make_client_keys(tmp_path, "kommune-fagsystem")


def test_a_public_key_can_be_registered_inline(tmp_path: Path) -> None:
    _, _, public_file = make_client_keys(tmp_path, "inline")
    (tmp_path / "clients.toml").write_text(
        f'[clients.inline]\norg_number = "{ORG_NUMBER}"\nscopes = ["a:b"]\n'
        f'[clients.inline.keys]\nk1 = """{public_file.read_text()}"""\n'
    )
    assert set(load_clients(tmp_path / "clients.toml")["inline"].keys) == {"k1"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no \\[clients"),
        ("[clients", "not valid TOML"),
        ('[clients.a]\norg_number = "12345678"\nscopes = ["s"]\nkeys = {k = "x.pem"}', "9 digits"),
        ('[clients.a]\norg_number = "123456789"\nscopes = []\nkeys = {k = "x.pem"}', "scopes"),
        ('[clients.a]\norg_number = "123456789"\nscopes = ["a b"]\nkeys = {k = "x.pem"}', "scopes"),
        ('[clients.a]\norg_number = "123456789"\nscopes = ["s"]\nkeys = {}', "keys"),
        ('[clients.a]\norg_number = "123456789"\nscopes = ["s"]\nkeys = {k = "x.pem"}', "cannot read key"),
        (
            '[clients.a]\norg_number = "123456789"\nscopes = ["s"]\nkeys = {k = "-----BEGIN junk"}',
            "not a PEM",
        ),
        ('[clients.a]\norg_number = "123456789"\nscope = ["s"]\nkeys = {k = "x.pem"}', "unknown field"),
    ],
)
def test_a_broken_clients_file_is_refused_with_a_reason(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "clients.toml").write_text(text)
    with pytest.raises(ConfigurationError, match=message):
        load_clients(tmp_path / "clients.toml")


def test_the_stand_ins_signing_key_is_made_once_kept_private_and_reused(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    first = signing_key(keys_dir)
    again = signing_key(keys_dir)

    assert key_id(first.public_key()) == key_id(again.public_key())
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((keys_dir / "signing-key.pem").stat().st_mode) == 0o600
    assert not write_private_key(keys_dir / "signing-key.pem", rsa_key(1))
    assert [p.name for p in keys_dir.iterdir()] == ["signing-key.pem"]


def test_a_private_key_file_that_is_no_key_is_named_without_its_content(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    path.write_text("-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ1dC1icm9rZW4=\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigurationError) as caught:
        read_private_key(path)
    assert str(path) in str(caught.value) and "c2VjcmV0" not in str(caught.value)


def test_maskinporten_auth_needs_the_clients_settings_and_names_those_missing() -> None:
    settings = Settings.from_env(
        {"NIR_FOLKEREGISTER_AUTH": "maskinporten", "NIR_MASKINPORTEN_CLIENT_ID": "nir-hub"}
    )
    with pytest.raises(ConfigurationError, match="NIR_MASKINPORTEN_KEY_FILE, NIR_MASKINPORTEN_KID"):
        client_from_settings(settings, settings.folkeregister_scope)
    with pytest.raises(ConfigurationError, match="none, token-file:PATH or maskinporten"):
        Settings.from_env({"NIR_FOLKEREGISTER_AUTH": "maskinporten:nir-hub"})


def test_the_client_is_built_from_settings_with_the_scope_asked_for() -> None:
    settings = Settings.from_env(
        {
            "NIR_MASKINPORTEN_TOKEN_URL": "https://test.maskinporten.no/token",
            "NIR_MASKINPORTEN_ISSUER": "https://test.maskinporten.no/",
            "NIR_MASKINPORTEN_CLIENT_ID": "nir-hub",
            "NIR_MASKINPORTEN_KEY_FILE": "/etc/nir/maskinporten.pem",
            "NIR_MASKINPORTEN_KID": "nir-hub-2026",
        }
    )
    client = client_from_settings(settings, KAFKA_SCOPE, KAFKA_AUDIENCE)
    assert (client.token_url, client.issuer, client.client_id) == (
        "https://test.maskinporten.no/token",
        "https://test.maskinporten.no/",
        "nir-hub",
    )
    assert (str(client.key_file), client.kid, client.scope, client.resource) == (
        "/etc/nir/maskinporten.pem",
        "nir-hub-2026",
        KAFKA_SCOPE,
        KAFKA_AUDIENCE,
    )
