"""The support desk in headless Chromium, in Norwegian and in English: dates the Norwegian way,
identifiers by their last digits and search by a whole one, paging and sorting, a ticket's story
with the person's register and the rule's advice, and bulk resolve by filter with a dry run and a
confirmation that stays inside the user's municipality.

The web server runs in the test's process on SQLite; tickets come from real dead letters.
Screenshots of every page are kept in `test-artifacts/support-desk/` (ignored by git).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faust
import pytest
from sqlalchemy import select

from hub.app import serve_web
from hub.bootstrap import Hub
from hub.ops.webserver import FAUST_APP_OPTIONS
from hub.register.database import make_session_factory
from hub.register.models import CaseTicket
from hub.support.access import Role, create_user
from hub.support.tickets import file_manual_case
from tests.conftest import pipeline_hub
from tests.factories import Person
from tests.integration.test_support_story import second_start
from tests.integration.test_support_web import PASSWORD, served_in_a_thread
from tests.second_factor import answer_second_factor

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = os.environ.get("NIR_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).parents[2] / "test-artifacts" / "support-desk"


@dataclasses.dataclass
class Desk:
    hub: Hub
    base: str
    browser: Any
    person: Any
    failed: dict[str, Any]

    def tab(self, username: str) -> Any:
        tab = self.browser.new_context().new_page()
        tab.goto(self.base + "/support/login")
        tab.fill("#username", username)
        tab.fill("#password", PASSWORD)
        tab.click("#sign-in")
        answer_second_factor(tab, f"{self.base} {username}")
        return tab

    def tickets(self) -> list[CaseTicket]:
        with make_session_factory(self.hub.engine)() as session:
            return list(session.scalars(select(CaseTicket).order_by(CaseTicket.id)))


def shot(tab: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def listed(tab: Any) -> list[int]:
    return [int(i) for i in tab.locator("tr.ticket").evaluate_all("rows => rows.map(r => r.dataset.id)")]


@pytest.fixture
def desk(sqlite_url: str) -> Iterator[Desk]:
    """A register with a lifecycle error (a second start of running training) for one person in
    Oslo, 60 cases filed by hand in Oslo and 3 in Bergen, and users for IMDi, Oslo and Bergen."""
    if shutil.which(CHROMIUM) is None:
        message = f"no Chromium at {CHROMIUM} (Debian package 'chromium'; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    hub = pipeline_hub(sqlite_url)
    _, failed, _ = second_start(hub)
    with hub.unit_of_work() as uow:
        now = hub.clock()
        for user, role, municipality in (
            ("imdi", Role.IMDI_SUPPORT, None),
            ("oslo", Role.MUNICIPALITY_SUPERUSER, "0301"),
            ("bergen", Role.MUNICIPALITY_SUPERUSER, "4601"),
        ):
            create_user(uow, user, PASSWORD, role, municipality, now)
        for n in range(63):
            file_manual_case(
                uow,
                duf_number=f"2019{n:08d}",
                description=f"case {n}",
                municipality="0301" if n < 60 else "4601",
                now=now - dt.timedelta(minutes=n),
            )
        uow.commit()
    app = faust.App(f"test-desk-{uuid.uuid4().hex[:8]}", **FAUST_APP_OPTIONS)
    serve_web(app, hub)
    app.web.init_server()
    with served_in_a_thread(app.web.web_app) as base, playwright_api.sync_playwright() as p:  # type: ignore[attr-defined]
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        person = Person(failed["person"]["nationalId"], failed["person"]["dufNumber"])
        yield Desk(hub, base, browser, person, failed)
        browser.close()


@pytest.mark.parametrize("language", ["nb", "en"])
def test_the_list_pages_sorts_and_searches_with_dates_the_norwegian_way_and_identifiers_by_their_last_digits(
    desk: Desk, language: str
) -> None:
    tab = desk.tab("imdi")
    if language == "en":
        tab.click("#switch-language")
    words = {"nb": ("Saker 1-50 av 64", "Side 1 av 2"), "en": ("Tickets 1-50 of 64", "Page 1 of 2")}[language]
    assert tab.text_content("#list-heading") == words[0] and tab.text_content("#page-of") == words[1]
    shot(tab, f"list-{language}")
    first_page = listed(tab)
    tab.click("#next-page")
    second_page = listed(tab)
    assert len(first_page) == 50 and len(second_page) == 14 and not set(first_page) & set(second_page)
    assert sorted(first_page + second_page) == [t.id for t in desk.tickets()]  # no silent stop
    tab.click("#sort-id")  # sorted by number, highest first; back to page 1
    assert listed(tab) == sorted(first_page + second_page, reverse=True)[:50]
    tab.click("#sort-id")
    assert listed(tab)[:3] == [1, 2, 3]

    when = tab.locator("tr.ticket td.when").first.text_content()
    assert dt.datetime.strptime(when, "%d.%m.%Y %H:%M")  # 01.12.2026 18:45
    content = tab.content()
    assert desk.person.duf_number not in content and desk.person.national_id not in content
    assert "…" + desk.person.duf_number[-4:] in content

    tab.fill("#f-person", desk.person.national_id)  # a whole number finds the person's case
    tab.click("#search-person")
    [found] = listed(tab)
    assert found == desk.tickets()[0].id and desk.person.national_id not in " ".join(
        tab.locator("tr.ticket").all_inner_texts()
    )
    # Sent in the form's body: the number is in no address, not the page's nor any link on it.
    links = tab.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
    assert desk.person.national_id not in tab.url + " ".join(links)
    tab.fill("#f-person", desk.person.duf_number[-6:])  # a part of one finds nobody's
    tab.click("#search-person")
    assert "12" in tab.text_content("#message") and listed(tab) == []
    tab.goto(desk.base + "/support/tickets?person=" + desk.person.national_id)  # an old bookmark
    expected_refusal = {"nb": "hører ikke hjemme i en adresse", "en": "does not belong in an address"}
    assert expected_refusal[language] in tab.text_content("#message") and listed(tab) == []
    tab.goto(desk.base + "/support/tickets?from=2026-12-01")
    expected = {"nb": "datoer skrives DD.MM.ÅÅÅÅ", "en": "dates are written DD.MM.YYYY"}[language]
    assert expected in tab.text_content("#message")
    shot(tab, f"bad-date-{language}")
    tab.goto(desk.base + "/support/tickets?from=01.01.2000&until=31.12.2099&status=open")
    assert tab.input_value("#f-from") == "01.01.2000" and len(listed(tab)) == 50


@pytest.mark.parametrize("language", ["nb", "en"])
def test_a_ticket_tells_its_story_beside_the_person_s_register_and_what_to_do(
    desk: Desk, language: str
) -> None:
    ticket = desk.tickets()[0]
    tab = desk.tab("oslo")
    if language == "en":
        tab.click("#switch-language")
    tab.goto(f"{desk.base}/support/tickets/{ticket.id}")
    texts = {
        "nb": ("i gang", "feilet: NIR-LIFE-002", "allerede i gang", "opplæring i norsk og samfunnskunnskap"),
        "en": (
            "running",
            "failed: NIR-LIFE-002",
            "already running",
            "training in Norwegian and social studies",
        ),
    }[language]
    status, failed, advice, scheme = texts
    assert tab.text_content("#duf") == desk.person.duf_number  # the detail shows the DUF number in full
    assert advice in tab.text_content("#advice")
    assert tab.text_content("tr.scheme .scheme-status") == status and scheme in tab.text_content("#schemes")
    assert tab.locator("tr.registration").count() == 3
    assert failed in tab.text_content("#story")
    fact_date = dt.date.fromisoformat(desk.failed["factDate"])
    assert tab.text_content("#fact-date") == fact_date.strftime("%d.%m.%Y")

    day_before = (fact_date - dt.timedelta(days=1)).isoformat()
    editor = tab.input_value("#event-editor").replace(
        f'"factDate": "{fact_date}"', f'"factDate": "{day_before}"'
    )
    tab.fill("#event-editor", editor)
    tab.click("#save-edit")
    assert tab.text_content(".change .path") == "factDate"
    assert tab.text_content(".change .before") == f'"{fact_date}"'
    assert tab.text_content(".change .after") == f'"{day_before}"'
    assert tab.locator("tr.story-edit").count() == 1 and "oslo" in tab.text_content("tr.story-edit")
    shot(tab, f"ticket-{language}")

    tab.fill("#note", "told the municipality by phone")
    tab.click("#resolve")
    assert tab.text_content("#closed").count("told the municipality by phone") == 1
    assert tab.locator("tr.story-resolved").count() == 1


def test_bulk_resolve_shows_a_dry_run_asks_for_confirmation_and_stays_in_the_municipality(desk: Desk) -> None:
    bergen_before = [t for t in desk.tickets() if t.municipality == "4601"]
    tab = desk.tab("oslo")
    tab.goto(desk.base + "/support/tickets?municipality=4601&code=")  # the filter cannot widen the scope
    tab.fill("#bulk-note", "closed in the clean-up of 2026")
    tab.click("#bulk-resolve")
    planned = [int(i) for i in tab.locator("tr.planned").evaluate_all("rows => rows.map(r => r.dataset.id)")]
    assert len(planned) == 61 and "ville blitt løst" in tab.text_content("#dry-run")
    assert {t.municipality for t in desk.tickets() if t.id in planned} == {"0301"}
    assert all(t.status == "open" for t in desk.tickets())  # a dry run changes nothing
    shot(tab, "bulk-resolve-dry-run-nb")
    tab.click("#confirm-bulk")
    assert "61 saker er løst" in tab.text_content("#message")
    after = {t.id: t for t in desk.tickets()}
    assert all(after[i].status == "resolved" for i in planned)
    assert [after[t.id].status for t in bergen_before] == ["open"] * 3

    # A confirmation for tickets that changed since the dry run is shown again, not carried out.
    bergen = desk.tab("bergen")
    bergen.click("#switch-language")
    bergen.fill("#bulk-note", "test data")
    bergen.click("#bulk-resolve")
    assert "would be resolved" in bergen.text_content("#dry-run")
    with desk.hub.unit_of_work() as uow:
        file_manual_case(
            uow,
            duf_number="202012345678",
            description="new",
            municipality="4601",
            now=desk.hub.clock(),
        )
        uow.commit()
    bergen.click("#confirm-bulk")
    assert bergen.locator("#changed").count() == 1 and bergen.locator("tr.planned").count() == 4
    shot(bergen, "bulk-resolve-changed-en")
    assert all(t.status == "open" for t in desk.tickets() if t.municipality == "4601")
