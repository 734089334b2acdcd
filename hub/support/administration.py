"""Who may manage which support users (the NIR rule: a municipality's administrative user
creates its users), on the support page and with `hub users`.

- IMDi support manages every user.
- A municipality's administrative user (`municipality_admin`) manages the users of its own
  municipality only (add, disable, enable, set the role, reset the second factor), and gives only the municipality roles (super user, administrative user):
  never IMDi's role, never another municipality. It cannot act on IMDi's users or another
  municipality's, nor raise anyone above what it has itself.
- Anyone else manages no one.

Every change is audited (`audit_log`) with who made it; a refusal is audited too.

The policy needs of the unit of work only what `hub.support.access.UsersUnit` names (its users
and its audit log), so the unit tests run it on an in-memory fake (`tests.fakes.FakeUsersUnit`).
"""

from __future__ import annotations

import datetime as dt

from hub.register.models import User
from hub.support.access import (
    AccessDenied,
    Role,
    UsersUnit,
    create_user,
    disable_user,
    enable_user,
    reset_second_factor,
)

MUNICIPAL_ROLES = tuple(role for role in Role if role.municipal)


class NotYours(AccessDenied):
    """A user change outside what the acting user may manage."""


def roles_given_by(actor: User) -> tuple[Role, ...]:
    """The roles `actor` may give (empty: they manage no one)."""
    if actor.role == Role.IMDI_SUPPORT.value:
        return tuple(Role)
    if actor.role == Role.MUNICIPALITY_ADMIN.value and actor.municipality:
        return MUNICIPAL_ROLES
    return ()


def _check(
    uow: UsersUnit, actor: User, role: Role, municipality: str | None, what: str, now: dt.datetime
) -> None:
    """Refuse (audited) a change that would give `role` in `municipality`, unless `actor` may."""
    allowed = role in roles_given_by(actor) and (
        actor.role == Role.IMDI_SUPPORT.value or municipality == actor.municipality
    )
    if not allowed:
        uow.audit.record(
            actor.username,
            "user_refused",
            now,
            detail=f"{what} role={role.value} municipality={municipality}",
        )
        raise NotYours(
            f"{actor.username} may not {what} a {role.value} of municipality {municipality or '-'}"
        )


def users_managed_by(uow: UsersUnit, actor: User) -> list[User]:
    """The users `actor` manages: every one for IMDi, their municipality's for its administrator."""
    if actor.role == Role.IMDI_SUPPORT.value:
        return uow.users.every()
    if not roles_given_by(actor):
        return []
    return uow.users.of_municipality(actor.municipality, [r.value for r in MUNICIPAL_ROLES])


def add_user(
    uow: UsersUnit,
    actor: User,
    username: str,
    password: str,
    role: Role,
    municipality: str | None,
    now: dt.datetime,
) -> User:
    """A new user, if `actor` may give that role in that municipality."""
    _check(uow, actor, role, municipality, "add", now)
    user = create_user(uow, username, password, role, municipality, now)
    uow.audit.record(
        actor.username,
        "add_user",
        now,
        detail=f"user {username} role={role.value} municipality={municipality}",
    )
    return user


def _managed(uow: UsersUnit, actor: User, username: str, what: str, now: dt.datetime) -> User:
    """The user `username`, if `actor` manages them (the same refusal whether they exist or not)."""
    target = uow.users.named(username)
    if target is None:
        uow.audit.record(actor.username, "user_refused", now, detail=f"{what} unknown user")
        raise NotYours(f"there is no user {username!r} that {actor.username} manages")
    _check(uow, actor, Role(target.role), target.municipality, what, now)
    return target


def set_disabled(uow: UsersUnit, actor: User, username: str, disabled: bool, now: dt.datetime) -> None:
    """Disable (sessions end now) or enable (a lockout is lifted) a user `actor` manages."""
    _managed(uow, actor, username, "disable" if disabled else "enable", now)
    (disable_user if disabled else enable_user)(uow, username, actor.username, now)


def reset_factor(uow: UsersUnit, actor: User, username: str, now: dt.datetime) -> None:
    """Forget the second factor of a user `actor` manages (a lost phone): they enrol anew."""
    _managed(uow, actor, username, "reset", now)
    reset_second_factor(uow, username, actor.username, now)


def set_role(uow: UsersUnit, actor: User, username: str, role: Role, now: dt.datetime) -> None:
    """Give a user `actor` manages another role that `actor` may give, in the same municipality."""
    target = _managed(uow, actor, username, "change", now)
    _check(uow, actor, role, target.municipality if role.municipal else None, "give", now)
    if role.municipal and not target.municipality:
        raise AccessDenied("a municipality user needs a municipality")
    before = target.role
    target.role = role.value
    if not role.municipal:
        target.municipality = None
    uow.audit.record(actor.username, "set_role", now, detail=f"user {username} role {before} -> {role.value}")


def acting_user(uow: UsersUnit, username: str) -> User:
    """The user a command acts as (`hub users ... --as NAME`); disabled users act as no one."""
    user = uow.users.named(username)
    if user is None or user.disabled:
        raise AccessDenied(f"there is no active user {username!r} to act as")
    return user


def operator(name: str) -> User:
    """Whoever runs `hub users` without `--as`: the register's operator, with IMDi's rights (not
    a support user; never stored)."""
    return User(username=name, role=Role.IMDI_SUPPORT.value, municipality=None)
