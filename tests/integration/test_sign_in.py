"""Signing in to the support page (`hub.support.access`): the lockout, the audit of failures,
the same work for unknown usernames, and disabled users, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import statistics
import time

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hub.config import Settings
from hub.register.database import make_engine, make_session_factory
from hub.register.models import AuditEntry, SignInAttempt
from hub.register.unit_of_work import UnitOfWork
from hub.support.access import (
    AccessDenied,
    Refusal,
    Role,
    Throttle,
    create_user,
    disable_user,
    enable_user,
    list_users,
    set_password,
    sign_in,
    user_for_token,
)
from tests.second_factor import SEALER, signed_in

NOW = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
SECRET = "correct horse battery"
HOME = "192.0.2.10"
THROTTLE = Throttle(user_limit=5, address_limit=8, first_delay=0.5, max_delay=8.0)


@pytest.fixture
def sessions(database_url: str) -> sessionmaker[Session]:
    factory = make_session_factory(make_engine(database_url))
    with UnitOfWork(factory) as uow:
        s = uow.session
        create_user(uow, "kari", SECRET, Role.IMDI_SUPPORT, None, NOW)
        s.commit()
    return factory


def attempt(
    sessions: sessionmaker[Session],
    password: str,
    *,
    username: str = "kari",
    at: dt.datetime = NOW,
    address: str = HOME,
    throttle: Throttle = THROTTLE,
) -> Refusal | None:
    outcome = sign_in(
        lambda: UnitOfWork(sessions), username, password, at, client_address=address, sealer=SEALER, throttle=throttle
    )
    assert (outcome.token is None) == (outcome.refusal is not None)
    return outcome.refusal


def audit_log(sessions: sessionmaker[Session]) -> list[tuple[str, str, str | None]]:
    with sessions() as s:
        return [
            (a.username, a.action, a.detail) for a in s.scalars(select(AuditEntry).order_by(AuditEntry.id))
        ]


def test_after_five_wrong_passwords_from_one_address_the_right_one_is_refused_there_until_the_lockout_ends(
    sessions: sessionmaker[Session],
) -> None:
    for i in range(5):
        assert (
            attempt(sessions, "wrong password!!", at=NOW + dt.timedelta(minutes=i)) is Refusal.WRONG_PASSWORD
        )
    locked_at = NOW + dt.timedelta(minutes=5)
    assert attempt(sessions, SECRET, at=locked_at) is Refusal.LOCKED
    with UnitOfWork(sessions) as uow:  # the administrator sees until when (from that address)
        [kari] = list_users(uow, locked_at, THROTTLE)
        assert kari.locked_until == NOW + dt.timedelta(minutes=4 + 15)
    # Refused attempts do not lengthen the lockout: 15 minutes after the fifth failure it is over.
    assert attempt(sessions, SECRET, at=NOW + dt.timedelta(minutes=19, seconds=1)) is None
    with sessions() as s:  # the password alone forgets nothing: a wrong code must still count
        assert s.scalar(select(SignInAttempt).where(SignInAttempt.username == "kari")) is not None
    signed_in(sessions, "kari", SECRET, NOW + dt.timedelta(minutes=19, seconds=2), client_address=HOME)
    with sessions() as s:  # a whole sign-in forgets that address's failures of the username
        assert s.scalar(select(SignInAttempt).where(SignInAttempt.username == "kari")) is None


def test_someone_who_knows_a_username_cannot_lock_its_owner_out_from_another_address(
    sessions: sessionmaker[Session],
) -> None:
    attacker = "203.0.113.66"
    for i in range(7):
        refusal = attempt(sessions, "wrong password!!", at=NOW + dt.timedelta(minutes=i), address=attacker)
        assert refusal is (Refusal.WRONG_PASSWORD if i < 5 else Refusal.LOCKED)
    assert attempt(sessions, SECRET, at=NOW + dt.timedelta(minutes=7), address=attacker) is Refusal.LOCKED
    assert attempt(sessions, SECRET, at=NOW + dt.timedelta(minutes=7)) is None  # kari, at her desk
    # Her success does not wipe the attacker's failures: that address is still locked out.
    assert attempt(sessions, SECRET, at=NOW + dt.timedelta(minutes=8), address=attacker) is Refusal.LOCKED


def test_failures_for_one_username_from_many_addresses_lock_it_at_the_much_higher_global_limit(
    sessions: sessionmaker[Session],
) -> None:
    throttle = Throttle(
        user_limit=5, address_limit=50, username_limit=12, username_window=dt.timedelta(hours=1)
    )
    for i in range(12):  # three addresses, four guesses each: no address reaches its own limit
        at = NOW + dt.timedelta(minutes=4 * i)
        address = f"198.51.100.{i % 3}"
        assert attempt(sessions, "wrong password!!", at=at, address=address, throttle=throttle) is (
            Refusal.WRONG_PASSWORD
        )
    later = NOW + dt.timedelta(minutes=45)
    assert attempt(sessions, SECRET, at=later, throttle=throttle) is Refusal.LOCKED  # from any address
    with UnitOfWork(sessions) as uow:
        [kari] = list_users(uow, later, throttle)
        assert kari.locked_until == NOW + dt.timedelta(minutes=44 + 15)
    assert attempt(sessions, SECRET, at=NOW + dt.timedelta(minutes=60), throttle=throttle) is None


def test_the_global_limit_per_username_is_a_setting_with_a_documented_default() -> None:
    throttle = Throttle.from_settings(
        Settings.from_env({"NIR_SIGNIN_USER_FAILURE_LIMIT": "30", "NIR_SIGNIN_USER_WINDOW_SECONDS": "600"})
    )
    assert (throttle.username_limit, throttle.username_window) == (30, dt.timedelta(minutes=10))
    assert Throttle.from_settings(Settings()).username_limit == 100


def test_unknown_usernames_are_locked_out_the_same_way(sessions: sessionmaker[Session]) -> None:
    for _ in range(5):
        assert attempt(sessions, SECRET, username="nobody") is Refusal.UNKNOWN_USER
    assert attempt(sessions, SECRET, username="nobody") is Refusal.LOCKED


def test_an_address_guessing_many_usernames_is_locked_out_for_every_username(
    sessions: sessionmaker[Session],
) -> None:
    for i in range(8):
        assert attempt(sessions, "guess number one", username=f"user{i}") is Refusal.UNKNOWN_USER
    assert attempt(sessions, SECRET) is Refusal.LOCKED  # kari, from the same address
    assert attempt(sessions, SECRET, address="198.51.100.7") is None  # kari, from elsewhere


def test_the_wait_grows_with_each_failure(sessions: sessionmaker[Session]) -> None:
    delays = [
        sign_in(
            lambda: UnitOfWork(sessions), "kari", "wrong password!!", NOW, client_address=HOME, sealer=SEALER, throttle=THROTTLE
        ).delay
        for _ in range(6)
    ]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]


def test_every_failed_sign_in_is_audited_with_its_reason_and_address_never_the_password(
    sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    with UnitOfWork(sessions) as uow:
        s = uow.session
        create_user(uow, "ola", SECRET, Role.IMDI_SUPPORT, None, NOW)
        disable_user(uow, "ola", "admin", NOW)
        s.commit()
    attempt(sessions, "wrong password!!")
    attempt(sessions, "a guessed secret", username="nobody")
    attempt(sessions, SECRET, username="ola")
    for _ in range(4):
        attempt(sessions, "wrong password!!")
    attempt(sessions, SECRET)
    failures = [(user, detail) for user, action, detail in audit_log(sessions) if action == "sign_in_failed"]
    assert failures == [
        ("kari", f"wrong_password from {HOME}"),
        ("nobody", f"unknown_user from {HOME}"),
        ("ola", f"disabled from {HOME}"),
        *[("kari", f"wrong_password from {HOME}")] * 4,
        ("kari", f"locked from {HOME}"),
    ]
    written = repr(audit_log(sessions)) + caplog.text
    for password in ("wrong password!!", "a guessed secret", SECRET):
        assert password not in written


def test_a_disabled_user_cannot_sign_in_and_their_sessions_end(sessions: sessionmaker[Session]) -> None:
    token = signed_in(sessions, "kari", SECRET, NOW, client_address=HOME)
    assert token is not None
    with UnitOfWork(sessions) as uow:
        s = uow.session
        disable_user(uow, "kari", "admin", NOW)
        s.commit()
        with pytest.raises(AccessDenied):
            user_for_token(uow, token, NOW)
    assert attempt(sessions, SECRET) is Refusal.DISABLED
    with UnitOfWork(sessions) as uow:
        s = uow.session
        enable_user(uow, "kari", "admin", NOW)
        s.commit()
    assert attempt(sessions, SECRET) is None
    actions = [(user, action, detail) for user, action, detail in audit_log(sessions) if user == "admin"]
    assert actions == [("admin", "disable_user", "user kari"), ("admin", "enable_user", "user kari")]


def test_enabling_a_user_lifts_their_lockout(sessions: sessionmaker[Session]) -> None:
    for _ in range(5):
        attempt(sessions, "wrong password!!")
    assert attempt(sessions, SECRET) is Refusal.LOCKED
    with UnitOfWork(sessions) as uow:
        s = uow.session
        enable_user(uow, "kari", "admin", NOW)
        s.commit()
    assert attempt(sessions, SECRET) is None


def test_a_new_password_ends_the_sessions_of_the_old_one(sessions: sessionmaker[Session]) -> None:
    token = signed_in(sessions, "kari", SECRET, NOW, client_address=HOME)
    assert token is not None
    with UnitOfWork(sessions) as uow:
        s = uow.session
        set_password(uow, "kari", "a brand new secret", "admin", NOW)
        s.commit()
        with pytest.raises(AccessDenied):
            user_for_token(uow, token, NOW)
    assert attempt(sessions, SECRET) is Refusal.WRONG_PASSWORD
    assert attempt(sessions, "a brand new secret") is None


def test_an_unknown_username_takes_about_as_long_to_refuse_as_a_wrong_password(
    sessions: sessionmaker[Session],
) -> None:
    lenient = Throttle(user_limit=1000, address_limit=1000)

    def median_seconds(username: str) -> float:
        times = []
        for _ in range(7):
            start = time.perf_counter()
            attempt(sessions, "wrong password!!", username=username, throttle=lenient)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    median_seconds("kari")  # warm up: connections, the stand-in hash
    ratio = median_seconds("nobody") / median_seconds("kari")
    print(f"unknown/known: {ratio:.2f}")
    assert 0.2 < ratio < 5, ratio
