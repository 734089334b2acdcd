"""Incidents on the support desk and in `hub cases replay-incident` (issue 32): the incidents of
the tickets a user sees, and the actions over all of an incident's tickets (resolve with a note,
replay with its dry run), confirmed, in batches behind a progress page, each ticket audited. The
web server runs in the test's process (aiohttp's test client; one test in Chromium) on SQLite and
PostgreSQL; the replay's producer is a stand-in that records what would reach the broker."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from hub import cli as hub_cli
from hub.bootstrap import Hub
from hub.register.database import make_session_factory
from hub.register.models import AuditEntry, CaseTicket
from hub.support import replay as replay_module
from hub.support.access import Role, create_user
from hub.support.incidents import find_incident
from hub.support.replay import replay_incident
from tests.conftest import pipeline_hub
from tests.factories import synthetic_person
from tests.integration.test_incidents import OSLO, T0, VESTLAND, _fail, _flood
from tests.integration.test_support_web import (
    PASSWORD,
    Client,
    page_and_token,
    serve,
    sign_in,
    support_page_in_chromium,
    web_hub,
)
from tests.second_factor import answer_second_factor


class Producer:
    """Stands in for the replay's Kafka producer: records every message sent, by ticket."""

    sent: ClassVar[list[tuple[str, bytes, int]]] = []

    def __init__(self, **_options: Any) -> None:
        pass

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send_and_wait(self, topic: str, value: bytes, *, key: bytes | None, headers: Any) -> None:
        ticket = int(dict(headers)[replay_module.H_REPLAY_TICKET])
        Producer.sent.append((topic, value, ticket))


@pytest.fixture
def producer(monkeypatch: pytest.MonkeyPatch) -> type[Producer]:
    Producer.sent = []
    monkeypatch.setattr(replay_module, "AIOKafkaProducer", Producer)
    return Producer


def desk_hub(database_url: str) -> tuple[Hub, dict[str, list[int]]]:
    """The four incidents of `_flood` (Oslo's source: release 5.1.0's twice, 5.2.0's; Vestland's
    undecodable messages, IMDi's only) and one of Vestland's decoded events for Bergen; IMDi's
    kari and municipality users of Oslo and Bergen."""
    hub = web_hub(database_url)
    tickets = _flood(hub)
    tickets["vestland"] = [
        _fail(
            hub,
            T0 + dt.timedelta(hours=5),
            person=synthetic_person(),
            source=VESTLAND,
            code="NIR-SOURCE-002",
            municipality="4601",
            version="9.0",
        )
    ]
    with hub.unit_of_work() as uow:
        create_user(uow, "oslo", PASSWORD, Role.MUNICIPALITY_SUPERUSER, "0301", hub.clock())
        create_user(uow, "bergen", PASSWORD, Role.MUNICIPALITY_SUPERUSER, "4601", hub.clock())
        uow.commit()
    return hub, tickets


def statuses(hub: Hub) -> dict[int, str]:
    with make_session_factory(hub.engine)() as session:
        return {i: s for i, s in session.execute(select(CaseTicket.id, CaseTicket.status))}


def audit_log(hub: Hub) -> list[tuple[str, str, int | None]]:
    with make_session_factory(hub.engine)() as session:
        rows = session.execute(select(AuditEntry.username, AuditEntry.action, AuditEntry.ticket_id))
        return [(u, a, t) for u, a, t in rows if a not in ("sign_in", "second_factor", "enrol")]


def listed_incidents(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'class="incident" data-sample="(\d+)"', page)]


def hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found is not None, name
    return found.group(1)


async def finished_job(client: Client, location: str) -> str:
    """The progress page, refreshed until it says the job is done (as the browser's refresh does)."""
    for _ in range(600):
        page = await (await client.get(location)).text()
        if 'id="finished"' in page:
            return page
        await asyncio.sleep(0.05)
    raise AssertionError("the incident's job did not finish")


async def act(client: Client, ticket: int, **form: str) -> Any:
    _, token = await page_and_token(client, f"/support/incidents/{ticket}")
    return await client.post(
        f"/support/incidents/{ticket}", data={"form_token": token, **form}, allow_redirects=False
    )


def test_resolving_an_incident_on_the_desk_is_confirmed_then_closes_exactly_its_tickets(
    database_url: str,
) -> None:
    hub, tickets = desk_hub(database_url)
    incident = tickets["5.1.0"]

    async def work(client: Client) -> None:
        await sign_in(client, "kari", PASSWORD)
        listing = await (await client.get("/support/incidents")).text()
        assert listed_incidents(listing) == [
            tickets[k][0] for k in ("5.1.0 later", "vestland", "undecodable", "5.1.0", "5.2.0")
        ]
        assert 'id="nav-incidents"' in listing
        # Resolve asks first; a ticket more in the incident since is shown again, not carried out.
        asked = await act(client, incident[1], action="resolve", note="fixed in 5.1.1")
        confirm = await asked.text()
        assert asked.status == 200 and 'id="confirm-incident"' in confirm
        assert set(statuses(hub).values()) == {"open"}
        extra = _fail(
            hub,
            T0 + dt.timedelta(hours=2, minutes=30),
            person=synthetic_person(),
            source=OSLO,
            code="NIR-SOURCE-002",
            version="5.1.0",
        )
        incident.append(extra)
        form = {"action": "resolve", "note": "fixed in 5.1.1", "step": "confirm"}
        changed = await act(client, incident[1], **form, expected=hidden(confirm, "expected"))
        assert 'id="changed"' in await changed.text() and set(statuses(hub).values()) == {"open"}
        confirm = await (await act(client, incident[1], action="resolve", note="fixed in 5.1.1")).text()
        started = await act(client, incident[1], **form, expected=hidden(confirm, "expected"))
        assert started.status == 303 and "/support/incidents/jobs/" in started.headers["Location"]
        done = await finished_job(client, started.headers["Location"])
        assert "4 av 4 behandlet" in done
        gone = await client.get(f"/support/incidents/{incident[0]}")
        assert gone.status == 404  # its tickets are closed: it is no incident any more

    serve(hub, work)
    after = statuses(hub)
    assert {i: after[i] for i in incident} == {i: "resolved" for i in incident}
    assert {after[i] for k, ids in tickets.items() if k != "5.1.0" for i in ids} == {"open"}
    log = audit_log(hub)
    assert ("kari", "incident_resolve", incident[1]) in log
    assert sorted(t for u, a, t in log if a == "resolved") == sorted(incident)


def test_an_incident_s_replay_dry_run_changes_nothing_and_the_confirmed_replay_sends_exactly_its_tickets(
    database_url: str, producer: type[Producer]
) -> None:
    hub, tickets = desk_hub(database_url)
    incident = tickets["5.1.0"]

    async def work(client: Client) -> None:
        await sign_in(client, "kari", PASSWORD)
        dry = await act(client, incident[0], action="replay")
        assert dry.status == 303
        planned = await finished_job(client, dry.headers["Location"])
        assert 'data-kind="would_replay"' in planned and "3 av 3 behandlet" in planned
        assert producer.sent == [] and set(statuses(hub).values()) == {"open"}
        token = hidden(planned, "form_token")
        replay = await client.post(
            f"/support/incidents/{incident[0]}",
            data={
                "form_token": token,
                "action": "replay",
                "step": "confirm",
                "expected": hidden(planned, "expected"),
            },
            allow_redirects=False,
        )
        assert replay.status == 303
        done = await finished_job(client, replay.headers["Location"])
        assert 'data-kind="replayed"' in done

    serve(hub, work)
    assert sorted(t for _topic, _value, t in producer.sent) == sorted(incident)
    assert {topic for topic, _value, _t in producer.sent} == {f"nir.source.{OSLO}.registrations"}
    after = statuses(hub)
    assert {i: after[i] for i in incident} == {i: "replayed" for i in incident}
    assert {after[i] for k, ids in tickets.items() if k != "5.1.0" for i in ids} == {"open"}
    log = audit_log(hub)
    assert sorted(t for u, a, t in log if (u, a) == ("kari", "replay")) == sorted(incident)
    assert [a for _u, a, _t in log if a.startswith("incident_")] == ["incident_replay"]  # not the dry run


def test_a_municipality_user_sees_only_the_incidents_of_their_own_sources_and_cannot_act_on_others(
    database_url: str,
) -> None:
    hub, tickets = desk_hub(database_url)

    async def work(client: Client) -> None:
        await sign_in(client, "oslo", PASSWORD)
        oslo = await (await client.get("/support/incidents")).text()
        assert listed_incidents(oslo) == [tickets[k][0] for k in ("5.1.0 later", "5.1.0", "5.2.0")]
        assert (await client.get(f"/support/incidents/{tickets['vestland'][0]}")).status == 404
        _, token = await page_and_token(client, "/support/incidents")
        refused = await client.post(
            f"/support/incidents/{tickets['vestland'][0]}",
            data={"form_token": token, "action": "resolve", "note": "n", "step": "confirm"},
        )
        assert refused.status == 404
        client.session.cookie_jar.clear()
        await sign_in(client, "bergen", PASSWORD)
        bergen = await (await client.get("/support/incidents")).text()
        assert listed_incidents(bergen) == tickets["vestland"]

    serve(hub, work)
    assert set(statuses(hub).values()) == {"open"}
    assert ("oslo", "denied", tickets["vestland"][0]) in audit_log(hub)


def test_a_post_without_the_session_s_anti_forgery_value_starts_nothing(database_url: str) -> None:
    hub, tickets = desk_hub(database_url)

    async def work(client: Client) -> None:
        await sign_in(client, "kari", PASSWORD)
        forged = await client.post(
            f"/support/incidents/{tickets['5.1.0'][0]}",
            data={"form_token": "0" * 64, "action": "resolve", "note": "n", "step": "confirm"},
        )
        assert forged.status == 403

    serve(hub, work)
    assert set(statuses(hub).values()) == {"open"}


def test_hub_cases_replay_incident_asks_first_has_a_dry_run_and_replays_exactly_the_incident_audited(
    sqlite_url: str, producer: type[Producer], monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = pipeline_hub(sqlite_url)
    tickets = _flood(hub)
    monkeypatch.setattr(hub_cli.common, "the_hub", lambda: hub)
    runner = CliRunner()
    chosen = ["cases", "replay-incident", "--ticket", str(tickets["5.1.0"][2]), "--rate", "1000"]

    missing = runner.invoke(hub_cli.cli, chosen)
    assert missing.exit_code == 2 and "--reason" in missing.output
    dry = runner.invoke(hub_cli.cli, [*chosen, "--reason", "vendor fixed it", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would replay 3, skipped 0" in dry.output and producer.sent == []
    declined = runner.invoke(hub_cli.cli, [*chosen, "--reason", "vendor fixed it"], input="n\n")
    assert declined.exit_code == 1 and producer.sent == []
    assert set(statuses(hub).values()) == {"open"} and audit_log(hub) == []

    done = runner.invoke(
        hub_cli.cli, [*chosen, "--reason", "vendor fixed it", "--user", "support-1", "--yes"]
    )
    assert done.exit_code == 0, done.output
    assert "replayed 3, skipped 0" in done.output
    assert sorted(t for _topic, _value, t in producer.sent) == sorted(tickets["5.1.0"])
    after = statuses(hub)
    assert {after[i] for i in tickets["5.1.0"]} == {"replayed"}
    assert {after[i] for k, ids in tickets.items() if k != "5.1.0" for i in ids} == {"open"}
    with make_session_factory(hub.engine)() as session:
        entries = session.execute(select(AuditEntry.username, AuditEntry.action, AuditEntry.detail)).all()
    [(who, _action, detail)] = [e for e in entries if e.action == "replay_incident"]
    assert who == "support-1" and detail is not None and detail.endswith(": vendor fixed it")
    assert detail.startswith(f"os user {hub_cli.common.os_user()}")
    assert sorted(e.username for e in entries if e.action == "replay") == ["support-1"] * 3


def test_in_a_browser_an_incident_is_opened_from_the_list_and_resolved_with_a_note(sqlite_url: str) -> None:
    hub = pipeline_hub(sqlite_url)
    tickets = _flood(hub)
    with hub.unit_of_work() as uow:
        create_user(uow, "imdi", PASSWORD, Role.IMDI_SUPPORT, None, hub.clock())
        uow.commit()
    with support_page_in_chromium(hub) as (base, browser):
        tab = browser.new_context().new_page()
        tab.goto(base + "/support/login")
        tab.fill("#username", "imdi")
        tab.fill("#password", PASSWORD)
        tab.click("#sign-in")
        answer_second_factor(tab, f"{base} imdi")
        tab.click("#switch-language")  # in English
        tab.click("#nav-incidents")
        assert tab.locator("tr.incident").count() == 4
        tab.click(f'tr.incident[data-sample="{tickets["5.1.0"][0]}"] a.open-incident')
        assert tab.text_content("#incident-tickets") == "3" and tab.text_content("#incident-persons") == "2"
        tab.fill("#incident-note", "fixed in release 5.1.1")
        tab.click("#incident-resolve")
        assert "would be resolved" in tab.text_content("#dry-run")
        assert set(statuses(hub).values()) == {"open"}
        tab.click("#confirm-incident")
        tab.wait_for_selector("#finished", timeout=30_000)  # the page refreshes itself until done
        assert "3 of 3 handled" in tab.text_content("#progress")
        tab.click("text=Back to the incidents")
        assert tab.locator("tr.incident").count() == 3
    after = statuses(hub)
    assert {after[i] for i in tickets["5.1.0"]} == {"resolved"}
    assert {after[i] for k, ids in tickets.items() if k != "5.1.0" for i in ids} == {"open"}


def test_an_incident_s_replay_pages_through_its_tickets_each_once_however_small_the_batch(
    database_url: str, producer: type[Producer]
) -> None:
    # Two of the tickets fail at the same moment: the batches page on by failure and number.
    hub, tickets = desk_hub(database_url)
    same = _fail(hub, T0 + dt.timedelta(hours=1), person=synthetic_person(), source=OSLO,
                 code="NIR-SOURCE-002", version="5.1.0")  # fmt: skip
    incident_ids = sorted([*tickets["5.1.0"], same])
    with hub.unit_of_work() as uow:
        incident = find_incident(uow, window=dt.timedelta(hours=24), ticket_id=incident_ids[0])
    assert incident.tickets == 4
    for batch in (1, 2, 3):
        Producer.sent = []
        report = asyncio.run(replay_incident(hub, incident, per_second=10_000, batch=batch))
        sent = [t for _topic, _value, t in producer.sent]
        assert sorted(sent) == incident_ids, batch  # each once: none skipped, none twice
        assert sorted(report.replayed) == incident_ids and not report.skipped
