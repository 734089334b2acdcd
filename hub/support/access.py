"""Who may see and do what in support: users, password hashes, sign-in with its lockout,
expiring sessions, the municipality scope of a user, and the audit log of views of personal data
and actions.

Passwords are hashed with scrypt (the standard library's), salted per user; only a hash of a
session token is stored. IMDi support sees every ticket; a municipality's super user sees and
acts on only their own municipality's tickets (what "their own" is, is `hub.support.scope`'s).

Sign-in failures are kept in the register (`SignInAttempt`), by the username tried and the client
address, so a lockout holds across restarts and every worker. A username with too many recent
failures from one address is refused from that address for a while even with the right
password, so someone who knows a colleague's username cannot lock them out from another address;
a username's failures from every address together lock it too, at a much higher count over a
longer window (guessing from many addresses is slowed, a colleague is locked out only by a flood);
and an address with too many failures is refused for every username. Unknown usernames are
counted and locked the same way, and checked against a stand-in hash, so neither the answer nor
its timing tells whether a username exists.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from hub.config import Settings
from hub.domain.calendar import as_utc
from hub.errors import HubError
from hub.register.models import PendingSignIn, SignInAttempt, User
from hub.register.unit_of_work import UnitOfWork
from hub.support import second_factor
from hub.support.second_factor import Sealer

_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
SESSION_LIFETIME = dt.timedelta(hours=8)
# Time enough to open the authenticator app, or to scan a QR code and type the first code.
PENDING_LIFETIME = dt.timedelta(minutes=10)
PASSWORD_MIN_LENGTH = 12


class Role(enum.Enum):
    IMDI_SUPPORT = "imdi_support"
    MUNICIPALITY_SUPERUSER = "municipality_superuser"
    # The municipality's administrative user: manages its municipality's users
    # (`hub.support.administration`) and may do what its super user does.
    MUNICIPALITY_ADMIN = "municipality_admin"

    @property
    def municipal(self) -> bool:
        """A role of one municipality's, which needs that municipality."""
        return self is not Role.IMDI_SUPPORT


class AccessDenied(HubError):
    """The user may not see or act on this."""

    code = "NIR-ACCESS"


class NoSuchTicket(AccessDenied):
    """The ticket does not exist, or the user may not see it: the same answer for both."""

    def __init__(self, ticket_id: int) -> None:
        super().__init__(f"there is no ticket {ticket_id}")
        self.ticket_id = ticket_id


class SessionEnded(AccessDenied):
    """The session token opens nothing (expired, signed out, or the user is disabled)."""

    def __init__(self, message: str, *, disabled: bool = False) -> None:
        super().__init__(message)
        self.disabled = disabled


class UserStore(Protocol):
    """What the sign-in's lockout and the administration of users need of `uow.users`
    (`hub.register.users.UsersRepository`; in unit tests, an in-memory fake)."""

    def add(self, user: User) -> User: ...
    def named(self, username: str) -> User | None: ...
    def every(self) -> list[User]: ...
    def of_municipality(self, municipality: str | None, roles: Iterable[str]) -> list[User]: ...
    def forget_second_factor(self, user: User) -> None: ...
    def end_sessions_of(self, user: User) -> None: ...
    def add_attempt(self, username: str, client_address: str, now: dt.datetime) -> SignInAttempt: ...
    def attempt(self, attempt_id: int) -> SignInAttempt: ...
    def forget_attempt(self, attempt: SignInAttempt) -> None: ...
    def forget_attempts_before(self, moment: dt.datetime) -> None: ...
    def forget_attempts_of(self, username: str, client_address: str | None = None) -> None: ...
    def failure_times(
        self,
        *,
        username: str | None,
        client_address: str | None,
        other_than: int,
        until: dt.datetime,
        limit: int,
    ) -> list[dt.datetime]: ...
    def failure_count(
        self, *, username: str | None, client_address: str | None, since: dt.datetime
    ) -> int: ...
    def attempts_of(self, username: str, since: dt.datetime) -> list[SignInAttempt]: ...
    def add_pending(self, token_hash: str, user_id: int, expires_at: dt.datetime) -> PendingSignIn: ...
    def forget_pending_expired(self, now: dt.datetime) -> None: ...


class AuditLog(Protocol):
    """What they need of `uow.audit` (`hub.register.audit.AuditRepository`)."""

    def record(
        self,
        username: str,
        action: str,
        now: dt.datetime,
        *,
        ticket_id: int | None = None,
        detail: str | None = None,
    ) -> None: ...


class UsersUnit(Protocol):
    """A unit of work as far as the lockout and the administration of users see it: the real
    `UnitOfWork` is one."""

    @property
    def users(self) -> UserStore: ...

    @property
    def audit(self) -> AuditLog: ...


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


@functools.cache
def _stand_in_hash() -> str:
    """What a password for an unknown username is checked against: the same scrypt work as for a
    real user, so the time of the answer does not tell whether the username exists."""
    return hash_password(secrets.token_urlsafe(16))


def check_new_password(username: str, password: str) -> None:
    """`AccessDenied` unless `password` is fit to be set for `username`."""
    if len(password) < PASSWORD_MIN_LENGTH:
        raise AccessDenied(f"the password must have at least {PASSWORD_MIN_LENGTH} characters")
    if password.strip().casefold() == username.strip().casefold():
        raise AccessDenied("the password must not be the username")


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), **_SCRYPT)
    return hmac.compare_digest(candidate, base64.b64decode(digest))


def create_user(
    uow: UsersUnit, username: str, password: str, role: Role, municipality: str | None, now: dt.datetime
) -> User:
    if role.municipal and not municipality:
        raise AccessDenied("a municipality user needs a municipality")
    check_new_password(username, password)
    user = User(
        username=username,
        password_hash=hash_password(password),
        role=role.value,
        municipality=municipality if role.municipal else None,
        created_at=now,
        disabled=False,
    )
    return uow.users.add(user)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class Throttle:
    """How failed sign-ins are answered: the lockout's thresholds and the growing wait."""

    user_limit: int = 5  # one username from one address, within `window`
    address_limit: int = 50  # one address, any username, within `window`
    window: dt.timedelta = dt.timedelta(minutes=15)
    lockout: dt.timedelta = dt.timedelta(minutes=15)
    username_limit: int = 100  # one username from every address, within `username_window`
    username_window: dt.timedelta = dt.timedelta(hours=1)
    first_delay: float = 0.5
    max_delay: float = 8.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Throttle:
        return cls(
            user_limit=settings.signin_failure_limit,
            address_limit=settings.signin_address_failure_limit,
            window=dt.timedelta(seconds=settings.signin_window_seconds),
            lockout=dt.timedelta(seconds=settings.signin_lockout_seconds),
            first_delay=settings.signin_delay_seconds,
            max_delay=settings.signin_delay_max_seconds,
            username_limit=settings.signin_user_failure_limit,
            username_window=dt.timedelta(seconds=settings.signin_user_window_seconds),
        )

    @property
    def kept(self) -> dt.timedelta:
        """How long a failure can still count."""
        return max(self.window, self.username_window) + self.lockout

    def delay(self, failures: int) -> float:
        """Seconds the answer to a failed sign-in waits, doubling with each recent failure."""
        if failures < 1:
            return 0.0
        return min(self.max_delay, self.first_delay * 2 ** min(failures - 1, 32))

    def locked_until(
        self, newest_first: Sequence[dt.datetime], limit: int, window: dt.timedelta | None = None
    ) -> dt.datetime | None:
        """The end of the lockout that recent failures (newest first) impose, if any: `limit`
        failures within the window (`self.window` unless given) lock for `lockout` after the
        newest of them."""
        if len(newest_first) < limit:
            return None
        newest, oldest = newest_first[0], newest_first[limit - 1]
        return newest + self.lockout if newest - oldest < (window or self.window) else None


class Refusal(enum.Enum):
    """Why a sign-in failed, for the audit log; the person signing in is told less."""

    UNKNOWN_USER = "unknown_user"
    WRONG_PASSWORD = "wrong_password"
    DISABLED = "disabled"
    LOCKED = "locked"
    WRONG_CODE = "wrong_code"
    PENDING_ENDED = "pending_ended"  # the pending sign-in expired, or was never made


@dataclasses.dataclass(frozen=True)
class SignIn:
    """A pending sign-in's token (the password was right), or why there is none and how long to
    wait before saying so."""

    token: str | None  # a pending sign-in's (`PendingSignIn`): the second factor is still to come
    refusal: Refusal | None = None
    delay: float = 0.0
    must_enrol: bool = False  # the user has no second factor yet: it is enrolled first


def sign_in(
    units: Callable[[], UnitOfWork],
    username: str,
    password: str,
    now: dt.datetime,
    *,
    client_address: str,
    sealer: Sealer,
    throttle: Throttle | None = None,
) -> SignIn:
    """Check a sign-in's password in two transactions. The attempt is first kept as a failure
    and committed, so concurrent guesses on every worker count against each other before any
    password is checked; the second decides, audits, and forgets the attempt if it succeeded.
    A right password makes a pending sign-in (`SignIn.token`), never a session: the second
    factor (`give_second_factor`) makes that."""
    throttle = throttle or Throttle()
    with units() as uow:
        attempt_id = begin_sign_in(uow, username, client_address, now, throttle)
        uow.commit()
    with units() as uow:
        outcome = finish_sign_in(uow, attempt_id, password, now, throttle, sealer)
        uow.commit()
    return outcome


def begin_sign_in(
    uow: UsersUnit, username: str, client_address: str, now: dt.datetime, throttle: Throttle
) -> int:
    """Keep the attempt as a failure until it is proven right, and forget attempts too old to
    count. The attempt's id."""
    uow.users.forget_attempts_before(now - throttle.kept)
    return uow.users.add_attempt(username, client_address[:64], now).id


def finish_sign_in(
    uow: UsersUnit, attempt_id: int, password: str, now: dt.datetime, throttle: Throttle, sealer: Sealer
) -> SignIn:
    attempt = uow.users.attempt(attempt_id)
    username, address = attempt.username, attempt.client_address
    if _locked(uow, attempt, now, throttle):
        # A refused attempt is no guess: it neither counts nor lengthens the lockout.
        uow.users.forget_attempt(attempt)
        return _refused(uow, attempt, Refusal.LOCKED, now, throttle)
    user = uow.users.named(username)
    matches = verify_password(password, user.password_hash if user is not None else _stand_in_hash())
    if user is None:
        return _refused(uow, attempt, Refusal.UNKNOWN_USER, now, throttle)
    if not matches:
        return _refused(uow, attempt, Refusal.WRONG_PASSWORD, now, throttle)
    if user.disabled:
        return _refused(uow, attempt, Refusal.DISABLED, now, throttle)
    # The password alone opens no session: a pending sign-in, for the second factor. This
    # attempt is no failure; the earlier ones stay until the second factor is given too, or
    # knowing the password would wipe the count of wrong codes.
    uow.users.forget_attempt(attempt)
    uow.users.forget_pending_expired(now)
    token = secrets.token_urlsafe(32)
    must_enrol = user.totp_secret is None
    pending = uow.users.add_pending(_token_hash(token), user.id, now + PENDING_LIFETIME)
    if must_enrol:
        pending.enrol_secret = sealer.seal(second_factor.new_secret(), user.id)
    uow.audit.record(username, "password_accepted", now, detail=f"from {address}")
    return SignIn(token, must_enrol=must_enrol)


def _locked(uow: UsersUnit, attempt: SignInAttempt, now: dt.datetime, throttle: Throttle) -> bool:
    for username, address, limit, window in (
        (attempt.username, attempt.client_address, throttle.user_limit, throttle.window),
        (None, attempt.client_address, throttle.address_limit, throttle.window),
        (attempt.username, None, throttle.username_limit, throttle.username_window),
    ):
        recent = uow.users.failure_times(
            username=username, client_address=address, other_than=attempt.id, until=now, limit=limit
        )
        until = throttle.locked_until([as_utc(at) for at in recent], limit, window)
        if until is not None and until > now:
            return True
    return False


def _refused(
    uow: UsersUnit, attempt: SignInAttempt, refusal: Refusal, now: dt.datetime, throttle: Throttle
) -> SignIn:
    uow.audit.record(
        attempt.username,
        "sign_in_failed",
        now,
        detail=f"{refusal.value} from {attempt.client_address}",
    )
    since = now - throttle.window
    # By this address's failures only: another's guesses elsewhere do not slow a colleague down.
    failures = max(
        uow.users.failure_count(
            username=attempt.username, client_address=attempt.client_address, since=since
        ),
        uow.users.failure_count(username=None, client_address=attempt.client_address, since=since),
    )
    return SignIn(None, refusal, throttle.delay(failures))


# The second factor: a pending sign-in (the password was right) is completed by a TOTP code, or
# an unused recovery code; a user without a second factor enrols one first.


@dataclasses.dataclass(frozen=True)
class Pending:
    """A pending sign-in, for its page: whose, and the secret to enrol if they have none yet."""

    username: str
    enrol_secret: str | None


def pending_sign_in(uow: UnitOfWork, token: str, now: dt.datetime, sealer: Sealer) -> Pending | None:
    """The pending sign-in `token` opens, if it has not expired."""
    found = _pending(uow, token, now)
    if found is None:
        return None
    user = uow.users.with_id(found.user_id)
    secret = sealer.open(found.enrol_secret, user.id) if found.enrol_secret else None
    return Pending(user.username, secret)


def _pending(uow: UnitOfWork, token: str, now: dt.datetime) -> PendingSignIn | None:
    found = uow.users.pending(_token_hash(token))
    return found if found is not None and as_utc(found.expires_at) > now else None


@dataclasses.dataclass(frozen=True)
class SecondFactor:
    """A new session's token, and the recovery codes to show once if the second factor was just
    enrolled; or why there is none and how long to wait before saying so."""

    token: str | None
    refusal: Refusal | None = None
    delay: float = 0.0
    recovery_codes: tuple[str, ...] = ()


def give_second_factor(
    units: Callable[[], UnitOfWork],
    pending_token: str,
    code: str,
    now: dt.datetime,
    *,
    client_address: str,
    sealer: Sealer,
    throttle: Throttle | None = None,
) -> SecondFactor:
    """Complete a pending sign-in with a code, counted like a password: the attempt is kept as
    a failure and committed first, so a wrong code counts against the same lockout as a wrong
    password, on every worker at once."""
    throttle = throttle or Throttle()
    with units() as uow:
        pending = _pending(uow, pending_token, now)
        if pending is None:
            return SecondFactor(None, Refusal.PENDING_ENDED)
        username = uow.users.with_id(pending.user_id).username
        attempt_id = begin_sign_in(uow, username, client_address, now, throttle)
        uow.commit()
    with units() as uow:
        outcome = _finish_second_factor(uow, attempt_id, pending_token, code, now, throttle, sealer)
        uow.commit()
    return outcome


def _finish_second_factor(
    uow: UnitOfWork,
    attempt_id: int,
    pending_token: str,
    code: str,
    now: dt.datetime,
    throttle: Throttle,
    sealer: Sealer,
) -> SecondFactor:
    attempt = uow.users.attempt(attempt_id)
    pending = _pending(uow, pending_token, now)
    if pending is None:  # used by a concurrent request meanwhile
        uow.users.forget_attempt(attempt)
        return SecondFactor(None, Refusal.PENDING_ENDED)
    if _locked(uow, attempt, now, throttle):
        uow.users.forget_attempt(attempt)
        return _code_refused(uow, attempt, Refusal.LOCKED, now, throttle)
    user = uow.users.with_id(pending.user_id)
    if user.disabled:
        return _code_refused(uow, attempt, Refusal.DISABLED, now, throttle)
    recovery_codes: tuple[str, ...] = ()
    how = ""
    if pending.enrol_secret is not None:
        secret = sealer.open(pending.enrol_secret, user.id)
        step = second_factor.matching_step(secret, code, now, None) if secret else None
        if step is None or user.totp_secret is not None:
            return _code_refused(uow, attempt, Refusal.WRONG_CODE, now, throttle)
        user.totp_secret, user.totp_enrolled_at, user.totp_last_step = pending.enrol_secret, now, step
        recovery_codes = _new_recovery_codes(uow, user)
        how = ", second factor enrolled"
        uow.audit.record(user.username, "second_factor_enrolled", now)
    elif _accept_code(uow, user, code, now, sealer):
        pass
    elif _use_recovery_code(uow, user, code, now):
        how = ", with a recovery code"
    else:
        return _code_refused(uow, attempt, Refusal.WRONG_CODE, now, throttle)
    # The failures from this address no longer count against the user (the address's own do;
    # so do others' from elsewhere, or a success would wipe a flood's trace).
    uow.users.forget_attempts_of(user.username, attempt.client_address)
    uow.users.forget_pending(pending)
    token = open_session(uow, user, now, detail=f"from {attempt.client_address}{how}")
    return SecondFactor(token, recovery_codes=recovery_codes)


def _accept_code(uow: UnitOfWork, user: User, code: str, now: dt.datetime, sealer: Sealer) -> bool:
    """Whether `code` is the user's current TOTP code, not used before. The last step used is
    moved on in one conditional update, so of two requests with one code only one succeeds."""
    secret = sealer.open(user.totp_secret, user.id) if user.totp_secret else None
    if secret is None:
        return False
    step = second_factor.matching_step(secret, code, now, user.totp_last_step)
    if step is None:
        return False
    return uow.users.move_totp_step(user, step)


def _use_recovery_code(uow: UnitOfWork, user: User, code: str, now: dt.datetime) -> bool:
    digest = second_factor.recovery_code_hash(code)
    if digest is None:
        return False
    return uow.users.use_recovery_code(user, digest, now)


def _new_recovery_codes(uow: UnitOfWork, user: User) -> tuple[str, ...]:
    """New recovery codes for `user`, replacing any they had; the codes themselves are shown
    once and never stored."""
    codes = second_factor.new_recovery_codes()
    digests = []
    for code in codes:
        digest = second_factor.recovery_code_hash(code)
        assert digest is not None
        digests.append(digest)
    uow.users.replace_recovery_codes(user, digests)
    return tuple(codes)


def _code_refused(
    uow: UnitOfWork, attempt: SignInAttempt, refusal: Refusal, now: dt.datetime, throttle: Throttle
) -> SecondFactor:
    refused = _refused(uow, attempt, refusal, now, throttle)
    return SecondFactor(None, refused.refusal, refused.delay)


def open_session(uow: UnitOfWork, user: User, now: dt.datetime, *, detail: str) -> str:
    """A new session for `user`, audited as a sign-in; its token (only the hash is kept)."""
    token = secrets.token_urlsafe(32)
    uow.users.add_session(_token_hash(token), user.id, now + SESSION_LIFETIME)
    user.last_sign_in_at = now
    uow.audit.record(user.username, "sign_in", now, detail=detail)
    return token


def user_for_token(uow: UnitOfWork, token: str, now: dt.datetime) -> User:
    found = uow.users.session_for(_token_hash(token))
    if found is None or as_utc(found.expires_at) <= now:
        raise SessionEnded("the session has expired; sign in again")
    user = uow.users.with_id(found.user_id)
    if user.disabled:
        raise SessionEnded("the user is disabled", disabled=True)
    return user


def sign_out(uow: UnitOfWork, token: str) -> None:
    """End the session at once (the token stops working before it would have expired)."""
    found = uow.users.session_for(_token_hash(token))
    if found is not None:
        uow.users.end_session(found)


def form_token(session_token: str) -> str:
    """The anti-forgery value a signed-in page puts in its forms: derived from the session
    token, so another site cannot know it, and nothing more needs storing."""
    return hashlib.sha256(b"nir-support-form:" + session_token.encode()).hexdigest()


# Administration of users (the `hub users` commands); each act is audited under who did it.


@dataclasses.dataclass(frozen=True)
class UserListing:
    username: str
    role: str
    municipality: str | None
    disabled: bool
    last_sign_in_at: dt.datetime | None
    locked_until: dt.datetime | None


def list_users(uow: UsersUnit, now: dt.datetime, throttle: Throttle) -> list[UserListing]:
    """Every user, without any hash, and until when each username is locked out: from every
    address, or from at least one (the latest end of either)."""
    listing = []
    for user in uow.users.every():
        recent = uow.users.attempts_of(user.username, now - throttle.kept)
        by_address: dict[str, list[dt.datetime]] = {}
        for a in recent:
            by_address.setdefault(a.client_address, []).append(as_utc(a.at))
        ends = [
            throttle.locked_until(
                [as_utc(a.at) for a in recent], throttle.username_limit, throttle.username_window
            ),
            *(throttle.locked_until(times, throttle.user_limit) for times in by_address.values()),
        ]
        until = max((end for end in ends if end is not None and end > now), default=None)
        listing.append(
            UserListing(
                username=user.username,
                role=user.role,
                municipality=user.municipality,
                disabled=user.disabled,
                last_sign_in_at=as_utc(user.last_sign_in_at) if user.last_sign_in_at else None,
                locked_until=until,
            )
        )
    return listing


def disable_user(uow: UsersUnit, username: str, actor: str, now: dt.datetime) -> None:
    """The user can no longer sign in, and every session of theirs ends now."""
    user = existing_user(uow, username)
    user.disabled = True
    uow.users.end_sessions_of(user)
    uow.audit.record(actor, "disable_user", now, detail=f"user {username}")


def enable_user(uow: UsersUnit, username: str, actor: str, now: dt.datetime) -> None:
    """The user may sign in again, and any lockout of their username is lifted."""
    user = existing_user(uow, username)
    user.disabled = False
    uow.users.forget_attempts_of(username)
    uow.audit.record(actor, "enable_user", now, detail=f"user {username}")


def set_password(uow: UsersUnit, username: str, password: str, actor: str, now: dt.datetime) -> None:
    """A new password; the sessions opened with the old one end."""
    user = existing_user(uow, username)
    check_new_password(username, password)
    user.password_hash = hash_password(password)
    uow.users.end_sessions_of(user)
    uow.audit.record(actor, "set_password", now, detail=f"user {username}")


def reset_second_factor(uow: UsersUnit, username: str, actor: str, now: dt.datetime) -> None:
    """The user's second factor and recovery codes are forgotten, and their sessions and
    pending sign-ins end: at their next sign-in they enrol a new one."""
    user = existing_user(uow, username)
    uow.users.forget_second_factor(user)
    uow.users.end_sessions_of(user)
    uow.audit.record(actor, "reset_second_factor", now, detail=f"user {username}")


def existing_user(uow: UsersUnit, username: str) -> User:
    """The user `username`; `AccessDenied` if there is none."""
    user = uow.users.named(username)
    if user is None:
        raise AccessDenied(f"there is no user {username!r}")
    return user
