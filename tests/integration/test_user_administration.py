"""A municipality's administrative user manages its own municipality's users only (issue 30),
on the support page and with `hub users --as`; IMDi manages everyone; every change and every
refusal is audited. On SQLite and PostgreSQL, and in Chromium."""

from __future__ import annotations

import os

import pyotp
import pytest
from sqlalchemy import select

from hub.bootstrap import Hub
from hub.register.database import make_session_factory
from hub.register.models import AuditEntry, User
from hub.support import administration
from hub.support.access import Role, create_user
from tests.harness import hub_command
from tests.integration.test_support_web import (
    PASSWORD,
    Client,
    page_and_token,
    serve,
    sign_in,
    support_page_in_chromium,
    web_hub,
)


def with_municipal_users(hub: Hub) -> Hub:
    """Kari is IMDi's (web_hub); Oslo has an administrator and a super user; Bergen a super user."""
    with hub.unit_of_work() as uow:
        for name, role, municipality in (
            ("oslo-admin", Role.MUNICIPALITY_ADMIN, "0301"),
            ("oslo-super", Role.MUNICIPALITY_SUPERUSER, "0301"),
            ("bergen-super", Role.MUNICIPALITY_SUPERUSER, "4601"),
        ):
            create_user(uow, name, PASSWORD, role, municipality, hub.clock())
        uow.commit()
    return hub


def users(hub: Hub) -> dict[str, tuple[str, str | None, bool]]:
    with make_session_factory(hub.engine)() as session:
        return {u.username: (u.role, u.municipality, u.disabled) for u in session.scalars(select(User))}


def audit_actions(hub: Hub) -> list[tuple[str, str]]:
    with make_session_factory(hub.engine)() as session:
        return [(a.username, a.action) for a in session.scalars(select(AuditEntry).order_by(AuditEntry.id))]


def test_a_municipal_administrator_manages_its_own_municipalitys_users_and_no_one_elses(
    database_url: str,
) -> None:
    hub = with_municipal_users(web_hub(database_url))
    now = hub.clock()
    with hub.unit_of_work() as uow:
        admin = administration.acting_user(uow, "oslo-admin")
        assert {u.username for u in administration.users_managed_by(uow, admin)} == {"oslo-admin", "oslo-super"}
        administration.add_user(uow, admin, "oslo-new", PASSWORD, Role.MUNICIPALITY_SUPERUSER, "0301", now)
        administration.set_disabled(uow, admin, "oslo-super", True, now)
        administration.set_role(uow, admin, "oslo-new", Role.MUNICIPALITY_ADMIN, now)
        administration.reset_factor(uow, admin, "oslo-new", now)  # a lost phone
        refusals = [
            lambda: administration.add_user(
                uow, admin, "x1", PASSWORD, Role.MUNICIPALITY_SUPERUSER, "4601", now
            ),
            lambda: administration.add_user(uow, admin, "x2", PASSWORD, Role.IMDI_SUPPORT, None, now),
            lambda: administration.set_disabled(uow, admin, "bergen-super", True, now),
            lambda: administration.set_disabled(uow, admin, "kari", True, now),
            lambda: administration.set_role(uow, admin, "oslo-new", Role.IMDI_SUPPORT, now),
            lambda: administration.set_disabled(uow, admin, "nobody", True, now),
            lambda: administration.reset_factor(uow, admin, "bergen-super", now),
        ]
        for refused in refusals:
            with pytest.raises(administration.NotYours):
                refused()
        # A super user manages no one, not even in its own municipality.
        superuser = administration.acting_user(uow, "bergen-super")
        assert administration.users_managed_by(uow, superuser) == []
        with pytest.raises(administration.NotYours):
            administration.add_user(uow, superuser, "x3", PASSWORD, Role.MUNICIPALITY_SUPERUSER, "4601", now)
        uow.commit()
    found = users(hub)
    assert found["oslo-new"] == ("municipality_admin", "0301", False)
    assert found["oslo-super"][2] is True and found["bergen-super"][2] is False and found["kari"][2] is False
    assert not {"x1", "x2", "x3"} & set(found) and found["oslo-new"][0] != "imdi_support"
    actions = audit_actions(hub)
    assert [a for a in actions if a[1] != "user_refused"] == [
        ("oslo-admin", "add_user"),
        ("oslo-admin", "disable_user"),
        ("oslo-admin", "set_role"),
        ("oslo-admin", "reset_second_factor"),
    ]
    assert actions.count(("oslo-admin", "user_refused")) == 7 and ("bergen-super", "user_refused") in actions


def test_on_the_support_page_an_administrator_adds_its_own_user_and_is_refused_for_another_municipality(
    database_url: str,
) -> None:
    hub = with_municipal_users(web_hub(database_url))

    async def work(client: Client) -> None:
        await sign_in(client, "oslo-admin", PASSWORD)
        page, token = await page_and_token(client, "/support/users")
        assert "oslo-super" in page and "bergen-super" not in page and "kari" not in page
        form = {"form_token": token, "action": "add", "username": "oslo-two", "password": PASSWORD}
        added = await client.post(
            "/support/users", data={**form, "role": "municipality_superuser", "municipality": "0301"}
        )
        assert added.status == 200 and "oslo-two" in await added.text()
        # The page's "done" message comes from the redirect's address: a crafted one shows nothing.
        for crafted in ({"done": "nonsense", "user": "x"}, {"done": "add", "user": "a\x00b"}):
            answer = await client.get("/support/users", params=crafted)
            assert answer.status == 200 and 'id="done"' not in await answer.text()
        refused = await client.post(
            "/support/users",
            data={**form, "username": "bergen-two", "role": "municipality_superuser", "municipality": "4601"},
        )
        assert (
            refused.status == 403 and "bare IMDi og kommunens administrative bruker" in await refused.text()
        )
        await sign_in(client, "bergen-super", PASSWORD)
        assert (await client.get("/support/users")).status == 403

    serve(hub, work)
    assert "oslo-two" in users(hub) and "bergen-two" not in users(hub)
    assert ("oslo-admin", "user_refused") in audit_actions(hub)


def test_hub_users_as_an_administrator_is_held_to_its_municipality(sqlite_url: str) -> None:
    hub = with_municipal_users(web_hub(sqlite_url))
    settings = hub.settings
    environment = {"NIR_NEW_PASSWORD": PASSWORD}
    os.environ.update(environment)
    try:
        ok = hub_command(
            settings,
            "users",
            "add",
            "oslo-cli",
            "--role",
            "municipality_superuser",
            "--municipality",
            "0301",
            "--as",
            "oslo-admin",
        )
        assert ok.returncode == 0, ok.stderr
        refused = hub_command(
            settings,
            "users",
            "add",
            "bergen-cli",
            "--role",
            "municipality_superuser",
            "--municipality",
            "4601",
            "--as",
            "oslo-admin",
        )
        assert refused.returncode != 0 and "may not add" in refused.stderr
        raised = hub_command(
            settings, "users", "set-role", "oslo-cli", "--role", "imdi_support", "--as", "oslo-admin"
        )
        assert raised.returncode != 0
    finally:
        for key in environment:
            os.environ.pop(key, None)
    assert users(hub)["oslo-cli"][:2] == ("municipality_superuser", "0301") and "bergen-cli" not in users(hub)


def test_in_chromium_an_administrator_adds_a_user_to_its_municipality_and_is_refused_for_another(
    sqlite_url: str,
) -> None:
    hub = with_municipal_users(web_hub(sqlite_url))
    with support_page_in_chromium(hub) as (base, browser):
        tab = browser.new_page()
        tab.goto(base + "/support/tickets")
        tab.fill("#username", "oslo-admin")
        tab.fill("#password", PASSWORD)
        tab.click("#sign-in")
        app = pyotp.TOTP(tab.inner_text("#totp-secret").replace(" ", ""))  # enrols, as on any first sign-in
        tab.fill("#code", app.at(hub.clock()))
        tab.click("#confirm")
        tab.click("#continue")  # past the recovery codes
        tab.click("#nav-users")
        for name, municipality in (("oslo-browser", "0301"), ("bergen-browser", "4601")):
            tab.goto(base + "/support/users")
            tab.fill("#new-username", name)
            tab.fill("#new-password", PASSWORD)
            tab.select_option("#new-role", "municipality_superuser")
            tab.fill("#new-municipality", municipality)
            tab.click("#add-user-button")
            if municipality == "0301":
                assert "oslo-browser" in tab.text_content("#done")
                assert tab.locator('tr.user[data-username="oslo-browser"]').count() == 1
            else:
                assert "bare IMDi og kommunens administrative bruker" in tab.text_content("#message")
    assert "oslo-browser" in users(hub) and "bergen-browser" not in users(hub)
