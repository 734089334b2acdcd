"""The support desk's users in the register, as the unit of work's `uow.users`: the users
themselves, their sessions and pending sign-ins (only hashes of the tokens), the sign-in attempts
the lockout counts, recovery codes, and the sign-ins waiting for an OpenID Connect provider's
answer.

Who may do what with them (the lockout's thresholds, the administration's scope, the audit of
each act) is the support desk's (`hub.support.access`, `hub.support.administration`,
`hub.support.oidc`); here is only how they are read and written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import ColumnElement, delete, func, or_, select, true, update
from sqlalchemy.orm import Session

from hub.register.models import (
    OidcSignIn,
    PendingSignIn,
    RecoveryCode,
    SignInAttempt,
    User,
    UserSession,
)


class UsersRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    # The users.

    def add(self, user: User) -> User:
        """Store a new user (its id is known on return)."""
        self._session.add(user)
        self._session.flush()
        return user

    def named(self, username: str) -> User | None:
        return self._session.scalar(select(User).where(User.username == username))

    def with_id(self, user_id: int) -> User:
        return self._session.get_one(User, user_id)

    def every(self) -> list[User]:
        """Every user, by username."""
        return list(self._session.scalars(select(User).order_by(User.username)))

    def of_municipality(self, municipality: str | None, roles: Iterable[str]) -> list[User]:
        """The users of `municipality` with one of `roles`, by username."""
        return list(
            self._session.scalars(
                select(User)
                .where(User.municipality == municipality, User.role.in_(list(roles)))
                .order_by(User.username)
            )
        )

    def linked_to(self, issuer: str, subject_key: str) -> User | None:
        """The user linked to a person at an identity provider (`subject_key` as stored, by
        `hub.domain.identifiers.link_key`)."""
        return self._session.scalar(
            select(User).where(User.external_issuer == issuer, User.external_subject == subject_key)
        )

    def move_totp_step(self, user: User, step: int) -> bool:
        """Move the user's last TOTP step used on to `step`, in one conditional update, so that
        of two requests with one code only one succeeds. Whether this one did."""
        moved = self._session.execute(
            update(User)
            .where(User.id == user.id, or_(User.totp_last_step.is_(None), User.totp_last_step < step))
            .values(totp_last_step=step)
            .execution_options(synchronize_session=False)
        )
        self._session.refresh(user)
        return bool(getattr(moved, "rowcount", 0) == 1)

    def forget_second_factor(self, user: User) -> None:
        """The user's TOTP secret and recovery codes are forgotten (a reset then ends their
        sessions and pending sign-ins, which may be enrolling one: `end_sessions_of`)."""
        user.totp_secret = user.totp_enrolled_at = user.totp_last_step = None
        self._session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))

    # Sign-in attempts, kept as failures until proven right.

    def add_attempt(self, username: str, client_address: str, now: dt.datetime) -> SignInAttempt:
        attempt = SignInAttempt(at=now, username=username, client_address=client_address)
        self._session.add(attempt)
        self._session.flush()
        return attempt

    def attempt(self, attempt_id: int) -> SignInAttempt:
        return self._session.get_one(SignInAttempt, attempt_id)

    def forget_attempt(self, attempt: SignInAttempt) -> None:
        self._session.delete(attempt)

    def forget_attempts_before(self, moment: dt.datetime) -> None:
        self._session.execute(delete(SignInAttempt).where(SignInAttempt.at < moment))

    def forget_attempts_of(self, username: str, client_address: str | None = None) -> None:
        """Forget the failures of `username` (from `client_address` only, if given)."""
        self._session.execute(delete(SignInAttempt).where(_attempts_of(username, client_address)))

    def failure_times(
        self,
        *,
        username: str | None,
        client_address: str | None,
        other_than: int,
        until: dt.datetime,
        limit: int,
    ) -> list[dt.datetime]:
        """The times of the newest `limit` attempts (other than `other_than`, at or before
        `until`) of `username` and/or from `client_address`, newest first."""
        return list(
            self._session.scalars(
                select(SignInAttempt.at)
                .where(
                    _attempts_of(username, client_address),
                    SignInAttempt.id != other_than,
                    SignInAttempt.at <= until,
                )
                .order_by(SignInAttempt.at.desc(), SignInAttempt.id.desc())
                .limit(limit)
            ).all()
        )

    def failure_count(self, *, username: str | None, client_address: str | None, since: dt.datetime) -> int:
        """How many attempts of `username` and/or from `client_address` there were after `since`."""
        return (
            self._session.scalar(
                select(func.count()).where(_attempts_of(username, client_address), SignInAttempt.at > since)
            )
            or 0
        )

    def attempts_of(self, username: str, since: dt.datetime) -> list[SignInAttempt]:
        """The attempts of `username` after `since`, from every address, newest first."""
        return list(
            self._session.scalars(
                select(SignInAttempt)
                .where(SignInAttempt.username == username, SignInAttempt.at > since)
                .order_by(SignInAttempt.at.desc(), SignInAttempt.id.desc())
            ).all()
        )

    # Pending sign-ins: the password was right, the second factor is still to come.

    def add_pending(self, token_hash: str, user_id: int, expires_at: dt.datetime) -> PendingSignIn:
        pending = PendingSignIn(token_hash=token_hash, user_id=user_id, expires_at=expires_at)
        self._session.add(pending)
        self._session.flush()
        return pending

    def pending(self, token_hash: str) -> PendingSignIn | None:
        return self._session.scalar(select(PendingSignIn).where(PendingSignIn.token_hash == token_hash))

    def forget_pending(self, pending: PendingSignIn) -> None:
        self._session.delete(pending)

    def forget_pending_expired(self, now: dt.datetime) -> None:
        self._session.execute(delete(PendingSignIn).where(PendingSignIn.expires_at < now))

    # Recovery codes (only their hashes).

    def replace_recovery_codes(self, user: User, code_hashes: Iterable[str]) -> None:
        self._session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
        for digest in code_hashes:
            self._session.add(RecoveryCode(user_id=user.id, code_hash=digest))
        self._session.flush()

    def use_recovery_code(self, user: User, code_hash: str, now: dt.datetime) -> bool:
        """Mark the user's unused recovery code `code_hash` used, in one conditional update (a
        code opens one session). Whether there was one."""
        used = self._session.execute(
            update(RecoveryCode)
            .where(
                RecoveryCode.user_id == user.id,
                RecoveryCode.code_hash == code_hash,
                RecoveryCode.used_at.is_(None),
            )
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(used, "rowcount", 0) == 1)

    # Sessions (only the hash of each token).

    def add_session(self, token_hash: str, user_id: int, expires_at: dt.datetime) -> None:
        self._session.add(UserSession(token_hash=token_hash, user_id=user_id, expires_at=expires_at))

    def session_for(self, token_hash: str) -> UserSession | None:
        return self._session.scalar(select(UserSession).where(UserSession.token_hash == token_hash))

    def end_session(self, found: UserSession) -> None:
        self._session.delete(found)
        self._session.flush()

    def end_sessions_of(self, user: User) -> None:
        """Every session and pending sign-in of `user` ends now."""
        self._session.execute(delete(UserSession).where(UserSession.user_id == user.id))
        self._session.execute(delete(PendingSignIn).where(PendingSignIn.user_id == user.id))
        self._session.flush()

    # Sign-ins waiting for an OpenID Connect provider's answer.

    def add_oidc_sign_in(self, pending: OidcSignIn) -> None:
        self._session.add(pending)
        self._session.flush()

    def forget_oidc_sign_ins_before(self, moment: dt.datetime) -> None:
        self._session.execute(delete(OidcSignIn).where(OidcSignIn.started_at < moment))

    def take_oidc_sign_in(self, browser_hash: str) -> OidcSignIn | None:
        """The sign-in begun by the browser `browser_hash` names, deleted as it is read."""
        row = self._session.scalar(select(OidcSignIn).where(OidcSignIn.browser_hash == browser_hash))
        if row is not None:
            self._session.delete(row)
            self._session.flush()
        return row


def _attempts_of(username: str | None, client_address: str | None) -> ColumnElement[bool]:
    where: ColumnElement[bool] = true()
    if username is not None:
        where = where & (SignInAttempt.username == username)
    if client_address is not None:
        where = where & (SignInAttempt.client_address == client_address)
    return where
