"""A local stand-in for Maskinporten, for the tests, the demo and a local broker that validates
SASL/OAUTHBEARER tokens against its JWKS.

It serves `POST /token` (the JWT-bearer grant, as Maskinporten does it), `GET /jwks` and
`GET /.well-known/oauth-authorization-server`. Clients are registered in a TOML file (see
`load_clients`; `hub maskinporten client-keys` makes a key pair and prints the entry):

    [clients."nir-hub"]
    org_number = "974760673"                  # 9 digits; the token's consumer is 0192:<it>
    scopes = ["folkeregister:deling/offentligmedhjemmel", "nir:kafka"]
    audiences = ["nir-kafka"]                 # the `resource`s the client may ask for
    [clients."nir-hub".keys]
    "the-kid" = "/etc/nir/nir-hub.pub.pem"    # kid = PEM path (absolute or relative to this file) or the PEM

A grant is refused unless its assertion is signed RS256/384/512 by a key registered for its
`iss` under the header's `kid`, has `aud` = the issuer URL, `iat` within 10 s of now, `exp`
at most 120 s after `iat` and not passed, a `jti` not seen before, and asks only for scopes and
resources the client has. Refusals are OAuth JSON errors; nothing the client sent is echoed.

The access token is a JWT signed RS256 with the stand-in's key (header `kid`), with `iss`, `aud`
(the resource, else the default audience), `client_id`, `consumer`, `scope`, `iat`, `exp`,
`jti`, `token_type` and `client_amr`. The signing key lives in the keys directory and is
reused, so tokens stay valid across restarts.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import tomllib
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from hub.dev.localrun import serve_in_background
from hub.errors import ConfigurationError, safe_traceback
from hub.maskinporten import (
    JWT_BEARER,
    generate_rsa_key,
    key_id,
    public_key_pem,
    read_private_key,
    read_public_key,
    write_private_key,
)

log = logging.getLogger(__name__)

SIGNING_KEY_FILE = "signing-key.pem"
MAX_REQUEST_BYTES = 16 * 1024  # a grant is a few hundred bytes; nothing larger is read
CLOCK_SKEW_SECONDS = 10  # Maskinporten's allowance for iat
MAX_ASSERTION_SECONDS = 120
ASSERTION_ALGORITHMS = ["RS256", "RS384", "RS512"]
DEFAULT_AUDIENCE = "unspecified"  # what Digdir's token servers put in aud when no resource is asked
ORG_NUMBER_AUTHORITY = "iso6523-actorid-upis"
ORG_NUMBER_SCHEME = "0192"  # ISO 6523 ICD of the Norwegian organisation number


# --- registered clients ----------------------------------------------------------------------


@dataclass(frozen=True)
class RegisteredClient:
    client_id: str
    org_number: str
    keys: dict[str, rsa.RSAPublicKey]  # by kid
    scopes: frozenset[str]
    audiences: frozenset[str]


_CLIENT_FIELDS = {"org_number", "scopes", "audiences", "keys"}


def load_clients(path: Path) -> dict[str, RegisteredClient]:
    """The clients file, checked; every fault is a ConfigurationError naming the client."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read the clients file {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"the clients file {path} is not valid TOML: {exc}") from None
    entries = document.get("clients")
    if not isinstance(entries, dict) or not entries:
        raise ConfigurationError(f'the clients file {path} has no [clients."ID"] tables')
    return {client_id: _client(client_id, entry, path.parent) for client_id, entry in entries.items()}


def _client(client_id: str, entry: Any, directory: Path) -> RegisteredClient:
    def fault(what: str) -> ConfigurationError:
        return ConfigurationError(f"client {client_id!r} in the clients file: {what}")

    if not isinstance(entry, dict):
        raise fault("must be a table")
    if unknown := set(entry) - _CLIENT_FIELDS:
        raise fault(f"unknown field(s) {', '.join(sorted(unknown))}")
    org_number = entry.get("org_number")
    if not isinstance(org_number, str) or not re.fullmatch(r"[0-9]{9}", org_number):
        raise fault("org_number must be a string of 9 digits")
    scopes, audiences = entry.get("scopes"), entry.get("audiences", [])
    if not _strings(scopes) or not scopes or any(not s or " " in s for s in scopes):
        raise fault("scopes must be a non-empty list of scopes without spaces")
    if not _strings(audiences):
        raise fault("audiences must be a list of strings")
    keys = entry.get("keys")
    if not isinstance(keys, dict) or not keys or not _strings(keys.values()):
        raise fault('keys must be a table of kid = "PEM file or PEM"')
    public_keys = {}
    for kid, value in keys.items():
        if value.lstrip().startswith("-----BEGIN"):
            pem = value.encode()
        else:
            try:
                pem = (directory / value).read_bytes()
            except OSError as exc:
                raise fault(f"cannot read key {kid!r} from {value}: {exc.strerror}") from None
        public_keys[kid] = read_public_key(pem, f"key {kid!r} of client {client_id!r}")
    return RegisteredClient(client_id, org_number, public_keys, frozenset(scopes), frozenset(audiences))


def _strings(value: Any) -> bool:
    return (
        isinstance(value, Iterable) and not isinstance(value, str) and all(isinstance(v, str) for v in value)
    )


def client_entry(
    client_id: str, org_number: str, kid: str, public_key_file: str, scopes: list[str], audiences: list[str]
) -> str:
    """The clients file's TOML entry for one client with one key."""

    def toml(value: Any) -> str:  # a JSON string or list of strings is a TOML one
        return json.dumps(value)

    return (
        f"[clients.{toml(client_id)}]\n"
        f"org_number = {toml(org_number)}\n"
        f"scopes = {toml(scopes)}\n"
        f"audiences = {toml(audiences)}\n"
        f"[clients.{toml(client_id)}.keys]\n"
        f"{toml(kid)} = {toml(public_key_file)}\n"
    )


# --- the stand-in's own key ------------------------------------------------------------------


def signing_key(keys_dir: Path) -> rsa.RSAPrivateKey:
    """The stand-in's signing key from `keys_dir` (0700), made on first use and kept (0600)."""
    path = keys_dir / SIGNING_KEY_FILE
    try:
        keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists():
            write_private_key(path, generate_rsa_key())  # loses nothing if another start won the race
    except OSError as exc:
        raise ConfigurationError(
            f"cannot keep the stand-in's signing key in {keys_dir}: {exc.strerror}"
        ) from None
    if path.stat().st_mode & 0o077:
        log.warning("%s can be read by others than its owner; chmod 600 it", path)
    return read_private_key(path)


# --- the server ------------------------------------------------------------------------------


class GrantRefused(Exception):
    """A grant refused with an OAuth error; the description says why, without the client's input."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status

    def response(self) -> web.Response:
        return web.json_response(
            {"error": self.error, "error_description": self.description},
            status=self.status,
            headers={"Cache-Control": "no-store"},
        )


class MaskinportenStandIn:
    def __init__(
        self,
        key: rsa.RSAPrivateKey,
        clients: dict[str, RegisteredClient],
        *,
        issuer: str | None = None,
        default_audience: str = DEFAULT_AUDIENCE,
        token_lifetime: int = 120,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self.kid = key_id(key.public_key())
        self.clients = clients
        self.issuer = issuer  # set by `serving` from the bound port if not given
        self.default_audience = default_audience
        self.token_lifetime = token_lifetime
        self.clock = clock
        self.granted = 0
        self.refused: dict[str, int] = {}  # by OAuth error
        self._used: dict[tuple[str, str], float] = {}  # (client_id, jti) -> when it may be forgotten

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=[self._no_traces])
        app.router.add_post("/token", self._token)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_get("/.well-known/oauth-authorization-server", self._metadata)
        return app

    def jwks(self) -> dict[str, Any]:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def accepts(self, token: str, scope: str, audience: str | None = None) -> bool:
        """Whether `token` is an unexpired access token of this stand-in's with `scope` (and
        `audience`): what an API that trusts it checks."""
        try:
            claims = jwt.decode(
                token,
                self.key.public_key(),
                algorithms=["RS256"],
                issuer=self._issuer(),
                audience=audience,
                options={"verify_aud": audience is not None, "require": ["exp", "client_id", "scope"]},
            )
        except jwt.PyJWTError:
            return False
        return scope in str(claims["scope"]).split()

    @web.middleware
    async def _no_traces(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)  # type: ignore[no-any-return]
        except web.HTTPException:
            raise
        except Exception as exc:  # the client gets no trace; the log gets where, not what
            log.error("the Maskinporten stand-in failed: %s", safe_traceback(exc))
            return web.json_response({"error": "server_error"}, status=500)

    async def _jwks(self, request: web.Request) -> web.Response:
        return web.json_response(self.jwks())

    async def _metadata(self, request: web.Request) -> web.Response:
        issuer = self._issuer()
        return web.json_response(
            {
                "issuer": issuer,
                "token_endpoint": urllib.parse.urljoin(issuer, "token"),
                "jwks_uri": urllib.parse.urljoin(issuer, "jwks"),
                "grant_types_supported": [JWT_BEARER],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
                "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
            }
        )

    async def _token(self, request: web.Request) -> web.Response:
        try:
            claims = self.grant(await _form(request))
        except GrantRefused as refusal:
            self.refused[refusal.error] = self.refused.get(refusal.error, 0) + 1
            return refusal.response()
        self.granted += 1
        token = jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})
        return web.json_response(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "scope": claims["scope"],
            },
            headers={"Cache-Control": "no-store"},
        )

    def grant(self, form: dict[str, str]) -> dict[str, Any]:
        """The access token's claims for a grant, or a `GrantRefused` saying why not."""
        if "grant_type" not in form or "assertion" not in form:
            raise GrantRefused("invalid_request", "grant_type and assertion are required")
        if form["grant_type"] != JWT_BEARER:
            raise GrantRefused("unsupported_grant_type", f"only {JWT_BEARER} is supported")
        client, assertion = self._verified(form["assertion"])
        now = self.clock()
        self._check_times(assertion, now)
        self._use_once(client.client_id, assertion.get("jti"), assertion["exp"], now)
        scopes = self._allowed_scopes(client, assertion.get("scope"))
        audience = self._allowed_audience(client, assertion.get("resource"))
        issued = int(now)
        return {
            "iss": self._issuer(),
            "aud": audience,
            "client_id": client.client_id,
            "consumer": {"authority": ORG_NUMBER_AUTHORITY, "ID": f"{ORG_NUMBER_SCHEME}:{client.org_number}"},
            "scope": " ".join(scopes),
            "iat": issued,
            "exp": issued + self.token_lifetime,
            "jti": str(uuid.uuid4()),
            "token_type": "Bearer",
            "client_amr": "private_key_jwt",
        }

    def _verified(self, assertion: str) -> tuple[RegisteredClient, dict[str, Any]]:
        """The client and the assertion's claims, once its signature, `aud` and `iss` verify."""
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except (jwt.PyJWTError, ValueError, TypeError, RecursionError):  # deep nesting is hostile, too
            raise GrantRefused("invalid_grant", "the assertion is not a signed JWT") from None
        if header.get("alg") not in ASSERTION_ALGORITHMS:
            raise GrantRefused(
                "invalid_grant", f"the assertion must be signed with one of {ASSERTION_ALGORITHMS}"
            )
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise GrantRefused(
                "invalid_grant",
                "the assertion's header needs the kid of a registered key (x5c is not supported here)",
            )
        client_id = unverified.get("iss")
        client = self.clients.get(client_id) if isinstance(client_id, str) else None
        if client is None:
            raise GrantRefused("invalid_client", "unknown client (the assertion's iss)", status=401)
        key = client.keys.get(kid)
        if key is None:
            raise GrantRefused(
                "invalid_grant", "no key with the assertion's kid is registered for this client"
            )
        try:
            claims = jwt.decode(
                assertion,
                key,
                algorithms=ASSERTION_ALGORITHMS,
                audience=self._issuer(),
                issuer=client.client_id,
                # Times are checked by `_check_times`, against the stand-in's clock.
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "strict_aud": True,
                    "require": ["aud", "iss", "iat", "exp", "jti", "scope"],
                },
            )
        except jwt.InvalidSignatureError:
            raise GrantRefused(
                "invalid_grant", "the assertion's signature does not verify with the registered key"
            ) from None
        except jwt.InvalidAudienceError:
            raise GrantRefused("invalid_grant", f"the assertion's aud must be {self._issuer()}") from None
        except jwt.MissingRequiredClaimError as exc:
            raise GrantRefused("invalid_grant", f"the assertion has no {exc.claim} claim") from None
        except jwt.PyJWTError:
            raise GrantRefused("invalid_grant", "the assertion is not valid") from None
        return client, claims

    def _check_times(self, assertion: dict[str, Any], now: float) -> None:
        issued, expires = assertion["iat"], assertion["exp"]
        if not all(isinstance(t, int) and not isinstance(t, bool) for t in (issued, expires)):
            raise GrantRefused("invalid_grant", "the assertion's iat and exp must be whole seconds")
        if abs(issued - now) > CLOCK_SKEW_SECONDS:
            raise GrantRefused(
                "invalid_grant", f"the assertion's iat is more than {CLOCK_SKEW_SECONDS} s from now"
            )
        if expires <= now - CLOCK_SKEW_SECONDS:
            raise GrantRefused("invalid_grant", "the assertion has expired")
        if not 0 < expires - issued <= MAX_ASSERTION_SECONDS:
            raise GrantRefused(
                "invalid_grant", f"the assertion's exp must be at most {MAX_ASSERTION_SECONDS} s after iat"
            )

    def _use_once(self, client_id: str, jti: Any, expires: int, now: float) -> None:
        """Remember the assertion's jti as long as the assertion could be accepted, to refuse a replay."""
        if not isinstance(jti, str) or not 0 < len(jti) <= 256:
            raise GrantRefused("invalid_grant", "the assertion's jti must be a string of 1 to 256 characters")
        self._used = {used: until for used, until in self._used.items() if until > now}
        if (client_id, jti) in self._used:
            raise GrantRefused("invalid_grant", "the assertion has been used already (jti)")
        self._used[(client_id, jti)] = expires + CLOCK_SKEW_SECONDS

    def _allowed_scopes(self, client: RegisteredClient, scope: Any) -> list[str]:
        scopes = scope.split() if isinstance(scope, str) else []
        if not scopes:
            raise GrantRefused("invalid_scope", "the assertion asks for no scope")
        if not set(scopes) <= client.scopes:
            raise GrantRefused("invalid_scope", "the client may not have every scope it asks for")
        return list(dict.fromkeys(scopes))

    def _allowed_audience(self, client: RegisteredClient, resource: Any) -> str | list[str]:
        if resource is None:
            return self.default_audience
        resources = [resource] if isinstance(resource, str) else resource
        if not _strings(resources) or not resources:
            raise GrantRefused("invalid_request", "resource must be a string or a list of strings")
        if not set(resources) <= client.audiences:
            # RFC 8707's error for a resource the client may not have a token for.
            raise GrantRefused("invalid_target", "the client may not have a token for that resource")
        return resource  # type: ignore[no-any-return]

    def _issuer(self) -> str:
        if self.issuer is None:
            raise RuntimeError("the stand-in's issuer is set when it is served")
        return self.issuer


async def _form(request: web.Request) -> dict[str, str]:
    """The form's fields, each given once; anything else is an invalid request."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise GrantRefused("invalid_request", "the body must be application/x-www-form-urlencoded")
    try:
        body = await request.read()  # at most MAX_REQUEST_BYTES (the app's client_max_size)
    except web.HTTPRequestEntityTooLarge:
        raise GrantRefused(
            "invalid_request", f"the request is larger than {MAX_REQUEST_BYTES} bytes"
        ) from None
    try:
        fields = urllib.parse.parse_qs(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=True, max_num_fields=20
        )
    except (UnicodeDecodeError, ValueError):
        raise GrantRefused("invalid_request", "the body is not a URL-encoded form") from None
    if any(len(values) != 1 for values in fields.values()):
        raise GrantRefused("invalid_request", "a field is given more than once")
    return {name: values[0] for name, values in fields.items()}


@contextmanager
def serving(stand_in: MaskinportenStandIn, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve the stand-in from a background thread; yields its issuer URL (`http://host:port/`
    unless the stand-in was given one). The token endpoint is `<issuer>token`."""
    with serve_in_background(stand_in.app(), host, port, name="maskinporten-stand-in") as bound:
        if stand_in.issuer is None:
            stand_in.issuer = f"http://{host}:{bound}/"
        yield stand_in.issuer


def key_files(out: Path, client_id: str) -> tuple[Path, Path]:
    """Where `hub maskinporten client-keys` keeps a client's private and public key."""
    return out / f"{client_id}.key.pem", out / f"{client_id}.pub.pem"


def make_client_keys(out: Path, client_id: str) -> tuple[str, Path, Path]:
    """A new key pair for a client in `out`: its kid, private key file (0600) and public key file."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}", client_id):
        raise ConfigurationError("a client id is letters, digits, '.', '_', ':' and '-' (at most 100)")
    private_file, public_file = key_files(out.resolve(), client_id)
    key = generate_rsa_key()
    try:
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not write_private_key(private_file, key):
            raise ConfigurationError(f"{private_file} exists already; it is not overwritten")
        public_file.write_bytes(public_key_pem(key.public_key()))
        os.chmod(public_file, 0o644)
    except OSError as exc:
        raise ConfigurationError(f"cannot write the client's keys in {out}: {exc.strerror}") from None
    return key_id(key.public_key()), private_file, public_file
