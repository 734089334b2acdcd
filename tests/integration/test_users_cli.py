"""`hub users`: list, disable, enable and set-password, as an administrator runs them, on SQLite
and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from hub.register.access_log import os_user
from hub.register.database import make_session_factory
from hub.register.models import AuditEntry
from hub.support.access import Refusal, Role, Throttle, create_user, disable_user, sign_in
from tests.conftest import pipeline_hub
from tests.harness import hub_command
from tests.second_factor import SEALER, signed_in

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new secret"


def test_an_administrator_lists_disables_enables_and_sets_passwords(database_url: str) -> None:
    hub = pipeline_hub(database_url)
    now = dt.datetime.now(dt.UTC)
    with hub.unit_of_work() as uow:
        create_user(uow, "kari", PASSWORD, Role.IMDI_SUPPORT, None, now)
        create_user(uow, "ola", PASSWORD, Role.MUNICIPALITY_SUPERUSER, "0301", now)
        uow.commit()
    for _ in range(Throttle().user_limit):
        sign_in(
            hub.unit_of_work, "ola", "wrong password!!", now, client_address="192.0.2.1", sealer=SEALER
        )
    assert signed_in(make_session_factory(hub.engine), "kari", PASSWORD, now, client_address="192.0.2.2")

    def hub_users(*args: str, stdin: str | None = None) -> str:
        result = hub_command(hub.settings, "users", *args, "--user", "admin", stdin=stdin)
        assert result.returncode == 0, result.stderr
        return result.stdout

    listed = hub_command(hub.settings, "users", "list").stdout.splitlines()
    kari, ola = (next(line.split() for line in listed if line.startswith(name)) for name in ("kari", "ola"))
    assert (
        kari[:4] == ["kari", "imdi_support", "-", "no"]
        and kari[-1] == "-"
        and kari[4] == now.strftime("%Y-%m-%d")
    )
    assert ola[:5] == ["ola", "municipality_superuser", "0301", "no", "-"] and ola[-1] == "UTC"  # locked
    assert "scrypt" not in "\n".join(listed)

    hub_users("disable", "kari")
    assert (
        sign_in(hub.unit_of_work, "kari", PASSWORD, now, client_address="192.0.2.2", sealer=SEALER).refusal
        is Refusal.DISABLED
    )
    listed_after = hub_command(hub.settings, "users", "list").stdout
    assert "kari                     imdi_support             -            yes" in listed_after

    hub_users("enable", "ola")  # lifts the lockout too
    assert sign_in(hub.unit_of_work, "ola", PASSWORD, now, client_address="192.0.2.1", sealer=SEALER).token

    hub_users("set-password", "ola", "--password-stdin", stdin=NEW_PASSWORD + "\n")
    assert sign_in(
        hub.unit_of_work, "ola", NEW_PASSWORD, now, client_address="192.0.2.1", sealer=SEALER
    ).token

    for password, message in (("too short", "12 characters"), ("OLA", "12 characters")):
        refused = hub_command(
            hub.settings, "users", "set-password", "ola", "--password-stdin", stdin=password
        )
        assert refused.returncode == 2 and message in refused.stderr
    unknown = hub_command(hub.settings, "users", "disable", "nobody", "--user", "admin")
    assert unknown.returncode == 2 and "there is no user 'nobody'" in unknown.stderr

    with make_session_factory(hub.engine)() as session:
        acts = list(
            session.execute(
                select(AuditEntry.username, AuditEntry.action, AuditEntry.detail).where(
                    AuditEntry.username == "admin"
                )
            )
        )
    assert [tuple(a) for a in acts] == [
        ("admin", "disable_user", "user kari"),
        ("admin", "enable_user", "user ola"),
        ("admin", "set_password", "user ola"),
    ]
    assert NEW_PASSWORD not in repr(acts)


def test_the_password_is_asked_for_twice_and_must_not_be_the_username(database_url: str) -> None:
    hub = pipeline_hub(database_url)
    with hub.unit_of_work() as uow:
        create_user(uow, "kari.nordmann", PASSWORD, Role.IMDI_SUPPORT, None, dt.datetime.now(dt.UTC))
        uow.commit()
    mismatch = hub_command(
        hub.settings, "users", "set-password", "kari.nordmann", stdin=f"{NEW_PASSWORD}\nsomething else\n"
    )
    assert mismatch.returncode != 0 and NEW_PASSWORD not in mismatch.stdout + mismatch.stderr
    same = hub_command(
        hub.settings, "users", "set-password", "kari.nordmann", stdin="Kari.Nordmann\nKari.Nordmann\n"
    )
    assert same.returncode == 2 and "not be the username" in same.stderr
    asked = hub_command(
        hub.settings, "users", "set-password", "kari.nordmann", stdin=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n"
    )
    assert asked.returncode == 0, asked.stderr
    assert sign_in(
        hub.unit_of_work,
        "kari.nordmann",
        NEW_PASSWORD,
        dt.datetime.now(dt.UTC),
        client_address="x",
        sealer=SEALER,
    ).token


def test_hub_users_add_is_audited_with_who_added_whom(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = pipeline_hub(database_url)
    monkeypatch.setenv("NIR_NEW_PASSWORD", PASSWORD)
    added = hub_command(
        hub.settings,
        "users",
        "add",
        "oslo-1",
        "--role",
        "municipality_superuser",
        "--municipality",
        "0301",
        "--user",
        "admin",
    )
    assert added.returncode == 0, added.stderr
    with make_session_factory(hub.engine)() as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.action == "add_user")).all()
    # `--user` is what the caller typed; the OS user the command ran as is recorded beside it.
    assert [(e.username, e.detail, e.os_user) for e in entries] == [
        ("admin", "user oslo-1 role=municipality_superuser municipality=0301", os_user())
    ]
    # A change made outside a `hub` command (the support page's) names no OS user.
    with hub.unit_of_work() as uow:
        disable_user(uow, "oslo-1", "admin", dt.datetime.now(dt.UTC))
        uow.commit()
    with make_session_factory(hub.engine)() as session:
        disabled = session.scalars(select(AuditEntry).where(AuditEntry.action == "disable_user")).one()
    assert (disabled.username, disabled.os_user) == ("admin", None)
