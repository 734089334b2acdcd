"""Sign-in to the support page through OpenID Connect: ID-porten, or the employer's identity
provider (Entra ID and the like), by the authorization code flow with PKCE.

The protocol is Authlib's (the authorization address with its S256 code challenge, the token
request with the client's secret or its `private_key_jwt` assertion); the ID token is checked with
PyJWT against the provider's keys, read and cached by `hub.jwks.SigningKeys` as the gateway reads
Maskinporten's.

Every answer from the provider is hostile until checked, in this order, and each refusal has its
own `Refusal` (a page in the user's language and an audit entry, `hub.support.web`):

1. the browser brings back the cookie it was given when the sign-in began, and its hash finds
   the sign-in in the register (`OidcSignIn`, at most `PENDING_LIFETIME` old), which is deleted
   there and then: a sign-in is answered once;
2. the `state` in the answer is that sign-in's;
3. the provider did not answer with an error (the person cancelled, say);
4. the code is exchanged once, with the sign-in's PKCE verifier and the client's authentication
   (the hub never retries a code);
5. the ID token is signed by a key in the provider's JWKS (`kid`, RS256), by the configured
   issuer, for this client (`aud`), not expired, with the sign-in's `nonce`, at an accepted
   assurance level (`acr`);
6. the person (the configured claim: `pid` for ID-porten, else `sub`) is a user's linked identity
   (`hub users link`), and that user is not disabled. Nobody registers themselves.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import hmac
import logging
import secrets
import warnings
from pathlib import Path
from typing import Any

import aiohttp
import jwt
from authlib.deprecate import AuthlibDeprecationWarning

with warnings.catch_warnings():
    # Authlib 1.9 says at import that its httpx integration will move to httpx2; it works as it
    # is, and the warning would reach every `hub` command's stderr.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT

from hub.config import Settings
from hub.domain.identifiers import link_key
from hub.domain.redaction import clean
from hub.errors import ConfigurationError
from hub.jwks import SigningKeys
from hub.register.models import OidcSignIn, User
from hub.register.unit_of_work import UnitOfWork
from hub.support.access import AccessDenied, existing_user

log = logging.getLogger(__name__)

PENDING_LIFETIME = dt.timedelta(minutes=10)  # from the button to the provider's answer
CLOCK_SKEW_SECONDS = 30
READ_TIMEOUT_SECONDS = 10.0
ALGORITHMS = ["RS256"]  # what ID-porten and Entra ID sign ID tokens with


class Refusal(enum.Enum):
    """Why an answer from the identity provider was refused; the value is the audit entry's and
    the translation's key (`oidc.refused.<value>`)."""

    NO_SIGN_IN = "no_sign_in"  # no (or an expired) sign-in begun in this browser
    STATE = "state"
    PROVIDER_ERROR = "provider_error"
    CODE = "code"  # the code was not exchanged: used before, made up, or the provider refused us
    SIGNATURE = "signature"
    ISSUER = "issuer"
    AUDIENCE = "audience"
    EXPIRED = "expired"
    NONCE = "nonce"
    ACR = "acr"
    TOKEN = "token"  # anything else wrong with the ID token
    UNKNOWN_PERSON = "unknown_person"
    DISABLED = "disabled"
    UNAVAILABLE = "unavailable"  # the provider could not be reached


class Refused(Exception):
    """An answer from the identity provider the hub does not accept."""

    def __init__(self, refusal: Refusal, *, username: str | None = None, detail: str = "") -> None:
        super().__init__(refusal.value)
        self.refusal, self.username, self.detail = refusal, username, detail


@dataclasses.dataclass(frozen=True)
class ProviderSettings:
    """What the hub knows of its identity provider and of itself there."""

    issuer: str
    client_id: str
    client_secret: str | None
    private_key: str | None  # PEM, for private_key_jwt
    key_id: str | None
    scopes: str
    acr_values: tuple[str, ...]
    subject_claim: str
    redirect_url: str | None
    name: str

    @classmethod
    def from_settings(cls, settings: Settings) -> ProviderSettings | None:
        """The provider, or None if none is configured (then there is no such sign-in)."""
        if not settings.oidc_issuer:
            return None
        if not settings.oidc_client_id:
            raise ConfigurationError("NIR_OIDC_ISSUER needs NIR_OIDC_CLIENT_ID")
        secret = _read(settings.oidc_client_secret_file, "NIR_OIDC_CLIENT_SECRET_FILE")
        key = _read(settings.oidc_private_key_file, "NIR_OIDC_PRIVATE_KEY_FILE")
        if (secret is None) == (key is None):
            raise ConfigurationError(
                "the OpenID Connect client needs one of NIR_OIDC_CLIENT_SECRET_FILE and "
                "NIR_OIDC_PRIVATE_KEY_FILE"
            )
        return cls(
            issuer=settings.oidc_issuer,
            client_id=settings.oidc_client_id,
            client_secret=secret,
            private_key=key,
            key_id=settings.oidc_key_id or None,
            scopes=settings.oidc_scopes,
            acr_values=tuple(settings.oidc_acr_values.split()),
            subject_claim=settings.oidc_subject_claim,
            redirect_url=settings.oidc_redirect_url or None,
            name=settings.oidc_provider_name,
        )


def _read(path: str, variable: str) -> str | None:
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {variable} ({path}): {exc.strerror}") from None


@dataclasses.dataclass(frozen=True)
class Person:
    """Who the provider says signed in: its issuer, the subject (pid or sub) and the level."""

    issuer: str
    subject: str
    acr: str | None


def browser_hash(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


def begin(uow: UnitOfWork, next_path: str, language: str, now: dt.datetime) -> tuple[str, Pending]:
    """A new sign-in: the browser's cookie (only its hash is kept) and what the answer must
    match. Sign-ins begun too long ago are forgotten."""
    uow.users.forget_oidc_sign_ins_before(now - PENDING_LIFETIME)
    cookie = secrets.token_urlsafe(32)
    pending = OidcSignIn(
        browser_hash=browser_hash(cookie),
        state=secrets.token_urlsafe(32),
        nonce=secrets.token_urlsafe(32),
        code_verifier=secrets.token_urlsafe(64),  # 86 characters, within PKCE's 43..128
        next_path=next_path,
        language=language,
        started_at=now,
    )
    uow.users.add_oidc_sign_in(pending)
    return cookie, Pending(pending.state, pending.nonce, pending.code_verifier, next_path, language)


@dataclasses.dataclass(frozen=True)
class Pending:
    """A sign-in taken from the register to be finished (the row itself is gone)."""

    state: str
    nonce: str
    code_verifier: str
    next_path: str
    language: str


def take(uow: UnitOfWork, cookie: str | None, now: dt.datetime) -> Pending | None:
    """The sign-in this browser began, removed so that it is answered once; None if there is
    none (no cookie, another browser's, or begun too long ago)."""
    if not cookie:
        return None
    row = uow.users.take_oidc_sign_in(browser_hash(cookie))
    if row is None:
        return None
    if _aware(row.started_at) < now - PENDING_LIFETIME:
        return None
    return Pending(row.state, row.nonce, row.code_verifier, row.next_path, row.language)


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)  # SQLite's


class Provider:
    """The identity provider: its discovery document (read once, then kept), its keys (cached),
    the authorization address, the code's exchange and the ID token's checks."""

    def __init__(self, config: ProviderSettings, *, keys: SigningKeys | None = None) -> None:
        self.config = config
        self._metadata: dict[str, Any] | None = None
        self._keys = keys

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            address = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
            try:
                async with (
                    aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=READ_TIMEOUT_SECONDS)) as web,
                    web.get(address) as response,
                ):
                    response.raise_for_status()
                    document = await response.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                log.warning(
                    "could not read %s's discovery document at %s (%s)",
                    self.config.name,
                    address,
                    type(exc).__name__,
                )
                raise Refused(Refusal.UNAVAILABLE) from None
            # A document that names another issuer is another provider's (OpenID Connect
            # Discovery 1.0, 4.3).
            if not isinstance(document, dict) or document.get("issuer") != self.config.issuer:
                log.warning("%s's discovery document names another issuer", self.config.name)
                raise Refused(Refusal.UNAVAILABLE)
            for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(document.get(name), str):
                    log.warning("%s's discovery document has no %s", self.config.name, name)
                    raise Refused(Refusal.UNAVAILABLE)
            self._metadata = document
        return self._metadata

    async def keys(self) -> SigningKeys:
        if self._keys is None:
            self._keys = SigningKeys((await self.metadata())["jwks_uri"], name=self.config.name)
        return self._keys

    def _client(self, redirect_url: str) -> AsyncOAuth2Client:
        config = self.config
        if config.private_key is not None:
            # ID-porten wants the assertion's audience to be its issuer; a fresh assertion (and
            # jti) per request, so no claims dict is shared between them.
            auth = PrivateKeyJWT(
                token_endpoint=config.issuer, headers={"kid": config.key_id} if config.key_id else None
            )
            client = AsyncOAuth2Client(
                config.client_id,
                config.private_key,
                token_endpoint_auth_method=auth,
                redirect_uri=redirect_url,
                scope=config.scopes,
                code_challenge_method="S256",
                timeout=READ_TIMEOUT_SECONDS,
            )
        else:
            client = AsyncOAuth2Client(
                config.client_id,
                config.client_secret,
                token_endpoint_auth_method="client_secret_basic",
                redirect_uri=redirect_url,
                scope=config.scopes,
                code_challenge_method="S256",
                timeout=READ_TIMEOUT_SECONDS,
            )
        return client

    async def authorization_url(self, pending: Pending, redirect_url: str, language: str) -> str:
        metadata = await self.metadata()
        extra: dict[str, str] = {"nonce": pending.nonce, "ui_locales": language}
        if self.config.acr_values:
            extra["acr_values"] = self.config.acr_values[0]
        async with self._client(redirect_url) as client:
            url, _ = client.create_authorization_url(
                metadata["authorization_endpoint"],
                state=pending.state,
                code_verifier=pending.code_verifier,
                **extra,
            )
        return str(url)

    async def exchange(self, code: str, pending: Pending, redirect_url: str) -> str:
        """The ID token for `code`, asked for once."""
        metadata = await self.metadata()
        try:
            async with self._client(redirect_url) as client:
                token = await client.fetch_token(
                    metadata["token_endpoint"],
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=pending.code_verifier,
                    redirect_uri=redirect_url,
                )
        except Exception as exc:  # the provider's refusal, or no answer: either way no token
            log.warning("%s did not exchange the code (%s)", self.config.name, type(exc).__name__)
            raise Refused(Refusal.CODE, detail=type(exc).__name__) from None
        id_token = token.get("id_token") if isinstance(token, dict) else None
        if not isinstance(id_token, str):
            raise Refused(Refusal.TOKEN, detail="no id_token")
        return id_token

    async def verify(self, id_token: str, nonce: str, now: dt.datetime) -> Person:
        """The person an ID token names, once every check of it has passed."""
        config = self.config
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.InvalidTokenError:
            raise Refused(Refusal.TOKEN, detail="not a JWT") from None
        kid = header.get("kid")
        if header.get("alg") not in ALGORITHMS or not isinstance(kid, str):
            raise Refused(Refusal.SIGNATURE, detail="algorithm or kid")
        key = await (await self.keys()).key(kid)
        if key is None:
            raise Refused(Refusal.SIGNATURE, detail="unknown kid")
        try:
            claims = jwt.decode(
                id_token,
                key,
                algorithms=ALGORITHMS,
                audience=config.client_id,
                issuer=config.issuer,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["iss", "aud", "exp", "iat", "sub"], "verify_iat": False},
            )
        except jwt.InvalidSignatureError:
            raise Refused(Refusal.SIGNATURE) from None
        except jwt.InvalidIssuerError:
            raise Refused(Refusal.ISSUER) from None
        except jwt.InvalidAudienceError:
            raise Refused(Refusal.AUDIENCE) from None
        except jwt.ExpiredSignatureError:
            raise Refused(Refusal.EXPIRED) from None
        except jwt.InvalidTokenError as exc:
            raise Refused(Refusal.TOKEN, detail=type(exc).__name__) from None
        # PyJWT checked exp against the machine's clock; the hub's clock (a test's) decides too.
        if claims["exp"] + CLOCK_SKEW_SECONDS < now.timestamp():
            raise Refused(Refusal.EXPIRED)
        # With several audiences, the token must have been issued to this client (OIDC Core 3.1.3.7).
        if isinstance(claims["aud"], list) and claims.get("azp") != config.client_id:
            raise Refused(Refusal.AUDIENCE, detail="azp")
        token_nonce = claims.get("nonce")
        if not isinstance(token_nonce, str) or not hmac.compare_digest(token_nonce, nonce):
            raise Refused(Refusal.NONCE)
        acr = claims.get("acr")
        if config.acr_values and acr not in config.acr_values:
            raise Refused(Refusal.ACR, detail=f"acr {clean(str(acr), 64)}")
        subject = claims.get(config.subject_claim)
        if not isinstance(subject, str) or not subject or len(subject) > 256:
            raise Refused(Refusal.TOKEN, detail=f"no {config.subject_claim}")
        return Person(config.issuer, subject, acr if isinstance(acr, str) else None)


def linked_user(uow: UnitOfWork, person: Person) -> User:
    """The user linked to `person`; a person no user is linked to is refused."""
    user = uow.users.linked_to(person.issuer, link_key(person.subject))
    if user is None:
        raise Refused(Refusal.UNKNOWN_PERSON)
    if user.disabled:
        raise Refused(Refusal.DISABLED, username=user.username)
    return user


def link_user(
    uow: UnitOfWork, username: str, issuer: str, subject: str, actor: str, now: dt.datetime
) -> None:
    """Link `username` to a person at an identity provider, who may then sign in as that user.
    Audited, with the subject masked where it is an identity number (ID-porten's pid)."""
    if not issuer.strip() or not subject.strip() or len(issuer) > 512 or len(subject) > 256:
        raise AccessDenied("the issuer and the subject must be given (at most 512 and 256 characters)")
    user = existing_user(uow, username)
    kept = link_key(subject)
    other = uow.users.linked_to(issuer, kept)
    if other is not None and other.id != user.id:
        raise AccessDenied(f"that person is already linked to the user {other.username!r}")
    user.external_issuer, user.external_subject = issuer, kept
    uow.audit.record(
        actor,
        "link_user",
        now,
        detail=f"user {username} to {clean(subject, 64)} at {clean(issuer, 200)}",
    )


def unlink_user(uow: UnitOfWork, username: str, actor: str, now: dt.datetime) -> None:
    """The user can no longer sign in through an identity provider."""
    user = existing_user(uow, username)
    user.external_issuer = user.external_subject = None
    uow.audit.record(actor, "unlink_user", now, detail=f"user {username}")
