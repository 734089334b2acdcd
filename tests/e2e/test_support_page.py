"""The support page in a real headless Chromium, against a worker on the real broker.

Sign-in, the filterable list, edit-and-replay, and that a municipality's super user can neither
see nor act on another municipality's ticket, also not by guessing URLs.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from hub.dev.localrun import LocalBroker
from hub.register.database import make_session_factory
from hub.register.models import AuditEntry, CaseTicket, TicketEdit
from hub.support.access import Role, create_user
from tests.conftest import make_settings
from tests.factories import event, synthetic_person
from tests.harness import HubHarness
from tests.second_factor import answer_second_factor

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("NIR_TEST_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "correct horse battery"


def reversed_period(municipality: str) -> dict[str, Any]:
    e = event(synthetic_person(), "ASYLUM_SEEKER_TRAINING_HOURS", municipality=municipality)
    e["payload"]["periodEnd"] = "2000-01-01"  # before periodStart: NIR-DATE-003
    if municipality != "0301":
        e["sourceSystem"] = "vestland-fagsystem"
    return e


class Page:
    """A browser tab on the support page."""

    def __init__(self, browser: Any, base: str) -> None:
        self.context = browser.new_context()
        self.tab = self.context.new_page()
        self.base = base

    def open(self, path: str) -> Any:
        return self.tab.goto(self.base + path)

    def sign_in(self, username: str, password: str = PASSWORD) -> None:
        self.open("/support/login")
        self.tab.fill("#username", username)
        self.tab.fill("#password", password)
        self.tab.click("#sign-in")
        answer_second_factor(self.tab, f"{self.base} {username}")

    def listed_ids(self) -> list[int]:
        return [
            int(i) for i in self.tab.locator("tr.ticket").evaluate_all("rows => rows.map(r => r.dataset.id)")
        ]

    def post(self, path: str, form: dict[str, str]) -> Any:
        """A form post the page never offered (a guessed URL), with this session's cookie."""
        return self.context.request.post(self.base + path, form=form, max_redirects=0)

    def form_token(self) -> str:
        return str(self.tab.locator("input[name=form_token]").first.input_value())


@pytest.fixture
def support(
    kafka_broker: LocalBroker, sqlite_url: str, tmp_path: Path
) -> Iterator[tuple[HubHarness, dict[str, Any]]]:
    """A worker with two failed transfers, one in Oslo (0301) and one in Bergen (4601), and three
    users: IMDi support, Oslo's and Bergen's super users."""
    harness = HubHarness(make_settings(kafka_broker, sqlite_url, tmp_path), tmp_path)
    with harness.hub.unit_of_work() as uow:
        now = harness.hub.clock()
        create_user(uow, "imdi", PASSWORD, Role.IMDI_SUPPORT, None, now)
        create_user(uow, "oslo", PASSWORD, Role.MUNICIPALITY_SUPERUSER, "0301", now)
        create_user(uow, "bergen", PASSWORD, Role.MUNICIPALITY_SUPERUSER, "4601", now)
        uow.commit()
    events = {"oslo": reversed_period("0301"), "bergen": reversed_period("4601")}
    harness.start_worker()
    harness.publish(list(events.values()))
    harness.wait_until(lambda: len(tickets(harness)) == 2, timeout=60, what="two tickets")
    yield harness, events
    harness.stop_all()


@pytest.fixture
def browser(support: Any) -> Iterator[Any]:
    """Headless Chromium, started after the hub: Playwright's sync API keeps an event loop
    running in this thread, and the harness's own set-up runs event loops of its own."""
    if shutil.which(CHROMIUM) is None:
        message = f"no Chromium at {CHROMIUM} (Debian package 'chromium'; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        yield chromium
        chromium.close()


def tickets(harness: HubHarness) -> list[CaseTicket]:
    with make_session_factory(harness.hub.engine)() as session:
        return list(session.scalars(select(CaseTicket).order_by(CaseTicket.id)))


def ticket_of(harness: HubHarness, municipality: str) -> CaseTicket:
    return next(t for t in tickets(harness) if t.municipality == municipality)


def edits_of(harness: HubHarness, ticket_id: int) -> int:
    with make_session_factory(harness.hub.engine)() as session:
        return len(list(session.scalars(select(TicketEdit).where(TicketEdit.ticket_id == ticket_id))))


def audit_log(harness: HubHarness) -> list[tuple[str, str, int | None]]:
    with make_session_factory(harness.hub.engine)() as session:
        return [
            (a.username, a.action, a.ticket_id)
            for a in session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        ]


def base_url(harness: HubHarness) -> str:
    return f"http://127.0.0.1:{harness.settings.web_port}"


def test_sign_in_list_and_filter_with_identifiers_shown_by_their_last_digits(
    support: Any, browser: Any
) -> None:
    harness, events = support
    page = Page(browser, base_url(harness))

    page.open("/support/tickets")
    assert page.tab.url.startswith(page.base + "/support/login")  # not signed in: sent to sign in

    page.sign_in("imdi", "wrong password!")
    assert "feil brukernavn eller passord" in page.tab.text_content("#error")

    page.sign_in("imdi")
    assert page.tab.url.endswith("/support/tickets")
    # The content security policy lets the page's own style sheet through (by its hash).
    header_colour = page.tab.evaluate("getComputedStyle(document.querySelector('header')).backgroundColor")
    assert header_colour == "rgb(0, 36, 78)"
    assert sorted(page.listed_ids()) == sorted(t.id for t in tickets(harness))
    content = page.tab.content()
    for e in events.values():  # only the last digits in the list
        assert e["person"]["nationalId"] not in content and e["person"]["dufNumber"] not in content
        assert "…" + e["person"]["dufNumber"][-4:] in content
    counts = dict(
        zip(
            page.tab.locator("#counts td a").all_text_contents(),
            page.tab.locator("#counts td.count").all_text_contents(),
            strict=True,
        )
    )
    assert counts == {"NIR-DATE-003": "2"}

    page.tab.fill("#f-municipality", "4601")
    page.tab.click("#apply-filter")
    assert page.listed_ids() == [ticket_of(harness, "4601").id]
    page.tab.fill("#f-municipality", "")
    page.tab.fill("#f-person", events["oslo"]["person"]["nationalId"])  # a whole number finds the case
    page.tab.click("#search-person")  # by POST: the number goes into no address
    assert page.listed_ids() == [ticket_of(harness, "0301").id]
    page.tab.fill("#f-person", "")
    page.tab.select_option("#f-status", "resolved")
    page.tab.click("#apply-filter")
    assert page.listed_ids() == []
    actions = [action for _, action, _ in audit_log(harness)]
    assert "view_ticket" not in actions and actions.count("search_person") == 1  # lists show no one in clear


def test_edit_and_replay_registers_the_fixed_event_once_and_closes_the_ticket(
    support: Any, browser: Any
) -> None:
    harness, events = support
    bad = events["oslo"]
    ticket = ticket_of(harness, "0301")
    page = Page(browser, base_url(harness))
    page.sign_in("oslo")
    page.tab.click(f"tr.ticket[data-id='{ticket.id}'] a")
    assert page.tab.text_content("#error-code") == "NIR-DATE-003"
    assert bad["person"]["dufNumber"] in page.tab.text_content("#event")  # the detail is in clear

    # An edit that breaks the contract is refused, and nothing is kept or sent.
    page.tab.fill(
        "#event-editor", page.tab.input_value("#event-editor").replace('"2000-01-01"', '"not a date"')
    )
    page.tab.click("#save-and-replay")
    assert "payload.periodEnd" in page.tab.text_content("#problems")
    assert ticket_of(harness, "0301").replays == 0 and edits_of(harness, ticket.id) == 0

    editor = page.tab.input_value("#event-editor").replace(
        '"not a date"', f'"{bad["payload"]["periodStart"]}"'
    )
    page.tab.fill("#event-editor", editor)
    page.tab.click("#save-and-replay")
    assert page.tab.text_content("#done") == "sendt på nytt"
    harness.wait_until(
        lambda: ticket_of(harness, "0301").status == "resolved", timeout=60, what="the ticket to close"
    )

    [row] = harness.registrations()
    assert row.event_id == bad["eventId"] and row.payload["periodEnd"] == bad["payload"]["periodStart"]
    page.tab.reload()
    assert page.tab.text_content("#status") == "løst"
    assert bad["eventId"] in page.tab.text_content("#closed")
    assert page.tab.locator("#save-and-replay").count() == 0  # a closed ticket offers no actions
    logged = [(user, action) for user, action, tid in audit_log(harness) if tid == ticket.id]
    assert ("oslo", "edit") in logged and ("oslo", "replay") in logged
    assert logged.count(("oslo", "view_ticket")) >= 3


def test_a_municipality_user_cannot_see_or_act_on_another_municipality_s_ticket(
    support: Any, browser: Any
) -> None:
    harness, _events = support
    oslo, bergen = ticket_of(harness, "0301"), ticket_of(harness, "4601")
    page = Page(browser, base_url(harness))
    page.sign_in("oslo")
    assert page.listed_ids() == [oslo.id]
    page.open("/support/tickets?municipality=4601")  # a filter cannot widen the scope
    assert page.listed_ids() == [oslo.id]
    token = page.form_token()

    response = page.open(f"/support/tickets/{bergen.id}")
    assert response.status == 404 and f"det finnes ingen sak {bergen.id}" in page.tab.text_content("#message")
    missing = page.open("/support/tickets/999999")  # the same answer as for a ticket that is not there
    assert missing.status == 404 and "det finnes ingen sak 999999" in page.tab.text_content("#message")

    for path, form in (
        (f"/support/tickets/{bergen.id}/replay", {}),
        (f"/support/tickets/{bergen.id}/settle", {"status": "discarded", "note": "not mine"}),
        (f"/support/tickets/{bergen.id}/edit", {"event": "{}", "replay": "1"}),
    ):
        answer = page.post(path, {"form_token": token, **form})
        assert answer.status == 404, path
    after = ticket_of(harness, "4601")
    assert (after.status, after.replays, after.resolution_note) == ("open", 0, None)
    denied = [tid for user, action, tid in audit_log(harness) if (user, action) == ("oslo", "denied")]
    assert denied.count(bergen.id) == 4

    # A case filed by hand belongs to the filer's own municipality, whatever the form says.
    page.open("/support/tickets")
    page.tab.fill("#file-case input[name=duf]", "2020000009")
    page.tab.fill("#file-case textarea", "asks why the hours are missing")
    page.tab.click("#file-case button")
    assert "DUF-nummeret må være 12 sifre" in page.tab.text_content("#message")
    page.open("/support/tickets")
    page.tab.fill("#file-case input[name=duf]", "202000000999")
    page.tab.fill("#file-case textarea", "asks why the hours are missing")
    page.tab.click("#file-case button")
    assert page.tab.text_content("#done") == "saken er meldt"
    [filed] = [t for t in tickets(harness) if t.kind == "manual"]
    assert (filed.municipality, filed.duf_number, filed.status) == ("0301", "202000000999", "open")

    bergen_page = Page(browser, base_url(harness))
    bergen_page.sign_in("bergen")
    assert bergen_page.listed_ids() == [bergen.id]


def test_forms_need_the_session_s_token_and_signing_out_ends_the_session(support: Any, browser: Any) -> None:
    harness, _events = support
    oslo = ticket_of(harness, "0301")
    page = Page(browser, base_url(harness))
    page.sign_in("oslo")

    forged = page.post(f"/support/tickets/{oslo.id}/settle", {"status": "discarded", "note": "forged"})
    assert forged.status == 403 and "ingenting ble gjort" in forged.text()
    assert ticket_of(harness, "0301").status == "open"

    page.open(f"/support/tickets/{oslo.id}")
    page.tab.fill("#note", "duplicate of a case handled by phone")
    page.tab.click("#discard")
    assert page.tab.text_content("#status") == "forkastet"
    assert ticket_of(harness, "0301").resolution_note == "duplicate of a case handled by phone"

    cookie = next(c for c in page.context.cookies() if c["name"] == "nir_support_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.tab.click("text=Logg ut")
    assert "/support/login" in page.tab.url
    page.context.add_cookies([cookie])  # the old session token no longer opens anything
    page.open(f"/support/tickets/{oslo.id}")
    assert "/support/login" in page.tab.url


def test_bulk_replay_by_filter_shows_a_dry_run_then_replays_with_progress(support: Any, browser: Any) -> None:
    harness, _events = support
    page = Page(browser, base_url(harness))
    page.sign_in("imdi")
    page.tab.click("#switch-language")  # in English
    page.open("/support/tickets?code=NIR-DATE-003")
    page.tab.click("#bulk-replay")
    assert "Nothing is sent yet" in page.tab.text_content("#dry-run")
    assert page.tab.locator("tr.planned").count() == 2 and "would replay to" in page.tab.text_content("#plan")
    assert all(t.replays == 0 for t in tickets(harness))  # a dry run sends nothing
    page.tab.click("#confirm-bulk")
    page.tab.wait_for_selector("#finished", timeout=60_000)  # the page refreshes itself until done
    assert "2 of 2 handled" in page.tab.text_content("#progress")
    ARTIFACTS = Path(__file__).parents[2] / "test-artifacts" / "support-desk"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.tab.screenshot(path=str(ARTIFACTS / "bulk-replay-progress-en.png"), full_page=True)
    replays = [tid for user, action, tid in audit_log(harness) if (user, action) == ("imdi", "replay")]
    assert sorted(replays) == [t.id for t in tickets(harness)]
    # Replayed unchanged, both fail again: the tickets reopen with a second attempt.
    harness.wait_until(
        lambda: all(t.attempts == 2 for t in tickets(harness)), timeout=60, what="both to fail again"
    )
