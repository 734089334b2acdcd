"""A local stand-in for ID-porten (or any OpenID Connect provider), for the tests, the demo and a
new user: the whole sign-in of the support page without the internet.

It serves the discovery document (`/.well-known/openid-configuration`), its keys (`/jwks`),
`/authorize` (a page listing the test persons, each a link; `pid=` picks one straight away, as
the tests do, `acr=` asks for another level, `cancel=1` answers as a person who cancelled) and
`/token` (the authorization code grant). Test persons are built in (synthetic numbers only:
Tenor's, month + 80) or read from a TOML file (`load_persons`):

    [[persons]]
    pid = "01817012345"   # synthetic: a month of 81..92
    name = "Kari Testperson"

`/authorize` refuses an unknown client, a `redirect_uri` the client has not registered (any, if
it registered none) and a request without an S256 PKCE challenge. `/token` refuses a client that
does not authenticate (`client_secret_basic`, `client_secret_post` or `private_key_jwt`, whose
assertion is signed by the client's registered key, for this issuer or its token endpoint, and
not expired), a code it did not give, a code given to another client or redirect address, a
code used before (once used, it is gone: a second use is `invalid_grant`), and a `code_verifier`
that does not match the challenge. The ID token is signed RS256 with the stand-in's key and has
`iss`, `aud` (the client), `sub` (a pairwise identifier, as ID-porten gives), `pid`, `nonce`,
`acr`, `amr`, `auth_time`, `iat` and `exp`.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import html
import logging
import secrets
import time
import tomllib
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from hub.dev.localrun import serve_in_background
from hub.domain.identifiers import InvalidIdentifier, make_national_id, parse_national_id
from hub.errors import ConfigurationError, safe_traceback
from hub.maskinporten import key_id

log = logging.getLogger(__name__)

CODE_LIFETIME = 60  # seconds from /authorize to /token
DEFAULT_ACR = "idporten-loa-high"
ACR_VALUES = ("idporten-loa-substantial", "idporten-loa-high")
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclasses.dataclass(frozen=True)
class TestPerson:
    pid: str
    name: str


def _built_in_persons() -> tuple[TestPerson, ...]:
    """Three persons with synthetic numbers (valid check digits, month + 80)."""
    persons, individual = [], 100
    for name, born in (
        ("Kari Testperson", dt.date(1970, 1, 1)),
        ("Ola Testperson", dt.date(1985, 6, 15)),
        ("Aisha Testperson", dt.date(1992, 11, 30)),
    ):
        number = None
        while number is None:
            individual += 1
            number = make_national_id(born, individual)
        persons.append(TestPerson(number, name))
    return tuple(persons)


BUILT_IN_PERSONS = _built_in_persons()


def load_persons(path: Path) -> tuple[TestPerson, ...]:
    """The test persons of a TOML file; a number that is not synthetic is refused: a stand-in
    must never hold a real person."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read the test persons in {path}: {exc}") from None
    persons = []
    for entry in document.get("persons", []):
        pid, name = entry.get("pid") if isinstance(entry, dict) else None, entry.get("name", "")
        try:
            synthetic = parse_national_id(str(pid), allow_synthetic=True).synthetic
        except InvalidIdentifier:
            synthetic = False
        if not synthetic:
            raise ConfigurationError(f"{path}: every test person needs a synthetic pid (month + 80)")
        persons.append(TestPerson(str(pid), str(name)))
    if not persons:
        raise ConfigurationError(f"{path} has no [[persons]]")
    return tuple(persons)


@dataclasses.dataclass(frozen=True)
class StandInClient:
    """A client registered with the stand-in: a secret, or a public key for private_key_jwt."""

    client_id: str
    secret: str | None = None
    public_key: rsa.RSAPublicKey | None = None
    redirect_uris: tuple[str, ...] = ()


@dataclasses.dataclass
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None
    acr: str
    person: TestPerson
    expires: float


class TokenRefused(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


class IdportenStandIn:
    def __init__(
        self,
        key: rsa.RSAPrivateKey,
        clients: dict[str, StandInClient],
        *,
        persons: tuple[TestPerson, ...] = BUILT_IN_PERSONS,
        issuer: str | None = None,
        token_lifetime: int = 120,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self.kid = key_id(key.public_key())
        self.clients = clients
        self.persons = persons
        self.issuer = issuer  # set by `serving` from the bound port if not given
        self.token_lifetime = token_lifetime
        self.clock = clock
        self._codes: dict[str, _Code] = {}
        self._used: set[str] = set()
        self.refused: dict[str, int] = {}  # by OAuth error, for the tests
        # For the tests of the hub's checks only: changes the next ID tokens' claims, or signs
        # them with another key. A real provider never does either.
        self.tamper: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self.sign_with: rsa.RSAPrivateKey | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024, middlewares=[self._no_traces])
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/token", self._token)
        return app

    def _issuer(self) -> str:
        if self.issuer is None:
            raise RuntimeError("the stand-in's issuer is set when it is served")
        return self.issuer

    def _endpoint(self, name: str) -> str:
        return urllib.parse.urljoin(self._issuer(), name)

    @web.middleware
    async def _no_traces(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)  # type: ignore[no-any-return]
        except web.HTTPException:
            raise
        except Exception as exc:
            log.error("the ID-porten stand-in failed: %s", safe_traceback(exc))
            return web.json_response({"error": "server_error"}, status=500)

    async def _discovery(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": self._issuer(),
                "authorization_endpoint": self._endpoint("authorize"),
                "token_endpoint": self._endpoint("token"),
                "jwks_uri": self._endpoint("jwks"),
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                    "private_key_jwt",
                ],
                "acr_values_supported": list(ACR_VALUES),
                "scopes_supported": ["openid", "profile"],
                "claims_supported": ["iss", "aud", "sub", "pid", "nonce", "acr", "amr", "exp", "iat"],
            }
        )

    def jwks(self) -> dict[str, Any]:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    async def _jwks(self, request: web.Request) -> web.Response:
        return web.json_response(self.jwks())

    # --- /authorize ---------------------------------------------------------------------------

    async def _authorize(self, request: web.Request) -> web.Response:
        query = request.query
        client = self.clients.get(query.get("client_id", ""))
        redirect_uri = query.get("redirect_uri", "")
        # Without a known client and one of its addresses there is nowhere safe to send an error.
        if client is None:
            return _page("Ukjent klient", "<p>The client is not registered with the stand-in.</p>", 400)
        if client.redirect_uris and redirect_uri not in client.redirect_uris:
            return _page("Ugyldig redirect_uri", "<p>The client has not registered that address.</p>", 400)
        if not redirect_uri.startswith(("http://", "https://")):
            return _page("Ugyldig redirect_uri", "<p>No address to answer to.</p>", 400)
        state = query.get("state")

        def answer(**values: str) -> NoReturn:
            params = {**values, **({"state": state} if state is not None else {})}
            separator = "&" if "?" in redirect_uri else "?"
            raise web.HTTPSeeOther(redirect_uri + separator + urllib.parse.urlencode(params))

        if query.get("response_type") != "code":
            return answer(error="unsupported_response_type")
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return answer(error="invalid_request", error_description="PKCE with S256 is required")
        if "openid" not in query.get("scope", "").split():
            return answer(error="invalid_scope", error_description="openid is required")
        if query.get("cancel"):
            return answer(error="access_denied", error_description="the person cancelled")
        acr = query.get("acr") or (query.get("acr_values", "").split() or [DEFAULT_ACR])[0]
        if acr not in ACR_VALUES:
            return answer(error="invalid_request", error_description="unknown acr_values")
        pid = query.get("pid")
        if pid is None:
            return self._person_list(request)
        person = next((p for p in self.persons if p.pid == pid), None)
        if person is None:
            return answer(error="access_denied", error_description="no such test person")
        code = secrets.token_urlsafe(32)
        self._codes[code] = _Code(
            client.client_id,
            redirect_uri,
            query["code_challenge"],
            query.get("nonce"),
            acr,
            person,
            self.clock() + CODE_LIFETIME,
        )
        return answer(code=code)

    def _person_list(self, request: web.Request) -> web.Response:
        """The page a person picks a test person on: each a link to this same request + pid."""
        items = []
        for person in self.persons:
            address = str(request.rel_url.update_query(pid=person.pid))
            items.append(
                f'<li><a class="person" data-pid="{html.escape(person.pid)}" href="{html.escape(address)}">'
                f"{html.escape(person.name)} ({html.escape(person.pid)})</a></li>"
            )
        cancel = html.escape(str(request.rel_url.update_query(cancel="1")))
        body = (
            "<p>Velg en testperson (syntetiske fødselsnummer) / Pick a test person (synthetic numbers):</p>"
            f'<ul>{"".join(items)}</ul><p><a id="cancel" href="{cancel}">Avbryt / Cancel</a></p>'
        )
        return _page("ID-porten (stand-in)", body)

    # --- /token -------------------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        try:
            form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
            client = self._authenticated(request, form)
            body = self._grant(client, form)
        except TokenRefused as exc:
            self.refused[exc.error] = self.refused.get(exc.error, 0) + 1
            return web.json_response(
                {"error": exc.error, "error_description": exc.description},
                status=exc.status,
                headers={"Cache-Control": "no-store"},
            )
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    def _authenticated(self, request: web.Request, form: dict[str, str]) -> StandInClient:
        authorization = request.headers.get("Authorization", "")
        if authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:].strip()).decode()
                client_id, _, secret = decoded.partition(":")
                client_id, secret = urllib.parse.unquote_plus(client_id), urllib.parse.unquote_plus(secret)
            except (ValueError, UnicodeDecodeError):
                raise TokenRefused("invalid_client", "malformed Basic authentication", 401) from None
            return self._by_secret(client_id, secret)
        if "client_assertion" in form:
            return self._by_assertion(form)
        if "client_secret" in form:
            return self._by_secret(form.get("client_id", ""), form["client_secret"])
        raise TokenRefused("invalid_client", "the client did not authenticate", 401)

    def _by_secret(self, client_id: str, secret: str) -> StandInClient:
        client = self.clients.get(client_id)
        if client is None or client.secret is None or not hmac.compare_digest(client.secret, secret):
            raise TokenRefused("invalid_client", "unknown client or wrong secret", 401)
        return client

    def _by_assertion(self, form: dict[str, str]) -> StandInClient:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise TokenRefused("invalid_client", "unknown client_assertion_type", 401)
        assertion = form["client_assertion"]
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise TokenRefused("invalid_client", "the assertion is not a JWT", 401) from None
        client = self.clients.get(str(unverified.get("iss", "")))
        if client is None or client.public_key is None:
            raise TokenRefused("invalid_client", "unknown client", 401)
        try:
            claims = jwt.decode(
                assertion,
                client.public_key,
                algorithms=["RS256"],
                audience=[self._issuer(), self._endpoint("token")],
                options={"require": ["iss", "sub", "aud", "exp", "jti"]},
            )
        except jwt.PyJWTError:
            raise TokenRefused("invalid_client", "the assertion is not valid", 401) from None
        if claims["sub"] != client.client_id:
            raise TokenRefused("invalid_client", "the assertion's sub is not the client", 401)
        return client

    def _grant(self, client: StandInClient, form: dict[str, str]) -> dict[str, Any]:
        if form.get("grant_type") != "authorization_code":
            raise TokenRefused("unsupported_grant_type", "only authorization_code")
        code = form.get("code", "")
        if code in self._used:
            raise TokenRefused("invalid_grant", "the code has been used")
        grant = self._codes.pop(code, None)
        if grant is None:
            raise TokenRefused("invalid_grant", "unknown code")
        self._used.add(code)  # once presented, a code is spent, whatever else is wrong
        now = self.clock()
        if grant.expires < now:
            raise TokenRefused("invalid_grant", "the code has expired")
        if grant.client_id != client.client_id or form.get("redirect_uri") != grant.redirect_uri:
            raise TokenRefused("invalid_grant", "the code was given to another client or address")
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if not verifier or not hmac.compare_digest(challenge, grant.challenge):
            raise TokenRefused("invalid_grant", "the code_verifier does not match the challenge")
        claims: dict[str, Any] = {
            "iss": self._issuer(),
            "aud": client.client_id,
            "sub": _pairwise(grant.person.pid, client.client_id),
            "pid": grant.person.pid,
            "acr": grant.acr,
            "amr": ["TestID"],
            "auth_time": int(now),
            "iat": int(now),
            "exp": int(now) + self.token_lifetime,
            "locale": "nb",
        }
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        if self.tamper is not None:
            claims = self.tamper(claims)
        signer = self.sign_with or self.key
        id_token = jwt.encode(claims, signer, algorithm="RS256", headers={"kid": self.kid})
        return {
            "access_token": secrets.token_urlsafe(32),
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
            "id_token": id_token,
            "scope": "openid profile",
        }


def _pairwise(pid: str, client_id: str) -> str:
    """ID-porten's `sub`: the same person has another one at each client."""
    digest = hashlib.sha256(f"{client_id}:{pid}".encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _page(title: str, body: str, status: int = 200) -> web.Response:
    text = (
        f'<!doctype html><html lang="nb"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"</head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return web.Response(text=text, status=status, content_type="text/html")


@contextmanager
def serving(stand_in: IdportenStandIn, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve the stand-in from a background thread; yields its issuer URL (`http://host:port/`
    unless the stand-in was given one)."""
    with serve_in_background(stand_in.app(), host, port, name="idporten-stand-in") as bound:
        if stand_in.issuer is None:
            stand_in.issuer = f"http://{host}:{bound}/"
        yield stand_in.issuer
