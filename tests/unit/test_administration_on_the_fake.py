"""Who manages which support users (`hub.support.administration`), and sign-in's lockout
(`hub.support.access`), on the unit of work's users and audit log in memory (`tests.fakes`):
the policies alone, without a database (the same on one: tests/integration/test_user_administration.py,
tests/integration/test_sign_in.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from hub.register.models import User
from hub.support import administration
from hub.support.access import (
    Refusal,
    Role,
    SignIn,
    Throttle,
    begin_sign_in,
    create_user,
    enable_user,
    finish_sign_in,
)
from hub.support.second_factor import Sealer
from tests.fakes import Audited, FakeUsersUnit

NOW = dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC)
PASSWORD = "a long enough secret"
HOME, ELSEWHERE = "192.0.2.10", "198.51.100.7"
THROTTLE = Throttle(user_limit=5, address_limit=8, first_delay=0.5, max_delay=8.0)
SEALER = Sealer(b"the unit tests' mask key, 32 bytes or more")


@pytest.fixture
def uow() -> FakeUsersUnit:
    """Kari is IMDi's; Oslo has an administrator and a super user; Bergen a super user."""
    unit = FakeUsersUnit()
    for name, role, municipality in (
        ("kari", Role.IMDI_SUPPORT, None),
        ("oslo-admin", Role.MUNICIPALITY_ADMIN, "0301"),
        ("oslo-super", Role.MUNICIPALITY_SUPERUSER, "0301"),
        ("bergen-super", Role.MUNICIPALITY_SUPERUSER, "4601"),
    ):
        create_user(unit, name, PASSWORD, role, municipality, NOW)
    return unit


def actor(uow: FakeUsersUnit, username: str) -> User:
    return administration.acting_user(uow, username)


def test_a_municipal_administrator_sees_only_its_own_municipalitys_users_and_a_super_user_none(
    uow: FakeUsersUnit,
) -> None:
    assert [u.username for u in administration.users_managed_by(uow, actor(uow, "oslo-admin"))] == [
        "oslo-admin",
        "oslo-super",
    ]
    assert administration.users_managed_by(uow, actor(uow, "bergen-super")) == []
    assert len(administration.users_managed_by(uow, actor(uow, "kari"))) == 4


def test_a_municipal_administrator_adds_and_promotes_in_its_own_municipality_and_each_change_is_audited(
    uow: FakeUsersUnit,
) -> None:
    admin = actor(uow, "oslo-admin")
    administration.add_user(uow, admin, "oslo-new", PASSWORD, Role.MUNICIPALITY_SUPERUSER, "0301", NOW)
    administration.set_role(uow, admin, "oslo-new", Role.MUNICIPALITY_ADMIN, NOW)
    added = uow.users.named("oslo-new")
    assert added is not None and (added.role, added.municipality) == ("municipality_admin", "0301")
    assert uow.audit.entries == [
        Audited("oslo-admin", "add_user", "user oslo-new role=municipality_superuser municipality=0301"),
        Audited("oslo-admin", "set_role", "user oslo-new role municipality_superuser -> municipality_admin"),
    ]


def test_a_municipal_administrator_gives_no_role_outside_its_municipality_nor_imdis_and_each_refusal_is_audited(
    uow: FakeUsersUnit,
) -> None:
    admin = actor(uow, "oslo-admin")
    with pytest.raises(administration.NotYours):
        administration.add_user(uow, admin, "x1", PASSWORD, Role.MUNICIPALITY_SUPERUSER, "4601", NOW)
    with pytest.raises(administration.NotYours):
        administration.add_user(uow, admin, "x2", PASSWORD, Role.IMDI_SUPPORT, None, NOW)
    with pytest.raises(administration.NotYours):
        administration.set_role(uow, admin, "oslo-super", Role.IMDI_SUPPORT, NOW)
    assert uow.users.named("x1") is None and uow.users.named("x2") is None
    oslo_super = uow.users.named("oslo-super")
    assert oslo_super is not None and oslo_super.role == "municipality_superuser"
    assert uow.audit.entries == [
        Audited("oslo-admin", "user_refused", "add role=municipality_superuser municipality=4601"),
        Audited("oslo-admin", "user_refused", "add role=imdi_support municipality=None"),
        Audited("oslo-admin", "user_refused", "give role=imdi_support municipality=None"),
    ]


def test_a_municipal_administrator_disables_and_resets_its_own_users_only_and_an_unknown_one_is_refused_alike(
    uow: FakeUsersUnit,
) -> None:
    admin = actor(uow, "oslo-admin")
    administration.set_disabled(uow, admin, "oslo-super", True, NOW)
    administration.reset_factor(uow, admin, "oslo-super", NOW)
    for username in ("bergen-super", "kari", "nobody"):
        with pytest.raises(administration.NotYours):
            administration.set_disabled(uow, admin, username, True, NOW)
    with pytest.raises(administration.NotYours):
        administration.reset_factor(uow, admin, "bergen-super", NOW)
    assert [u.username for u in uow.users.every() if u.disabled] == ["oslo-super"]
    assert uow.users.sessions_ended == ["oslo-super", "oslo-super"]  # disabled, then reset
    assert uow.users.second_factor_forgotten == ["oslo-super"]
    assert [(e.action, e.detail) for e in uow.audit.entries] == [
        ("disable_user", "user oslo-super"),
        ("reset_second_factor", "user oslo-super"),
        ("user_refused", "disable role=municipality_superuser municipality=4601"),
        ("user_refused", "disable role=imdi_support municipality=None"),
        ("user_refused", "disable unknown user"),
        ("user_refused", "reset role=municipality_superuser municipality=4601"),
    ]
    assert {e.username for e in uow.audit.entries} == {"oslo-admin"}


def test_a_super_user_manages_no_one_even_in_its_own_municipality(uow: FakeUsersUnit) -> None:
    superuser = actor(uow, "bergen-super")
    with pytest.raises(administration.NotYours):
        administration.add_user(uow, superuser, "x3", PASSWORD, Role.MUNICIPALITY_SUPERUSER, "4601", NOW)
    assert uow.users.named("x3") is None
    assert [e.action for e in uow.audit.entries] == ["user_refused"]


def attempt(
    uow: FakeUsersUnit, password: str, at: dt.datetime, *, username: str = "kari", address: str = HOME
) -> SignIn:
    """A sign-in's two transactions, on the fake: the attempt kept as a failure, then decided."""
    attempt_id = begin_sign_in(uow, username, address, at, THROTTLE)
    return finish_sign_in(uow, attempt_id, password, at, THROTTLE, SEALER)


def test_five_wrong_passwords_lock_the_username_from_that_address_only_until_the_lockout_ends(
    uow: FakeUsersUnit,
) -> None:
    for i in range(5):
        assert (
            attempt(uow, "wrong password!!", NOW + dt.timedelta(minutes=i)).refusal is Refusal.WRONG_PASSWORD
        )
    locked = attempt(uow, PASSWORD, NOW + dt.timedelta(minutes=5))
    assert (locked.token, locked.refusal) == (None, Refusal.LOCKED)
    assert attempt(uow, PASSWORD, NOW + dt.timedelta(minutes=5), address=ELSEWHERE).token is not None
    # Refused attempts do not lengthen the lockout: 15 minutes after the fifth failure it is over.
    assert attempt(uow, PASSWORD, NOW + dt.timedelta(minutes=19, seconds=1)).token is not None
    failed = [e.detail for e in uow.audit.entries if e.action == "sign_in_failed"]
    assert failed == [f"wrong_password from {HOME}"] * 5 + [f"locked from {HOME}"]


def test_an_unknown_username_is_locked_like_a_known_one(uow: FakeUsersUnit) -> None:
    for i in range(5):
        refused = attempt(uow, PASSWORD, NOW + dt.timedelta(seconds=i), username="nobody")
        assert refused.refusal is Refusal.UNKNOWN_USER
    assert attempt(uow, PASSWORD, NOW + dt.timedelta(seconds=5), username="nobody").refusal is Refusal.LOCKED


def test_each_failure_from_an_address_makes_the_next_answer_wait_longer(uow: FakeUsersUnit) -> None:
    delays = [attempt(uow, "wrong password!!", NOW + dt.timedelta(seconds=i)).delay for i in range(4)]
    assert delays == [0.5, 1.0, 2.0, 4.0]


def test_enabling_a_user_lifts_the_lockout_of_their_username(uow: FakeUsersUnit) -> None:
    for i in range(5):
        attempt(uow, "wrong password!!", NOW + dt.timedelta(seconds=i))
    assert attempt(uow, PASSWORD, NOW + dt.timedelta(seconds=5)).refusal is Refusal.LOCKED
    enable_user(uow, "kari", "admin", NOW + dt.timedelta(seconds=6))
    assert attempt(uow, PASSWORD, NOW + dt.timedelta(seconds=7)).token is not None


def test_a_right_password_opens_only_a_pending_sign_in_for_the_second_factor(uow: FakeUsersUnit) -> None:
    outcome = attempt(uow, PASSWORD, NOW)
    assert outcome.token is not None and outcome.must_enrol  # kari has no second factor yet
    [pending] = uow.users.pending.values()
    assert pending.token_hash != outcome.token and pending.enrol_secret is not None
    assert uow.users.attempts == {}  # the right attempt is no failure
    assert uow.audit.entries[-1] == Audited("kari", "password_accepted", f"from {HOME}")
