"""The worker's web server in the test's own process (aiohttp's test client, no broker): the
support page's sign-in, the headers on every answer, and what is not served, on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import os
import re
import shutil
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import faust
import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from hub.app import serve_web
from hub.bootstrap import Hub
from hub.register.models import AuditEntry, CaseTicket
from hub.register.unit_of_work import UnitOfWork
from hub.support import desk
from hub.support.access import Role, create_user, disable_user
from hub.support.i18n import translate
from hub.webserver import FAUST_APP_OPTIONS
from tests.conftest import pipeline_hub

PASSWORD = "correct horse battery"
WRONG_DETAILS = translate("nb", "sign_in.wrong")  # Norwegian: the page's language until one is chosen
LOCKED_OUT = translate("nb", "sign_in.locked")
CHROMIUM = os.environ.get("NIR_TEST_CHROMIUM", "/usr/bin/chromium")
T = TypeVar("T")
Client = TestClient[Any, Any]


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


def web_hub(database_url: str, **settings: Any) -> Hub:
    hub = pipeline_hub(database_url)
    quick = {"signin_delay_seconds": 0.01, "signin_delay_max_seconds": 0.02, **settings}
    hub = dataclasses.replace(hub, settings=dataclasses.replace(hub.settings, **quick), clock=Clock())
    with UnitOfWork(hub.session_factory) as uow:
        create_user(uow.session, "kari", PASSWORD, Role.IMDI_SUPPORT, None, hub.clock())
        uow.commit()
    return hub


def serve(hub: Hub, work: Callable[[Client], Awaitable[T]]) -> T:
    """Run `work` against a web server built as the worker builds its own, for `hub`."""
    app = faust.App(f"test-web-{uuid.uuid4().hex[:8]}", **FAUST_APP_OPTIONS)
    serve_web(app, hub)
    app.web.init_server()  # Faust's own views, as the worker's start adds them

    async def run() -> T:
        async with TestClient(TestServer(app.web.web_app)) as client:  # type: ignore[attr-defined]
            return await work(client)

    return asyncio.run(run())


async def sign_in(
    client: Client, username: str, password: str, *, token: str | None = None
) -> ClientResponse:
    page = await (await client.get("/support/login")).text()
    found = re.search(r'name="form_token" value="([0-9a-f]+)"', page)
    assert found is not None
    form = {"username": username, "password": password, "next": "/tickets"}
    form["form_token"] = found.group(1) if token is None else token
    return await client.post("/support/login", data=form, allow_redirects=False)


def audited(hub: Hub, action: str) -> list[str | None]:
    with hub.session_factory() as session:
        return list(session.scalars(select(AuditEntry.detail).where(AuditEntry.action == action)))


def test_the_right_password_after_five_wrong_ones_is_refused_for_the_lockout(database_url: str) -> None:
    hub = web_hub(database_url)

    async def work(client: Client) -> None:
        for _ in range(5):
            wrong = await sign_in(client, "kari", "wrong password!!")
            assert wrong.status == 401 and WRONG_DETAILS in await wrong.text()
        locked = await sign_in(client, "kari", PASSWORD)
        assert locked.status == 429 and LOCKED_OUT in await locked.text()
        assert "nir_support_session" not in locked.cookies
        hub.clock.now += dt.timedelta(minutes=16)  # type: ignore[attr-defined]
        signed_in = await sign_in(client, "kari", PASSWORD)
        assert signed_in.status == 303 and signed_in.headers["Location"] == "/support/tickets"
        assert (await client.get("/support/tickets")).status == 200

    serve(hub, work)
    assert audited(hub, "sign_in_failed") == ["wrong_password from 127.0.0.1"] * 5 + ["locked from 127.0.0.1"]


def test_a_disabled_user_cannot_sign_in_and_is_told_no_more_than_for_a_wrong_password(
    database_url: str,
) -> None:
    hub = web_hub(database_url)

    async def work(client: Client) -> None:
        assert (await sign_in(client, "kari", PASSWORD)).status == 303
        assert (await client.get("/support/tickets", allow_redirects=False)).status == 200
        with UnitOfWork(hub.session_factory) as uow:
            disable_user(uow.session, "kari", "admin", hub.clock())
            uow.commit()
        ended = await client.get("/support/tickets", allow_redirects=False)
        assert ended.status == 303 and ended.headers["Location"].startswith("/support/login")
        refused = await sign_in(client, "kari", PASSWORD)
        assert refused.status == 401 and WRONG_DETAILS in await refused.text()

    serve(hub, work)
    assert audited(hub, "sign_in_failed") == ["disabled from 127.0.0.1"]


def test_a_sign_in_without_the_form_s_anti_forgery_value_is_refused(database_url: str) -> None:
    hub = web_hub(database_url)

    async def work(client: Client) -> None:
        for token in ("", "0" * 64):
            forged = await sign_in(client, "kari", PASSWORD, token=token)
            assert forged.status == 403 and "kom ikke fra denne siden" in await forged.text()
            assert "nir_support_session" not in forged.cookies
        client.session.cookie_jar.clear()  # a post from another site carries no cookie of ours
        bare = await client.post("/support/login", data={"username": "kari", "password": PASSWORD})
        assert bare.status == 403

    serve(hub, work)
    assert audited(hub, "sign_in") == []


def test_a_failed_sign_in_waits_without_holding_up_other_requests(sqlite_url: str) -> None:
    hub = web_hub(sqlite_url, signin_delay_seconds=1.0, signin_delay_max_seconds=1.0)

    async def work(client: Client) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        failing = asyncio.create_task(sign_in(client, "kari", "wrong password!!"))
        await asyncio.sleep(0.3)
        assert (await client.get("/health/live")).status == 200
        answered_meanwhile = loop.time() - started
        assert (await failing).status == 401
        assert answered_meanwhile < 0.9 < loop.time() - started

    serve(hub, work)


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def assert_secured(response: ClientResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (response.url.path, name)
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy


@pytest.mark.parametrize("path", ["/router/", "/table/", "/graph/", "/stats/", "/assignment/", "/nothing"])
def test_faust_s_own_views_are_not_served_and_the_404_carries_the_security_headers(
    sqlite_url: str, path: str
) -> None:
    async def work(client: Client) -> None:
        response = await client.get(path)
        assert response.status == 404
        assert_secured(response)

    serve(web_hub(sqlite_url), work)


def test_every_answer_carries_the_security_headers_error_pages_and_metrics_too(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the register fell over")

    async def work(client: Client) -> None:
        for path in ("/support/login", "/support/tickets", "/metrics", "/health/live", "/"):
            response = await client.get(path, allow_redirects=False)
            assert response.status in (200, 303), path
            assert_secured(response)
            assert "Strict-Transport-Security" not in response.headers
        not_allowed = await client.request("DELETE", "/metrics")
        assert not_allowed.status == 405
        assert_secured(not_allowed)
        await sign_in(client, "kari", PASSWORD)
        monkeypatch.setattr(desk, "ticket_list", broken)
        failed = await client.get("/support/tickets")
        assert failed.status == 500
        assert_secured(failed)

    serve(web_hub(sqlite_url), work)


def test_over_tls_every_answer_asks_for_tls_and_cookies_are_secure(sqlite_url: str) -> None:
    async def work(client: Client) -> None:
        for path in ("/support/login", "/nothing"):
            response = await client.get(path)
            assert response.headers["Strict-Transport-Security"].startswith("max-age=")
        page = await client.get("/support/login")
        assert "Secure" in page.headers["Set-Cookie"]

    serve(web_hub(sqlite_url, support_secure_cookie=True), work)


def test_with_a_metrics_port_metrics_are_served_there_and_not_on_the_web_server(sqlite_url: str) -> None:
    from hub.localrun import free_port

    port = free_port()
    hub = web_hub(sqlite_url, metrics_port=port)
    app = faust.App(f"test-web-{uuid.uuid4().hex[:8]}", **FAUST_APP_OPTIONS)
    serve_web(app, hub)
    app.web.init_server()

    async def run() -> None:
        async with TestClient(TestServer(app.web.web_app)) as client:  # type: ignore[attr-defined]
            assert (await client.get("/metrics")).status == 404
            [server_class] = app._extra_services  # type: ignore[attr-defined]
            server = server_class()
            await server.start()
            try:
                async with client.session.get(f"http://127.0.0.1:{port}/metrics") as response:
                    assert response.status == 200 and "nir_events_total" in await response.text()
                    assert_secured(response)
            finally:
                await server.stop()

    asyncio.run(run())


@contextlib.contextmanager
def served_in_a_thread(web_app: web.Application) -> Iterator[str]:
    """`web_app` on a free local port, served from an event loop of its own (Playwright's sync
    API keeps one running in the test's thread)."""
    from hub.localrun import free_port

    port, loop, runner = free_port(), asyncio.new_event_loop(), web.AppRunner(web_app, access_log=None)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.run_until_complete(runner.cleanup())
        loop.close()


def test_in_a_browser_the_page_s_style_passes_the_content_security_policy_and_sign_in_works(
    sqlite_url: str,
) -> None:
    playwright_api = pytest.importorskip("playwright.sync_api")
    if shutil.which(CHROMIUM) is None:
        message = f"no Chromium at {CHROMIUM} (Debian package 'chromium'; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    app = faust.App(f"test-web-{uuid.uuid4().hex[:8]}", **FAUST_APP_OPTIONS)
    serve_web(app, web_hub(sqlite_url))
    app.web.init_server()
    with served_in_a_thread(app.web.web_app) as base, playwright_api.sync_playwright() as p:  # type: ignore[attr-defined]
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        tab = browser.new_page()
        refused: list[str] = []
        tab.on("console", lambda message: refused.append(message.text))
        tab.goto(base + "/support/tickets")
        tab.fill("#username", "kari")
        tab.fill("#password", PASSWORD)
        tab.click("#sign-in")
        assert tab.url == base + "/support/tickets"
        header = tab.evaluate("getComputedStyle(document.querySelector('header')).backgroundColor")
        assert header == "rgb(0, 36, 78)"  # base.html's style sheet was applied
        assert refused == []  # and the browser reported no policy violation
        browser.close()


def test_the_page_speaks_norwegian_until_a_user_chooses_english_which_is_kept_on_the_user(
    database_url: str,
) -> None:
    hub = web_hub(database_url)

    async def work(client: Client) -> None:
        login = await (await client.get("/support/login")).text()
        assert 'lang="nb"' in login and "Brukernavn" in login
        english_login = await (await client.get("/support/login?lang=en")).text()
        assert "Username" in english_login
        assert "Brukernavn" in await (await client.get("/support/login?lang=xx")).text()  # hostile: ignored
        await sign_in(client, "kari", PASSWORD)
        page = await (await client.get("/support/tickets")).text()
        assert "Saker" in page and "Feilet fra" in page
        token = re.search(r'name="form_token" value="([0-9a-f]+)"', page)
        assert token is not None
        refused = await client.post(
            "/support/language", data={"form_token": token.group(1), "language": "de"}, allow_redirects=False
        )
        assert refused.status == 400
        chosen = await client.post(
            "/support/language",
            data={"form_token": token.group(1), "language": "en", "next": "/tickets?status=open"},
            allow_redirects=False,
        )
        assert chosen.status == 303 and chosen.headers["Location"] == "/support/tickets?status=open"
        forged = await client.post("/support/language", data={"language": "nb"}, allow_redirects=False)
        assert forged.status == 403
        client.session.cookie_jar.clear()
        await sign_in(client, "kari", PASSWORD)  # a new session: the choice is the user's
        assert "Failed from" in await (await client.get("/support/tickets")).text()

    serve(hub, work)


@pytest.mark.parametrize("bad", ["2026-12-01", "31.02.2026", "32.12", "01.12.1899", "x" * 65])
def test_a_malformed_filter_date_is_answered_with_what_is_wrong_never_a_500(
    sqlite_url: str, bad: str
) -> None:
    async def work(client: Client) -> None:
        await sign_in(client, "kari", PASSWORD)
        answer = await client.get("/support/tickets", params={"from": bad})
        text = await answer.text()
        assert answer.status == 400 and ("DD.MM.ÅÅÅÅ" in text or "01.01.1900" in text or "tegn" in text)
        assert bad not in text
        good = await client.get("/support/tickets", params={"from": "01.12.2026", "until": "2.12.2026"})
        assert good.status == 200

    serve(web_hub(sqlite_url), work)


def test_a_ticket_says_why_its_event_failed_in_the_users_language(database_url: str) -> None:
    hub = web_hub(database_url)
    with UnitOfWork(hub.session_factory) as uow:
        ticket = CaseTicket(
            status="open",
            kind="dead_letter",
            error_code="NIR-DATE-003",
            error_message="NIR-DATE-003: payload.periodEnd is before payload.periodStart",
            error_message_nb="NIR-DATE-003: payload.periodEnd er før payload.periodStart",
            municipality="0301",
            first_failed_at=hub.clock(),
            last_failed_at=hub.clock(),
            attempts=1,
            replays=0,
        )
        uow.session.add(ticket)
        uow.commit()
        ticket_id = ticket.id

    async def work(client: Client) -> None:
        await sign_in(client, "kari", PASSWORD)
        norwegian = await (await client.get(f"/support/tickets/{ticket_id}")).text()
        assert "periodEnd er før" in norwegian and "is before" not in norwegian
        page = await (await client.get("/support/tickets")).text()
        token = re.search(r'name="form_token" value="([0-9a-f]+)"', page)
        assert token is not None
        await client.post("/support/language", data={"form_token": token.group(1), "language": "en"})
        english = await (await client.get(f"/support/tickets/{ticket_id}")).text()
        assert "periodEnd is before" in english and "er før" not in english

    serve(hub, work)
