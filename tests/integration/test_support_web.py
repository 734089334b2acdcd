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
import pyotp
import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from hub.app import serve_web
from hub.bootstrap import Hub
from hub.domain.events import Origin
from hub.ops.webserver import FAUST_APP_OPTIONS
from hub.register.database import make_session_factory
from hub.register.models import AuditEntry, CaseTicket, PersonMerge
from hub.register.repository import find_person_id
from hub.support import desk
from hub.support import web as support_web
from hub.support.access import Role, create_user, disable_user
from hub.support.i18n import translate
from hub.support.replay import ReplayReport
from hub.support.tickets import IDENTITY_CONFLICT_KIND, file_manual_case, ticket_from_dead_letter
from tests.conftest import pipeline_hub
from tests.decisions import days_ago, later, run
from tests.factories import Person, event, synthetic_person

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
    with hub.unit_of_work() as uow:
        create_user(uow, "kari", PASSWORD, Role.IMDI_SUPPORT, None, hub.clock())
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
    answer = await client.post("/support/login", data=form, allow_redirects=False)
    if answer.status == 303 and answer.headers["Location"].startswith(SECOND_FACTOR):
        return await give_code(client, username, answer.headers["Location"])
    return answer


SECOND_FACTOR = "/support/login/second-factor"
# The authenticator apps of the tests' users: the secret each enrolled with, by hub and username,
# and the last time step whose code was given (a code is accepted once).
APPS: dict[tuple[int, str], str] = {}
LAST_STEPS: dict[tuple[int, str], int] = {}


async def give_code(client: Client, username: str, location: str = SECOND_FACTOR) -> ClientResponse:
    """Complete a sign-in's second factor as its user would: enrol with the secret the page shows
    (its QR code's), or give the app's current code, waiting for the next one (on the test's
    clock) if this one was used already. The answer: the recovery codes' page after enrolling,
    else the redirect to where the sign-in was going."""
    hub = support_web.SupportView.hub
    key = (id(hub), username)
    page = await (await client.get(location)).text()
    shown = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page)
    if shown is not None:
        APPS[key] = shown.group(1).replace(" ", "")
    app = pyotp.TOTP(APPS[key])
    if app.timecode(hub.clock()) <= LAST_STEPS.get(key, -1):
        hub.clock.now += dt.timedelta(seconds=app.interval)  # type: ignore[attr-defined]
    LAST_STEPS[key] = app.timecode(hub.clock())
    token = re.search(r'name="form_token" value="([0-9a-f]+)"', page)
    assert token is not None
    return await client.post(
        SECOND_FACTOR,
        data={"form_token": token.group(1), "code": app.at(hub.clock()), "next": "/tickets"},
        allow_redirects=False,
    )


def audited(hub: Hub, action: str) -> list[str | None]:
    with make_session_factory(hub.engine)() as session:
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
        signed_in = await sign_in(client, "kari", PASSWORD)  # and enrolled the second factor
        assert signed_in.status == 200 and 'href="/support/tickets"' in await signed_in.text()
        assert (await client.get("/support/tickets")).status == 200

    serve(hub, work)
    assert audited(hub, "sign_in_failed") == ["wrong_password from 127.0.0.1"] * 5 + ["locked from 127.0.0.1"]


def test_a_disabled_user_cannot_sign_in_and_is_told_no_more_than_for_a_wrong_password(
    database_url: str,
) -> None:
    hub = web_hub(database_url)

    async def work(client: Client) -> None:
        await sign_in(client, "kari", PASSWORD)
        assert (await client.get("/support/tickets", allow_redirects=False)).status == 200
        with hub.unit_of_work() as uow:
            disable_user(uow, "kari", "admin", hub.clock())
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
    from hub.dev.localrun import free_port

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
    from hub.dev.localrun import free_port

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


@contextlib.contextmanager
def support_page_in_chromium(hub: Hub) -> Iterator[tuple[str, Any]]:
    """The support page for `hub`, served as the worker serves it, and a Chromium to open it:
    (the page's base URL, the browser). Debian's Chromium, as CI installs it: missing, the test
    fails on CI and is skipped elsewhere."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    if shutil.which(CHROMIUM) is None:
        message = f"no Chromium at {CHROMIUM} (Debian package 'chromium'; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    app = faust.App(f"test-web-{uuid.uuid4().hex[:8]}", **FAUST_APP_OPTIONS)
    serve_web(app, hub)
    app.web.init_server()
    with served_in_a_thread(app.web.web_app) as base, playwright_api.sync_playwright() as p:  # type: ignore[attr-defined]
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        try:
            yield base, browser
        finally:
            browser.close()


def test_in_a_browser_the_page_s_style_passes_the_content_security_policy_and_sign_in_with_a_second_factor_works(
    sqlite_url: str,
) -> None:
    hub = web_hub(sqlite_url)
    with support_page_in_chromium(hub) as (base, browser):
        tab = browser.new_page()
        refused: list[str] = []
        tab.on("console", lambda message: refused.append(message.text))
        tab.goto(base + "/support/tickets")
        tab.fill("#username", "kari")
        tab.fill("#password", PASSWORD)
        tab.click("#sign-in")
        # First sign-in: enrolment, by the QR code (inline SVG) or the key shown beside it.
        assert tab.url.startswith(base + SECOND_FACTOR) and tab.locator("#qr svg").count() == 1
        app = pyotp.TOTP(tab.inner_text("#totp-secret").replace(" ", ""))
        tab.fill("#code", app.at(hub.clock()))
        tab.click("#confirm")
        codes = tab.locator("#recovery-codes li").all_inner_texts()
        assert len(codes) == 10 and len(set(codes)) == 10
        tab.click("#continue")
        assert tab.url == base + "/support/tickets"
        tab.click("text=" + translate("nb", "sign_out"))
        # Next sign-in: the app's code, the next one (this one was used).
        hub.clock.now += dt.timedelta(seconds=30)  # type: ignore[attr-defined]
        tab.goto(base + "/support/tickets")
        tab.fill("#username", "kari")
        tab.fill("#password", PASSWORD)
        tab.click("#sign-in")
        assert tab.locator("#qr").count() == 0
        tab.fill("#code", app.at(hub.clock()))
        tab.click("#confirm")
        assert tab.url == base + "/support/tickets"
        header = tab.evaluate("getComputedStyle(document.querySelector('header')).backgroundColor")
        assert header == "rgb(0, 36, 78)"  # base.html's style sheet was applied
        assert refused == []  # and the browser reported no policy violation


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


def test_a_person_is_searched_for_by_post_and_a_number_in_an_address_is_refused(database_url: str) -> None:
    """Issue 29, point 9: the number went into the URL (browser history, proxies' logs)."""
    number = "17058742341"

    async def work(client: Client) -> None:
        await sign_in(client, "kari", PASSWORD)
        in_url = await client.get("/support/tickets", params={"person": number})
        text = await in_url.text()
        assert in_url.status == 400 and "hører ikke hjemme i en adresse" in text and number not in text
        page, token = await page_and_token(client, "/support/tickets")
        assert 'method="post" action="/support/tickets/search"' in page
        found = await client.post("/support/tickets/search", data={"person": number, "form_token": token})
        text = await found.text()
        assert found.status == 200 and str(found.url).endswith("/support/tickets/search")
        assert f"person={number}" not in text  # no link carries it
        forged = await client.post("/support/tickets/search", data={"person": number, "form_token": "0" * 64})
        assert forged.status == 403

    hub = web_hub(database_url)
    serve(hub, work)
    assert len(audited(hub, "search_person")) == 1


def test_a_ticket_says_why_its_event_failed_in_the_users_language(database_url: str) -> None:
    hub = web_hub(database_url)
    with hub.unit_of_work() as uow:
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


# --- IMDi's decisions on the desk: identity conflicts, merges and splits, approvals -------------

BERGEN = "vestland-fagsystem"  # reports for 4601 only


def register_hub(database_url: str) -> Hub:
    """A web hub whose clock reads today: the events of `tests.factories` are sent now."""
    hub = web_hub(database_url)
    hub.clock.now = dt.datetime.now(dt.UTC)  # type: ignore[attr-defined]
    return hub


def municipality_user(hub: Hub, username: str, municipality: str) -> None:
    with hub.unit_of_work() as uow:
        create_user(uow, username, PASSWORD, Role.MUNICIPALITY_SUPERUSER, municipality, hub.clock())
        uow.commit()


def tickets_of_dead_letters(hub: Hub, *batches: list[dict[str, Any]]) -> list[int]:
    """The events through the registration flow; each dead letter it sent opened as a ticket, as
    the dead-letter worker opens them."""
    _, publisher = run(hub, *batches)
    with hub.unit_of_work() as uow:
        ids = [
            ticket_from_dead_letter(
                uow,
                hub.catalog,
                key=key,
                value=value,
                headers=tuple((name, text.encode()) for name, text in headers.items()),
                dead_letter=Origin("nir.dead-letters", 0, offset),
                source_of=hub.names.source_of,
                now=hub.clock(),
            ).id
            for offset, (_, key, value, headers) in enumerate(publisher.on("nir.dead-letters"))
        ]
        uow.commit()
    return ids


def identity_conflict(hub: Hub) -> tuple[Person, Person, int]:
    """Two registered persons, and the ticket of an event that names one's fødselsnummer and the
    other's DUF number."""
    first, second = synthetic_person(), synthetic_person()
    run(hub, [event(first), event(second)])
    [ticket_id] = tickets_of_dead_letters(
        hub, [event(Person(first.national_id, second.duf_number), "TRAINING_DECISION")]
    )
    return first, second, ticket_id


def correction(
    of: dict[str, Any], action: str = "CORRECT", seconds: int = 1, **changes: Any
) -> dict[str, Any]:
    """A correction (or annulment) of `of`, sent `seconds` after it, by the same source unless told."""
    person = Person(of["person"]["nationalId"], of["person"]["dufNumber"])
    fresh = event(person, of["eventType"], fact_date=dt.date.fromisoformat(of["factDate"]))
    return {
        **fresh,
        "action": action,
        "correctsEventId": of["eventId"],
        "sentAt": later(of["sentAt"], seconds),
        **changes,
    }


class Replays:
    """Stands in for the broker side of a replay: records what the desk asked to replay."""

    def __init__(self, *, fail: bool = False) -> None:
        self.asked: list[tuple[list[int], str | None]] = []
        self.fail = fail

    async def __call__(self, hub: Hub, ticket_ids: list[int], **options: Any) -> ReplayReport:
        self.asked.append((list(ticket_ids), options.get("user")))
        if self.fail:
            raise ConnectionError("no broker")
        return ReplayReport(replayed=list(ticket_ids))


async def page_and_token(client: Client, path: str) -> tuple[str, str]:
    page = await (await client.get(path)).text()
    token = re.search(r'name="form_token" value="([0-9a-f]+)"', page)
    assert token is not None
    return page, token.group(1)


def the_person(hub: Hub, number: str | None) -> int | None:
    assert number is not None
    with make_session_factory(hub.engine)() as session:
        return find_person_id(session, number)


def test_imdi_sees_both_persons_of_an_identity_conflict_in_full_and_a_municipality_neither(
    sqlite_url: str,
) -> None:
    hub = register_hub(sqlite_url)
    first, second, ticket_id = identity_conflict(hub)
    municipality_user(hub, "oslo", "0301")
    numbers = [first.national_id, first.duf_number, second.national_id, second.duf_number]
    first_duf, second_nid, second_duf = (
        first.duf_number or "",
        second.national_id or "",
        second.duf_number or "",
    )

    async def work(client: Client) -> None:
        await sign_in(client, "kari", PASSWORD)
        page = await (await client.get(f"/support/tickets/{ticket_id}")).text()
        assert 'id="identity"' in page and 'id="register"' not in page
        assert 'data-found-by="national_id"' in page and 'data-found-by="duf"' in page
        assert all(number and number in page for number in numbers)  # both persons' numbers, in full
        assert 'id="merge"' in page and 'id="keep-national_id"' in page and 'id="keep-duf"' in page
        listed = await (await client.get("/support/tickets")).text()
        assert f"…{second_duf[-4:]}" in listed and second_duf not in listed
        client.session.cookie_jar.clear()
        await sign_in(client, "oslo", PASSWORD)
        theirs = await (await client.get(f"/support/tickets/{ticket_id}")).text()
        assert 'id="identity-imdi-only"' in theirs and translate("nb", "identity.imdi_only") in theirs
        assert 'id="identity"' not in theirs and 'id="register"' not in theirs
        assert 'id="merge"' not in theirs and "/split" not in theirs
        # the event's own numbers are the ticket's; the persons' other numbers are not shown
        assert first_duf not in theirs and second_nid not in theirs

    serve(hub, work)


def test_a_second_number_of_one_kind_shows_the_one_person_and_no_merge(sqlite_url: str) -> None:
    hub = register_hub(sqlite_url)
    person, stranger = synthetic_person(), synthetic_person()
    run(hub, [event(person)])
    [ticket_id] = tickets_of_dead_letters(
        hub, [event(Person(person.national_id, stranger.duf_number), "TRAINING_DECISION")]
    )

    async def work(client: Client) -> None:
        await sign_in(client, "kari", PASSWORD)
        page = await (await client.get(f"/support/tickets/{ticket_id}")).text()
        assert page.count('class="identity-person"') == 1 and 'data-found-by="national_id"' in page
        assert translate("nb", "identity.not_found_duf", number=stranger.duf_number) in page
        assert 'id="identity-second-number"' in page and 'id="merge"' not in page

    serve(hub, work)


def test_imdi_merges_the_two_persons_from_the_ticket_and_splits_them_again(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = register_hub(database_url)
    first, second, ticket_id = identity_conflict(hub)
    replays = Replays()
    monkeypatch.setattr(support_web, "replay_tickets", replays)

    async def work(client: Client) -> None:
        await sign_in(client, "kari", PASSWORD)
        path = f"/support/tickets/{ticket_id}"
        _, token = await page_and_token(client, path)
        blank = await client.post(
            f"{path}/merge", data={"form_token": token, "keep": "duf", "reason": "  "}, allow_redirects=False
        )
        assert blank.status == 400
        assert the_person(hub, first.national_id) != the_person(hub, second.duf_number)
        merged = await client.post(
            f"{path}/merge",
            data={"form_token": token, "keep": "duf", "reason": "the same woman, checked with UDI"},
            allow_redirects=False,
        )
        assert merged.status == 303 and merged.headers["Location"] == f"{path}?done=merged"
        assert replays.asked == [([ticket_id], "kari")]
        page = await (await client.get(path + "?done=merged")).text()
        assert translate("nb", "done.merged") in page and 'id="identity-one-person"' in page
        assert translate("nb", "story.merge_persons") in page and 'id="merge"' not in page
        [merge_id] = re.findall(r'name="merge_id" value="(\d+)"', page)
        again = await client.post(
            f"{path}/merge",
            data={"form_token": token, "keep": "duf", "reason": "once more"},
            allow_redirects=False,
        )
        assert again.status == 400 and "already belong to one person" in await again.text()
        split = await client.post(
            f"{path}/split",
            data={
                "form_token": token,
                "merge_id": merge_id,
                "number": "duf",
                "reason": "two women after all",
                "mixed_to": "",
            },
            allow_redirects=False,
        )
        assert split.status == 303 and split.headers["Location"] == f"{path}?done=split"
        after = await (await client.get(path)).text()
        assert 'id="merge"' in after and 'class="merge in-force"' not in after

    serve(hub, work)
    keeper = the_person(hub, second.duf_number)
    assert keeper is not None and the_person(hub, first.national_id) not in (None, keeper)
    assert the_person(hub, first.duf_number) == the_person(hub, first.national_id)
    assert the_person(hub, second.national_id) == keeper
    with make_session_factory(hub.engine)() as session:
        [merge] = session.scalars(select(PersonMerge)).all()
        assert (merge.keeper_id, merge.ticket_id, merge.merged_by) == (keeper, ticket_id, "kari")
        assert merge.split_by == "kari" and merge.split_reason == "two women after all"
        acts = session.execute(
            select(AuditEntry.action, AuditEntry.ticket_id).where(
                AuditEntry.action.in_(("merge_persons", "split_persons"))
            )
        ).all()
    assert [tuple(a) for a in acts] == [("merge_persons", ticket_id), ("split_persons", ticket_id)]


def test_while_merged_one_person_holds_every_number_of_both(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = register_hub(sqlite_url)
    first, second, ticket_id = identity_conflict(hub)
    monkeypatch.setattr(support_web, "replay_tickets", Replays())

    async def work(client: Client) -> None:
        await sign_in(client, "kari", PASSWORD)
        _, token = await page_and_token(client, f"/support/tickets/{ticket_id}")
        merged = await client.post(
            f"/support/tickets/{ticket_id}/merge",
            data={"form_token": token, "keep": "national_id", "reason": "one man"},
            allow_redirects=False,
        )
        assert merged.status == 303

    serve(hub, work)
    held = {
        the_person(hub, n)
        for n in (first.national_id, first.duf_number, second.national_id, second.duf_number)
    }
    assert held == {the_person(hub, first.national_id)} and None not in held


def test_a_municipality_user_s_merge_split_or_approval_is_refused_and_changes_nothing(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = register_hub(sqlite_url)
    first, second, ticket_id = identity_conflict(hub)
    municipality_user(hub, "oslo", "0301")
    municipality_user(hub, "bergen", "4601")
    replays = Replays()
    monkeypatch.setattr(support_web, "replay_tickets", replays)

    async def work(client: Client) -> None:
        await sign_in(client, "oslo", PASSWORD)
        path = f"/support/tickets/{ticket_id}"
        _, token = await page_and_token(client, path)
        for action, form in (
            ("merge", {"keep": "duf", "reason": "I think so"}),
            ("split", {"number": "duf", "merge_id": "1", "reason": "no", "mixed_to": ""}),
            ("approve", {"note": "fine by me"}),
        ):
            refused = await client.post(f"{path}/{action}", data={"form_token": token, **form})
            assert refused.status == 403, action
            assert translate("nb", "refused.imdi_only") in await refused.text()
        client.session.cookie_jar.clear()
        await sign_in(client, "bergen", PASSWORD)  # not their ticket: as if there were none
        _, token = await page_and_token(client, "/support/tickets")
        hidden = await client.post(f"{path}/merge", data={"form_token": token, "keep": "duf", "reason": "x"})
        assert hidden.status == 404

    serve(hub, work)
    assert replays.asked == []
    assert the_person(hub, first.national_id) != the_person(hub, second.duf_number)
    with make_session_factory(hub.engine)() as session:
        assert session.scalars(select(PersonMerge)).all() == []
        assert session.get_one(CaseTicket, ticket_id).approved_code is None
        denied = session.scalars(select(AuditEntry.username).where(AuditEntry.action == "denied")).all()
    assert denied == ["oslo", "oslo", "oslo", "bergen"]


def test_imdi_approves_a_foreign_annulment_and_a_municipality_user_cannot(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = register_hub(sqlite_url)
    person = synthetic_person()
    decision = event(person, "TRAINING_DECISION")
    run(hub, [event(person, fact_date=days_ago(20)), decision])
    annulment = correction(decision, "ANNUL", sourceSystem=BERGEN, municipality="4601")
    [ticket_id] = tickets_of_dead_letters(hub, [annulment])
    municipality_user(hub, "bergen", "4601")
    replays = Replays(fail=True)  # the broker is away: the approval stands all the same
    monkeypatch.setattr(support_web, "replay_tickets", replays)

    async def work(client: Client) -> None:
        path = f"/support/tickets/{ticket_id}"
        await sign_in(client, "bergen", PASSWORD)
        theirs, token = await page_and_token(client, path)
        assert 'id="error-code">NIR-CORR-004' in theirs and 'id="approve"' not in theirs
        refused = await client.post(f"{path}/approve", data={"form_token": token, "note": "please"})
        assert refused.status == 403
        client.session.cookie_jar.clear()
        await sign_in(client, "kari", PASSWORD)
        page, token = await page_and_token(client, path)
        assert 'id="approve"' in page and 'id="approve-and-replay"' in page
        approved = await client.post(
            f"{path}/approve",
            data={"form_token": token, "note": "Oslo asked Bergen\r\nto annul it"},
            allow_redirects=False,
        )
        assert approved.headers["Location"] == f"{path}?done=approved_replay_failed"
        shown = await (await client.get(approved.headers["Location"])).text()
        assert translate("nb", "done.approved_replay_failed") in shown and 'id="approval"' in shown
        assert translate("nb", "story.approve") in shown

    serve(hub, work)
    assert replays.asked == [([ticket_id], "kari")]
    with make_session_factory(hub.engine)() as session:
        ticket = session.get_one(CaseTicket, ticket_id)
        assert (ticket.approved_code, ticket.approved_by) == ("NIR-CORR-004", "kari")
    assert audited(hub, "approve") == ["NIR-CORR-004: Oslo asked Bergen to annul it"]


def test_only_a_ticket_whose_rule_imdi_may_set_aside_can_be_approved(sqlite_url: str) -> None:
    hub = register_hub(sqlite_url)
    *_, ticket_id = identity_conflict(hub)

    async def work(client: Client) -> None:
        await sign_in(client, "kari", PASSWORD)
        path = f"/support/tickets/{ticket_id}"
        page, token = await page_and_token(client, path)
        assert 'id="approve"' not in page
        refused = await client.post(f"{path}/approve", data={"form_token": token, "note": "why not"})
        text = await refused.text()
        assert refused.status == 400 and 'id="refusal"' in text and "cannot approve past" in text

    serve(hub, work)
    with make_session_factory(hub.engine)() as session:
        assert session.get_one(CaseTicket, ticket_id).approved_code is None


def test_the_register_panel_shows_a_registration_s_corrections_and_annulment(sqlite_url: str) -> None:
    hub = register_hub(sqlite_url)
    person = synthetic_person()
    decision = event(person, "TRAINING_DECISION")
    outcomes, _ = run(
        hub,
        [event(person, fact_date=days_ago(20)), decision],
        [correction(decision)],
        [correction(decision, "ANNUL", seconds=2)],
    )
    assert outcomes == [["ACCEPTED", "ACCEPTED"], ["ACCEPTED"], ["ACCEPTED"]]
    with hub.unit_of_work() as uow:
        ticket_id = file_manual_case(
            uow,
            duf_number=person.duf_number or "",
            description="why",
            municipality="0301",
            now=hub.clock(),
        ).id
        uow.commit()

    async def work(client: Client) -> None:
        await sign_in(client, "kari", PASSWORD)
        page = await (await client.get(f"/support/tickets/{ticket_id}")).text()
        chain = page[page.index(f'data-registration="{decision["eventId"]}"') :]
        assert translate("nb", "chains.annulled") in chain.split("</h4>")[0]
        effects = re.findall(r'<tr class="version effect-(\w+)">', chain.split("</table>")[0])
        assert effects == ["original", "corrected", "annulled"]

    serve(hub, work)


def test_a_merge_refused_by_the_register_is_shown_on_the_ticket_and_the_kind_is_kept(sqlite_url: str) -> None:
    hub = register_hub(sqlite_url)
    with hub.unit_of_work() as uow:
        ticket = CaseTicket(
            status="open",
            kind=IDENTITY_CONFLICT_KIND,
            error_code="NIR-ID-005",
            municipality="0301",
            national_id=synthetic_person().national_id,
            duf_number=synthetic_person().duf_number,
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
        page, token = await page_and_token(client, f"/support/tickets/{ticket_id}")
        assert page.count('class="identity-not-found"') == 2 and 'id="merge"' not in page
        refused = await client.post(
            f"/support/tickets/{ticket_id}/merge", data={"form_token": token, "keep": "duf", "reason": "x"}
        )
        text = await refused.text()
        assert refused.status == 400 and "no person in the register has that number" in text
        bad = await client.post(
            f"/support/tickets/{ticket_id}/merge", data={"form_token": token, "keep": "both", "reason": "x"}
        )
        assert bad.status == 400
        forged = await client.post(f"/support/tickets/{ticket_id}/merge", data={"keep": "duf", "reason": "x"})
        assert forged.status == 403

    serve(hub, work)
