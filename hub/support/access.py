"""Who may see and do what in support: users, password hashes, expiring sessions, the
municipality scope of a user, and the audit log of views of personal data and actions.

Passwords are hashed with scrypt (the standard library's), salted per user; only a hash of a
session token is stored. IMDi support sees every ticket; a municipality's super user sees and
acts on only their own municipality's tickets.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.errors import HubError
from hub.register.models import AuditEntry, CaseTicket, User, UserSession

_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
SESSION_LIFETIME = dt.timedelta(hours=8)


class Role(enum.Enum):
    IMDI_SUPPORT = "imdi_support"
    MUNICIPALITY_SUPERUSER = "municipality_superuser"


class AccessDenied(HubError):
    """The user may not see or act on this."""

    code = "NIR-ACCESS"


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


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
    if role is Role.MUNICIPALITY_SUPERUSER and not municipality:
        raise AccessDenied("a municipality super user needs a municipality")
    if len(password) < 12:
        raise AccessDenied("the password must have at least 12 characters")
    user = User(
        username=username,
        password_hash=hash_password(password),
        role=role.value,
        municipality=municipality if role is Role.MUNICIPALITY_SUPERUSER else None,
        created_at=now,
        disabled=False,
    )
    session.add(user)
    session.flush()
    return user


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def sign_in(session: Session, username: str, password: str, now: dt.datetime) -> str:
    """A new session token for the user, or `AccessDenied` (the same for any wrong detail)."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None or user.disabled or not verify_password(password, user.password_hash):
        raise AccessDenied("wrong username or password")
    token = secrets.token_urlsafe(32)
    session.add(
        UserSession(token_hash=_token_hash(token), user_id=user.id, expires_at=now + SESSION_LIFETIME)
    )
    session.flush()
    return token


def user_for_token(session: Session, token: str, now: dt.datetime) -> User:
    found = session.scalar(select(UserSession).where(UserSession.token_hash == _token_hash(token)))
    expires = found.expires_at if found is not None else None
    if expires is not None and expires.tzinfo is None:
        expires = expires.replace(tzinfo=dt.UTC)
    if found is None or expires is None or expires <= now:
        raise AccessDenied("the session has expired; sign in again")
    user = session.get_one(User, found.user_id)
    if user.disabled:
        raise AccessDenied("the user is disabled")
    return user


def may_see(user: User, ticket: CaseTicket) -> bool:
    if user.role == Role.IMDI_SUPPORT.value:
        return True
    return user.role == Role.MUNICIPALITY_SUPERUSER.value and ticket.municipality == user.municipality


def require_access(user: User, ticket: CaseTicket) -> None:
    """`AccessDenied` unless the user may see and act on the ticket (the same answer as for a
    ticket that does not exist, so numbers cannot be probed)."""
    if not may_see(user, ticket):
        raise AccessDenied(f"there is no ticket {ticket.id}")


def audit(
    session: Session,
    username: str,
    action: str,
    now: dt.datetime,
    *,
    ticket_id: int | None = None,
    detail: str | None = None,
) -> None:
    """Record who viewed personal data or acted, and when. `detail` never holds an identifier."""
    session.add(AuditEntry(at=now, username=username, action=action, ticket_id=ticket_id, detail=detail))
    session.flush()


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
