"""The second factor of a local account's sign-in on the support page (in the test's process,
aiohttp's test client): enrolment by QR code, a code accepted once, recovery codes, the lockout
counting wrong codes, and the reset by an administrator, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import re

import pyotp
from sqlalchemy import select

from hub.bootstrap import Hub
from hub.register.database import make_session_factory
from hub.register.models import AuditEntry, PendingSignIn, RecoveryCode, SignInAttempt, User
from hub.support.access import PENDING_LIFETIME
from tests.harness import hub_command
from tests.integration.test_support_web import (
    PASSWORD,
    SECOND_FACTOR,
    Client,
    audited,
    serve,
    web_hub,
)

SESSION, PENDING = "nir_support_session", "nir_support_pending"


async def password_step(client: Client, username: str = "kari") -> str:
    """Sign in with the password only; the second factor's page."""
    page = await (await client.get("/support/login")).text()
    token = re.search(r'name="form_token" value="([0-9a-f]+)"', page)
    assert token is not None
    answer = await client.post(
        "/support/login",
        data={"username": username, "password": PASSWORD, "next": "/tickets", "form_token": token.group(1)},
        allow_redirects=False,
    )
    assert answer.status == 303 and answer.headers["Location"].startswith(SECOND_FACTOR)
    assert SESSION not in answer.cookies and PENDING in answer.cookies
    return await (await client.get(answer.headers["Location"])).text()


async def give(client: Client, page: str, code: str) -> tuple[int, str]:
    token = re.search(r'name="form_token" value="([0-9a-f]+)"', page)
    assert token is not None
    answer = await client.post(
        SECOND_FACTOR,
        data={"form_token": token.group(1), "code": code, "next": "/tickets"},
        allow_redirects=False,
    )
    return answer.status, await answer.text()


def secret_on(page: str) -> str:
    shown = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page)
    assert shown is not None
    return shown.group(1).replace(" ", "")


async def signed_in_page(client: Client) -> int:
    return (await client.get("/support/tickets", allow_redirects=False)).status


async def enrol(client: Client, hub: Hub) -> tuple[pyotp.TOTP, list[str]]:
    page = await password_step(client)
    app = pyotp.TOTP(secret_on(page))
    status, body = await give(client, page, app.at(hub.clock()))
    assert status == 200
    return app, re.findall(r"<li><code>([A-Z2-7-]+)</code></li>", body)


def later(hub: Hub, seconds: float) -> None:
    hub.clock.now += dt.timedelta(seconds=seconds)  # type: ignore[attr-defined]


def test_the_password_alone_opens_no_session_and_the_half_signed_in_state_expires(database_url: str) -> None:
    hub = web_hub(database_url)

    async def work(client: Client) -> None:
        page = await password_step(client)
        assert await signed_in_page(client) == 303  # to the sign-in page: not signed in
        later(hub, PENDING_LIFETIME.total_seconds() + 1)
        status, _ = await give(client, page, pyotp.TOTP(secret_on(page)).at(hub.clock()))
        assert status == 303 and await signed_in_page(client) == 303

    serve(hub, work)
    assert audited(hub, "sign_in") == [] and audited(hub, "password_accepted") == ["from 127.0.0.1"]


def test_a_first_sign_in_enrols_by_qr_code_and_shows_ten_recovery_codes_stored_only_hashed(
    database_url: str,
) -> None:
    hub = web_hub(database_url)
    shown: dict[str, object] = {}

    async def work(client: Client) -> None:
        page = await password_step(client)
        assert "<svg" in page and 'id="qr"' in page
        secret = secret_on(page)
        status, body = await give(client, page, pyotp.TOTP(secret).at(hub.clock() - dt.timedelta(minutes=5)))
        assert status == 401 and await signed_in_page(client) == 303  # a wrong code: no session
        status, body = await give(client, page, pyotp.TOTP(secret).at(hub.clock()))
        codes = re.findall(r"<li><code>([A-Z2-7-]+)</code></li>", body)
        assert status == 200 and len(set(codes)) == 10
        assert await signed_in_page(client) == 200
        shown.update(secret=secret, codes=codes)

    serve(hub, work)
    with make_session_factory(hub.engine)() as session:
        kari = session.scalars(select(User).where(User.username == "kari")).one()
        assert kari.totp_enrolled_at is not None and kari.totp_secret is not None
        assert str(shown["secret"]) not in kari.totp_secret  # sealed, not in clear
        stored = [r.code_hash for r in session.scalars(select(RecoveryCode))]
        assert len(stored) == 10 and not set(stored) & set(shown["codes"])  # type: ignore[arg-type]
        assert session.scalar(select(PendingSignIn)) is None
    assert audited(hub, "sign_in_failed") == ["wrong_code from 127.0.0.1"]
    assert audited(hub, "sign_in") == ["from 127.0.0.1, second factor enrolled"]


def test_an_enrolled_user_gives_a_current_code_and_the_same_code_is_not_accepted_twice(
    database_url: str,
) -> None:
    hub = web_hub(database_url)

    async def work(client: Client) -> None:
        app, _ = await enrol(client, hub)
        client.session.cookie_jar.clear()
        later(hub, 30)
        page = await password_step(client)
        assert "totp-secret" not in page  # enrolled: no new secret is offered
        code = app.at(hub.clock())
        assert (await give(client, page, code))[0] == 303 and await signed_in_page(client) == 200
        client.session.cookie_jar.clear()
        page = await password_step(client)
        assert (await give(client, page, code))[0] == 401  # the same code, replayed
        assert await signed_in_page(client) == 303
        later(hub, 30)
        assert (await give(client, page, app.at(hub.clock())))[0] == 303  # the next one does

    serve(hub, work)
    assert audited(hub, "sign_in_failed") == ["wrong_code from 127.0.0.1"]


def test_a_recovery_code_signs_in_once(database_url: str) -> None:
    hub = web_hub(database_url)

    async def work(client: Client) -> None:
        _, codes = await enrol(client, hub)
        for expected in (303, 401):
            client.session.cookie_jar.clear()
            page = await password_step(client)
            assert (await give(client, page, codes[3].lower().replace("-", " ")))[0] == expected

    serve(hub, work)
    with make_session_factory(hub.engine)() as session:
        assert len(list(session.scalars(select(RecoveryCode).where(RecoveryCode.used_at.is_not(None))))) == 1
    assert audited(hub, "sign_in")[-1] == "from 127.0.0.1, with a recovery code"


def test_wrong_codes_count_towards_the_lockout_and_then_even_the_right_code_is_refused(
    database_url: str,
) -> None:
    hub = web_hub(database_url)

    async def work(client: Client) -> None:
        app, _ = await enrol(client, hub)
        client.session.cookie_jar.clear()
        later(hub, 30)
        page = await password_step(client)
        for _ in range(5):
            assert (await give(client, page, "000000"))[0] == 401
        status, _ = await give(client, page, app.at(hub.clock()))
        assert status == 429 and await signed_in_page(client) == 303

    serve(hub, work)
    assert audited(hub, "sign_in_failed") == ["wrong_code from 127.0.0.1"] * 5 + ["locked from 127.0.0.1"]
    with make_session_factory(hub.engine)() as session:
        assert len(list(session.scalars(select(SignInAttempt)))) == 5


def test_an_administrator_resets_a_second_factor_audited_and_the_user_enrols_again(database_url: str) -> None:
    hub = web_hub(database_url)

    async def enrolled(client: Client) -> None:
        await enrol(client, hub)

    serve(hub, enrolled)
    reset = hub_command(hub.settings, "users", "reset-second-factor", "kari", "--user", "admin")
    assert reset.returncode == 0, reset.stderr
    with make_session_factory(hub.engine)() as session:
        kari = session.scalars(select(User).where(User.username == "kari")).one()
        assert (kari.totp_secret, kari.totp_enrolled_at) == (None, None)
        assert session.scalar(select(RecoveryCode)) is None
    assert audited(hub, "reset_second_factor") == ["user kari"]
    with make_session_factory(hub.engine)() as session:
        who = list(
            session.scalars(select(AuditEntry.username).where(AuditEntry.action == "reset_second_factor"))
        )
    assert who == ["admin"]  # who did it

    async def again(client: Client) -> None:
        later(hub, 30)
        assert "totp-secret" in await password_step(client)

    serve(hub, again)
