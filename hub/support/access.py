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
from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from hub.config import Settings
from hub.domain.calendar import as_utc
from hub.errors import HubError
from hub.register.audit import AuditRepository
from hub.register.models import (
    PendingSignIn,
    RecoveryCode,
    SignInAttempt,
    User,
    UserSession,
)
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
    session: Session, username: str, password: str, role: Role, municipality: str | None, now: dt.datetime
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
    session.add(user)
    session.flush()
    return user


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
    session_factory: sessionmaker[Session],
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
    with UnitOfWork(session_factory) as uow:
        attempt_id = begin_sign_in(uow.session, username, client_address, now, throttle)
        uow.commit()
    with UnitOfWork(session_factory) as uow:
        outcome = finish_sign_in(uow.session, attempt_id, password, now, throttle, sealer)
        uow.commit()
    return outcome


def begin_sign_in(
    session: Session, username: str, client_address: str, now: dt.datetime, throttle: Throttle
) -> int:
    """Keep the attempt as a failure until it is proven right, and forget attempts too old to
    count. The attempt's id."""
    session.execute(delete(SignInAttempt).where(SignInAttempt.at < now - throttle.kept))
    attempt = SignInAttempt(at=now, username=username, client_address=client_address[:64])
    session.add(attempt)
    session.flush()
    return attempt.id


def finish_sign_in(
    session: Session, attempt_id: int, password: str, now: dt.datetime, throttle: Throttle, sealer: Sealer
) -> SignIn:
    attempt = session.get_one(SignInAttempt, attempt_id)
    username, address = attempt.username, attempt.client_address
    if _locked(session, attempt, now, throttle):
        # A refused attempt is no guess: it neither counts nor lengthens the lockout.
        session.delete(attempt)
        return _refused(session, attempt, Refusal.LOCKED, now, throttle)
    user = user_named(session, username)
    matches = verify_password(password, user.password_hash if user is not None else _stand_in_hash())
    if user is None:
        return _refused(session, attempt, Refusal.UNKNOWN_USER, now, throttle)
    if not matches:
        return _refused(session, attempt, Refusal.WRONG_PASSWORD, now, throttle)
    if user.disabled:
        return _refused(session, attempt, Refusal.DISABLED, now, throttle)
    # The password alone opens no session: a pending sign-in, for the second factor. This
    # attempt is no failure; the earlier ones stay until the second factor is given too, or
    # knowing the password would wipe the count of wrong codes.
    session.delete(attempt)
    session.execute(delete(PendingSignIn).where(PendingSignIn.expires_at < now))
    token = secrets.token_urlsafe(32)
    must_enrol = user.totp_secret is None
    pending = PendingSignIn(token_hash=_token_hash(token), user_id=user.id, expires_at=now + PENDING_LIFETIME)
    session.add(pending)
    session.flush()
    if must_enrol:
        pending.enrol_secret = sealer.seal(second_factor.new_secret(), user.id)
    audit(session, username, "password_accepted", now, detail=f"from {address}")
    return SignIn(token, must_enrol=must_enrol)


def _pair(attempt: SignInAttempt) -> ColumnElement[bool]:
    return and_(
        SignInAttempt.username == attempt.username, SignInAttempt.client_address == attempt.client_address
    )


def _locked(session: Session, attempt: SignInAttempt, now: dt.datetime, throttle: Throttle) -> bool:
    for where, limit, window in (
        (_pair(attempt), throttle.user_limit, throttle.window),
        (SignInAttempt.client_address == attempt.client_address, throttle.address_limit, throttle.window),
        (SignInAttempt.username == attempt.username, throttle.username_limit, throttle.username_window),
    ):
        recent = session.scalars(
            select(SignInAttempt.at)
            .where(where, SignInAttempt.id != attempt.id, SignInAttempt.at <= now)
            .order_by(SignInAttempt.at.desc(), SignInAttempt.id.desc())
            .limit(limit)
        ).all()
        until = throttle.locked_until([as_utc(at) for at in recent], limit, window)
        if until is not None and until > now:
            return True
    return False


def _refused(
    session: Session, attempt: SignInAttempt, refusal: Refusal, now: dt.datetime, throttle: Throttle
) -> SignIn:
    audit(
        session,
        attempt.username,
        "sign_in_failed",
        now,
        detail=f"{refusal.value} from {attempt.client_address}",
    )
    since = now - throttle.window
    # By this address's failures only: another's guesses elsewhere do not slow a colleague down.
    failures = max(
        _count(session, _pair(attempt), since),
        _count(session, SignInAttempt.client_address == attempt.client_address, since),
    )
    return SignIn(None, refusal, throttle.delay(failures))


def _count(session: Session, where: ColumnElement[bool], since: dt.datetime) -> int:
    return session.scalar(select(func.count()).where(where, SignInAttempt.at > since)) or 0


# The second factor: a pending sign-in (the password was right) is completed by a TOTP code, or
# an unused recovery code; a user without a second factor enrols one first.


@dataclasses.dataclass(frozen=True)
class Pending:
    """A pending sign-in, for its page: whose, and the secret to enrol if they have none yet."""

    username: str
    enrol_secret: str | None


def pending_sign_in(session: Session, token: str, now: dt.datetime, sealer: Sealer) -> Pending | None:
    """The pending sign-in `token` opens, if it has not expired."""
    found = _pending(session, token, now)
    if found is None:
        return None
    user = session.get_one(User, found.user_id)
    secret = sealer.open(found.enrol_secret, user.id) if found.enrol_secret else None
    return Pending(user.username, secret)


def _pending(session: Session, token: str, now: dt.datetime) -> PendingSignIn | None:
    found = session.scalar(select(PendingSignIn).where(PendingSignIn.token_hash == _token_hash(token)))
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
    session_factory: sessionmaker[Session],
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
    with UnitOfWork(session_factory) as uow:
        pending = _pending(uow.session, pending_token, now)
        if pending is None:
            return SecondFactor(None, Refusal.PENDING_ENDED)
        username = uow.session.get_one(User, pending.user_id).username
        attempt_id = begin_sign_in(uow.session, username, client_address, now, throttle)
        uow.commit()
    with UnitOfWork(session_factory) as uow:
        outcome = _finish_second_factor(uow.session, attempt_id, pending_token, code, now, throttle, sealer)
        uow.commit()
    return outcome


def _finish_second_factor(
    session: Session,
    attempt_id: int,
    pending_token: str,
    code: str,
    now: dt.datetime,
    throttle: Throttle,
    sealer: Sealer,
) -> SecondFactor:
    attempt = session.get_one(SignInAttempt, attempt_id)
    pending = _pending(session, pending_token, now)
    if pending is None:  # used by a concurrent request meanwhile
        session.delete(attempt)
        return SecondFactor(None, Refusal.PENDING_ENDED)
    if _locked(session, attempt, now, throttle):
        session.delete(attempt)
        return _code_refused(session, attempt, Refusal.LOCKED, now, throttle)
    user = session.get_one(User, pending.user_id)
    if user.disabled:
        return _code_refused(session, attempt, Refusal.DISABLED, now, throttle)
    recovery_codes: tuple[str, ...] = ()
    how = ""
    if pending.enrol_secret is not None:
        secret = sealer.open(pending.enrol_secret, user.id)
        step = second_factor.matching_step(secret, code, now, None) if secret else None
        if step is None or user.totp_secret is not None:
            return _code_refused(session, attempt, Refusal.WRONG_CODE, now, throttle)
        user.totp_secret, user.totp_enrolled_at, user.totp_last_step = pending.enrol_secret, now, step
        recovery_codes = _new_recovery_codes(session, user)
        how = ", second factor enrolled"
        audit(session, user.username, "second_factor_enrolled", now)
    elif _accept_code(session, user, code, now, sealer):
        pass
    elif _use_recovery_code(session, user, code, now):
        how = ", with a recovery code"
    else:
        return _code_refused(session, attempt, Refusal.WRONG_CODE, now, throttle)
    # The failures from this address no longer count against the user (the address's own do;
    # so do others' from elsewhere, or a success would wipe a flood's trace).
    session.execute(
        delete(SignInAttempt).where(
            SignInAttempt.username == user.username, SignInAttempt.client_address == attempt.client_address
        )
    )
    session.delete(pending)
    token = open_session(session, user, now, detail=f"from {attempt.client_address}{how}")
    return SecondFactor(token, recovery_codes=recovery_codes)


def _accept_code(session: Session, user: User, code: str, now: dt.datetime, sealer: Sealer) -> bool:
    """Whether `code` is the user's current TOTP code, not used before. The last step used is
    moved on in one conditional update, so of two requests with one code only one succeeds."""
    secret = sealer.open(user.totp_secret, user.id) if user.totp_secret else None
    if secret is None:
        return False
    step = second_factor.matching_step(secret, code, now, user.totp_last_step)
    if step is None:
        return False
    moved = session.execute(
        update(User)
        .where(User.id == user.id, or_(User.totp_last_step.is_(None), User.totp_last_step < step))
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    session.refresh(user)
    return bool(getattr(moved, "rowcount", 0) == 1)


def _use_recovery_code(session: Session, user: User, code: str, now: dt.datetime) -> bool:
    digest = second_factor.recovery_code_hash(code)
    if digest is None:
        return False
    used = session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == digest,
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(used, "rowcount", 0) == 1)


def _new_recovery_codes(session: Session, user: User) -> tuple[str, ...]:
    """New recovery codes for `user`, replacing any they had; the codes themselves are shown
    once and never stored."""
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = second_factor.new_recovery_codes()
    for code in codes:
        digest = second_factor.recovery_code_hash(code)
        assert digest is not None
        session.add(RecoveryCode(user_id=user.id, code_hash=digest))
    session.flush()
    return tuple(codes)


def _code_refused(
    session: Session, attempt: SignInAttempt, refusal: Refusal, now: dt.datetime, throttle: Throttle
) -> SecondFactor:
    refused = _refused(session, attempt, refusal, now, throttle)
    return SecondFactor(None, refused.refusal, refused.delay)


def open_session(session: Session, user: User, now: dt.datetime, *, detail: str) -> str:
    """A new session for `user`, audited as a sign-in; its token (only the hash is kept)."""
    token = secrets.token_urlsafe(32)
    session.add(
        UserSession(token_hash=_token_hash(token), user_id=user.id, expires_at=now + SESSION_LIFETIME)
    )
    user.last_sign_in_at = now
    audit(session, user.username, "sign_in", now, detail=detail)
    return token


def user_for_token(session: Session, token: str, now: dt.datetime) -> User:
    found = session.scalar(select(UserSession).where(UserSession.token_hash == _token_hash(token)))
    if found is None or as_utc(found.expires_at) <= now:
        raise SessionEnded("the session has expired; sign in again")
    user = session.get_one(User, found.user_id)
    if user.disabled:
        raise SessionEnded("the user is disabled", disabled=True)
    return user


def audit(
    session: Session,
    username: str,
    action: str,
    now: dt.datetime,
    *,
    ticket_id: int | None = None,
    detail: str | None = None,
) -> None:
    """Record who viewed personal data or acted, and when (`uow.audit.record`, for the modules not
    yet moved behind the unit of work)."""
    AuditRepository(session).record(username, action, now, ticket_id=ticket_id, detail=detail)


def sign_out(session: Session, token: str) -> None:
    """End the session at once (the token stops working before it would have expired)."""
    found = session.scalar(select(UserSession).where(UserSession.token_hash == _token_hash(token)))
    if found is not None:
        session.delete(found)
        session.flush()


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


def list_users(session: Session, now: dt.datetime, throttle: Throttle) -> list[UserListing]:
    """Every user, without any hash, and until when each username is locked out: from every
    address, or from at least one (the latest end of either)."""
    listing = []
    for user in session.scalars(select(User).order_by(User.username)):
        recent = session.scalars(
            select(SignInAttempt)
            .where(SignInAttempt.username == user.username, SignInAttempt.at > now - throttle.kept)
            .order_by(SignInAttempt.at.desc(), SignInAttempt.id.desc())
        ).all()
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


def disable_user(session: Session, username: str, actor: str, now: dt.datetime) -> None:
    """The user can no longer sign in, and every session of theirs ends now."""
    user = existing_user(session, username)
    user.disabled = True
    _end_sessions(session, user)
    audit(session, actor, "disable_user", now, detail=f"user {username}")


def enable_user(session: Session, username: str, actor: str, now: dt.datetime) -> None:
    """The user may sign in again, and any lockout of their username is lifted."""
    user = existing_user(session, username)
    user.disabled = False
    session.execute(delete(SignInAttempt).where(SignInAttempt.username == username))
    audit(session, actor, "enable_user", now, detail=f"user {username}")


def set_password(session: Session, username: str, password: str, actor: str, now: dt.datetime) -> None:
    """A new password; the sessions opened with the old one end."""
    user = existing_user(session, username)
    check_new_password(username, password)
    user.password_hash = hash_password(password)
    _end_sessions(session, user)
    audit(session, actor, "set_password", now, detail=f"user {username}")


def reset_second_factor(session: Session, username: str, actor: str, now: dt.datetime) -> None:
    """The user's second factor and recovery codes are forgotten, and their sessions and
    pending sign-ins end: at their next sign-in they enrol a new one."""
    user = existing_user(session, username)
    user.totp_secret = user.totp_enrolled_at = user.totp_last_step = None
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    session.execute(delete(PendingSignIn).where(PendingSignIn.user_id == user.id))
    _end_sessions(session, user)
    audit(session, actor, "reset_second_factor", now, detail=f"user {username}")


def user_named(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def existing_user(session: Session, username: str) -> User:
    """The user `username`; `AccessDenied` if there is none."""
    user = user_named(session, username)
    if user is None:
        raise AccessDenied(f"there is no user {username!r}")
    return user


def _end_sessions(session: Session, user: User) -> None:
    session.execute(delete(UserSession).where(UserSession.user_id == user.id))
    session.execute(delete(PendingSignIn).where(PendingSignIn.user_id == user.id))
    session.flush()

