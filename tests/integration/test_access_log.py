"""Every read of a person's data is in the access log (issue 30): a table of the support page's
routes and the `hub` command's commands says which read personal data and which do not; a route
or command in neither fails, and each one that reads is run and must write its entry, with who,
why and whom. On SQLite and PostgreSQL."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from faust.web import View
from sqlalchemy import func, select

from hub.bootstrap import Hub
from hub.cli import cli
from hub.domain.identifiers import subject_key
from hub.register.access_log import Reader
from hub.register.database import make_session_factory
from hub.register.models import AccessLogEntry, AuditEntry, CaseTicket
from hub.register.repository import RegisterRepository, find_person_id
from hub.support import web as support_web
from hub.support.access import Role, create_user
from hub.support.tickets import file_manual_case
from tests.conftest import pipeline_hub
from tests.harness import hub_command
from tests.integration.test_support_web import PASSWORD, Client, page_and_token, serve, sign_in, web_hub

NATIONAL_ID, DUF = "31129956715", "201812345604"
UNKNOWN = "17058742341"  # a valid number the register has not heard of

# The support page's routes (name, method) that show a person's data: each must log, by whom.
DESK_READS = {
    ("ticket", "GET"): "view_ticket",
    ("ticket_search", "POST"): "search_person",
    ("bulk", "POST"): "bulk_by_person",
    ("export", "POST"): "person_export",
}
# And those that do not, with why not.
DESK_NOT_READS = {
    ("index", "GET"): "a redirect to the list",
    ("login", "GET"): "the sign-in form",
    ("login", "POST"): "signs in",
    ("logout", "POST"): "signs out",
    (
        "tickets",
        "GET",
    ): "the list: numbers by their last four digits only; a person in the address is refused",
    ("tickets", "POST"): "files a case, answered by a redirect to the ticket (which logs)",
    ("ticket_search", "GET"): "a redirect to the list",
    ("edit", "POST"): "acts on a ticket (audit log); a refusal shows the ticket through its view, which logs",
    ("replay", "POST"): "acts on a ticket (audit log); a refusal shows the ticket through its view",
    ("settle", "POST"): "acts on a ticket (audit log), answered by a redirect",
    ("merge", "POST"): "IMDi's decision (audit log); a refusal shows the ticket through its view",
    ("split", "POST"): "IMDi's decision (audit log); a refusal shows the ticket through its view",
    ("approve", "POST"): "IMDi's decision (audit log); a refusal shows the ticket through its view",
    ("bulk_progress", "GET"): "ticket numbers and how far a replay is, nothing of a person",
    ("incidents", "GET"): "counts per cause: municipalities and persons counted, never named",
    ("incident", "GET"): "one incident's counts and a sample ticket's number, nothing of a person",
    ("incident", "POST"): "acts on an incident's tickets (audit log); a confirmation shows counts only",
    ("incident_progress", "GET"): "ticket numbers and how far an incident's action is, nothing of a person",
    ("language", "POST"): "the user's own choice of language",
    ("second_factor", "GET"): "signs in: the user's own second factor",
    ("second_factor", "POST"): "signs in",
    ("oidc_begin", "GET"): "signs in: sends the browser to the identity provider",
    ("oidc_callback", "GET"): "signs in (a linked user); the provider's number is checked, never shown",
    ("users", "GET"): "support staff, not registered persons",
    ("users", "POST"): "support staff (audit log)",
}

# The `hub` commands that show a person's data; each must log, with the OS user and --reason.
CLI_READS = {
    "person show": "person_show",
    "person export": "person_export",
    "cases list": "cases_list",
    "cases show": "cases_show",
}
CLI_NOT_READS = {
    "worker": "a service",
    "gateway": "a service",
    "demo": "made-up persons on a register of its own",
    "db upgrade": "the schema",
    "backup": "copies the whole register to the operator's file; shows no person",
    "restore": "puts a backup in place; shows no person",
    "recover": "moves the consumer group's offsets; shows no person",
    "person merge": "IMDi's decision (audit log); prints register ids only",
    "person split": "IMDi's decision (audit log); prints register ids only",
    "sources list": "sources",
    "sources grant": "sources",
    "sources revoke": "sources",
    "sources restore": "sources",
    "schemas list": "the contract",
    "schemas export": "the contract",
    "publish": "sends a vendor's own file of events",
    "receipts": "a source's receipts: event ids, outcomes, masked messages",
    "rules list": "the rule catalogue",
    "cases replay": "acts on tickets (audit log); prints ticket numbers and outcomes",
    "cases approve": "acts on a ticket (audit log)",
    "cases resolve": "acts on a ticket (audit log)",
    "cases discard": "acts on a ticket (audit log)",
    "cases file": "files a case; prints its number",
    "cases incidents": "counts per cause: municipalities and persons counted, never named; a sample ticket number",
    "cases resolve-incident": "acts on tickets (audit log); prints how many",
    "cases replay-incident": "acts on tickets (audit log); prints ticket numbers and outcomes",
    "users add": "support staff, not registered persons",
    "users list": "support staff, not registered persons",
    "users disable": "support staff",
    "users enable": "support staff",
    "users set-password": "support staff",
    "users set-role": "support staff (audit log)",
    "users reset-second-factor": "support staff (audit log)",
    "users link": "links a support user to a person at the identity provider; prints no number",
    "users unlink": "support staff",
    "idporten stand-in": "a stand-in with made-up persons",
    "retention run": "counts per kind of data, no person",
    "report": "counts per municipality, no person",
    "topics ensure": "Kafka topics",
    "folkeregister connect": "a service",
    "folkeregister stand-in": "a stand-in with made-up persons",
    "maskinporten stand-in": "a stand-in",
    "maskinporten client-keys": "keys",
    "maskinporten check": "a token",
    "lag-exporter": "a service",
    "settings": "settings, secrets masked",
    "faust": "Faust's own commands",
}


def _desk_routes() -> set[tuple[str, str]]:
    routes = set()
    for route in support_web.blueprint.routes:
        for method in ("get", "post", "put", "patch", "delete"):
            if getattr(route.handler, method) is not getattr(View, method):
                routes.add((route.name, method.upper()))
    return routes


def _commands(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[str]:
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield " ".join(path)


def test_every_support_page_route_and_hub_command_is_classed_as_reading_personal_data_or_not() -> None:
    """A new route or command fails here until someone says whether it reads a person's data
    (and, if it does, makes it log and exercises it below)."""
    routes = _desk_routes()
    assert not DESK_READS.keys() & DESK_NOT_READS.keys()
    assert routes - DESK_READS.keys() - DESK_NOT_READS.keys() == set(), "classify these routes"
    assert (DESK_READS.keys() | DESK_NOT_READS.keys()) - routes == set(), "these routes are gone"
    commands = set(_commands(cli))
    assert not CLI_READS.keys() & CLI_NOT_READS.keys()
    assert commands - CLI_READS.keys() - CLI_NOT_READS.keys() == set(), "classify these commands"
    assert (CLI_READS.keys() | CLI_NOT_READS.keys()) - commands == set(), "these commands are gone"


def _register(hub: Hub) -> tuple[int, int]:
    """One person with two numbers and a ticket about them: their register id and the ticket's."""
    with hub.unit_of_work() as uow:
        RegisterRepository(uow.session).person_with(NATIONAL_ID, DUF, hub.clock())
        ticket = file_manual_case(uow, duf_number=DUF, description="x", municipality="0301", now=hub.clock())
        uow.commit()
        person_id = find_person_id(uow.session, DUF)
        assert person_id is not None
        return person_id, ticket.id


def _entries(hub: Hub, after: int = 0) -> list[AccessLogEntry]:
    with make_session_factory(hub.engine)() as session:
        return list(
            session.scalars(
                select(AccessLogEntry).where(AccessLogEntry.id > after).order_by(AccessLogEntry.id)
            )
        )


def _last_id(hub: Hub) -> int:
    with make_session_factory(hub.engine)() as session:
        return session.scalar(select(func.coalesce(func.max(AccessLogEntry.id), 0))) or 0


def test_every_support_page_route_that_reads_personal_data_writes_the_access_log(database_url: str) -> None:
    hub = web_hub(database_url)
    person_id, ticket_id = _register(hub)
    exercised: dict[tuple[str, str], list[AccessLogEntry]] = {}

    async def work(client: Client) -> None:
        await sign_in(client, "kari", PASSWORD)
        _, token = await page_and_token(client, f"/support/tickets/{ticket_id}")

        async def request(route: tuple[str, str], method: str, path: str, **data: Any) -> None:
            before = _last_id(hub)
            if method == "GET":
                answer = await client.get(path)
            else:
                answer = await client.post(path, data={**data, "form_token": token})
            assert answer.status == 200, (route, answer.status)
            exercised[route] = _entries(hub, before)

        await request(("ticket", "GET"), "GET", f"/support/tickets/{ticket_id}")
        await request(("ticket_search", "POST"), "POST", "/support/tickets/search", person=NATIONAL_ID)
        await request(
            ("bulk", "POST"), "POST", "/support/tickets/bulk", action="resolve", note="n", person=DUF
        )
        await request(
            ("export", "POST"), "POST", f"/support/tickets/{ticket_id}/export", number="duf", format="json"
        )

    serve(hub, work)
    assert exercised.keys() == DESK_READS.keys()
    for route, action in DESK_READS.items():
        entries = exercised[route]
        assert entries, f"{route} read personal data without logging it"
        assert {(e.actor, e.channel, e.action, e.person_id) for e in entries} == {
            ("kari", "desk", action, person_id)
        }
    searched = exercised[("ticket_search", "POST")]
    assert [e.subject_key for e in searched] == [subject_key(NATIONAL_ID)]  # whom, never the number
    assert all(NATIONAL_ID not in str(vars(e)) and DUF not in str(vars(e)) for e in _entries(hub))


def test_every_hub_command_that_reads_personal_data_logs_the_os_user_and_the_reason(
    database_url: str, tmp_path: Path
) -> None:
    hub = pipeline_hub(database_url)
    person_id, ticket_id = _register(hub)
    commands: dict[str, tuple[list[str], str | None]] = {
        "person show": (["person", "show"], NATIONAL_ID),
        "person export": (["person", "export", "--out", str(tmp_path / "export.json")], DUF),
        "cases list": (["cases", "list"], None),
        "cases show": (["cases", "show", str(ticket_id)], None),
    }
    assert commands.keys() == CLI_READS.keys()
    for name, (args, stdin) in commands.items():
        unreasoned = hub_command(hub.settings, *args, stdin=stdin)
        assert unreasoned.returncode == 2 and "--reason" in unreasoned.stderr, name
        before = _last_id(hub)
        done = hub_command(hub.settings, *args, "--reason", f"why {name}", "--user", "support-1", stdin=stdin)
        assert done.returncode == 0, (name, done.stderr)
        entries = _entries(hub, before)
        assert entries, f"{name} read personal data without logging it"
        assert {(e.actor, e.os_user, e.channel, e.action, e.reason, e.person_id) for e in entries} == {
            ("support-1", getpass.getuser(), "cli", CLI_READS[name], f"why {name}", person_id)
        }


# The `hub` commands that take a person's number: from standard input or --file, never as an
# argument (the shell's history and the process list would keep it).
NUMBER_TAKERS = {
    "person show": (["person", "show", "--reason", "r"], 1),
    "person export": (["person", "export", "--out", "x", "--reason", "r"], 1),
    "person merge": (["person", "merge", "--reason", "r"], 2),
    "person split": (["person", "split", "--reason", "r"], 1),
    "cases file": (["cases", "file", "--description", "d"], 1),
}


def _parameters(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _parameters(sub, (*path, name))
    else:
        yield from ((" ".join(path), str(p.name)) for p in command.params)


def test_a_person_s_number_on_the_command_line_is_refused_with_how_to_give_it(sqlite_url: str) -> None:
    parameters = set(_parameters(cli))
    assert {c for c, p in parameters if p == "identifier_file"} == NUMBER_TAKERS.keys()
    assert not {p for _, p in parameters} & {"duf_number", "national_id", "number", "fnr", "d_number"}
    hub = pipeline_hub(sqlite_url)
    for name, (args, count) in NUMBER_TAKERS.items():
        refused = hub_command(hub.settings, *args, NATIONAL_ID)
        assert (
            refused.returncode == 2 and "standard input" in refused.stderr and "--file" in refused.stderr
        ), name
        assert NATIONAL_ID not in refused.stderr, name
        half = hub_command(hub.settings, *args, stdin="1234")
        assert half.returncode == 2 and "whole" in half.stderr, name
        one_short = hub_command(hub.settings, *args, stdin="\n".join([NATIONAL_ID] * (count - 1)))
        assert one_short.returncode == 2 and "give" in one_short.stderr, name


def test_hub_cases_file_takes_the_duf_number_from_stdin_checks_it_and_audits_who_filed(
    database_url: str, tmp_path: Path
) -> None:
    hub = pipeline_hub(database_url)
    filed = hub_command(
        hub.settings,
        "cases",
        "file",
        "--description",
        "by phone",
        "--municipality",
        "0301",
        "--user",
        "support-1",
        stdin=DUF + "\n",
    )
    assert filed.returncode == 0 and DUF not in filed.stdout + filed.stderr, filed.stderr
    number_file = tmp_path / "number"
    number_file.write_text(DUF)
    by_file = hub_command(hub.settings, "cases", "file", "--description", "d", "--file", str(number_file))
    assert by_file.returncode == 0, by_file.stderr
    with make_session_factory(hub.engine)() as session:
        tickets = session.scalars(select(CaseTicket).order_by(CaseTicket.id)).all()
        assert [(t.duf_number, t.municipality, t.kind) for t in tickets] == [
            (DUF, "0301", "manual"),
            (DUF, None, "manual"),
        ]
        audited = session.scalars(select(AuditEntry).where(AuditEntry.action == "file_case")).all()
        assert [(a.username, a.ticket_id) for a in audited] == [
            ("support-1", tickets[0].id),
            (getpass.getuser(), tickets[1].id),
        ]
    for stdin, municipality, why in (
        ("209912345678", "0301", "plausible application year"),
        (DUF, "9999", "municipality"),
        (DUF, "0219", "municipality"),  # Bærum's number until 2020: not one today
    ):
        refused = hub_command(
            hub.settings, "cases", "file", "--description", "d", "--municipality", municipality, stdin=stdin
        )
        assert refused.returncode != 0 and why in refused.stderr and "Traceback" not in refused.stderr, why
    with make_session_factory(hub.engine)() as session:
        assert session.scalar(select(func.count()).select_from(CaseTicket)) == 2


def test_hub_cases_list_shows_whole_numbers_only_with_reveal_and_logs_which(sqlite_url: str) -> None:
    hub = pipeline_hub(sqlite_url)
    _register(hub)
    masked = hub_command(hub.settings, "cases", "list", "--json", "--reason", "r")
    assert masked.returncode == 0 and DUF not in masked.stdout and "…5604" in masked.stdout
    revealed = hub_command(hub.settings, "cases", "list", "--json", "--reason", "r", "--reveal")
    assert revealed.returncode == 0 and DUF in revealed.stdout
    assert [e.action for e in _entries(hub)] == ["cases_list", "cases_list_reveal"]


def test_a_search_for_a_number_nobody_has_yet_is_found_when_that_person_appears(database_url: str) -> None:
    """Who has looked at my data covers a search made before the register knew the person."""
    hub = pipeline_hub(database_url)
    with hub.unit_of_work() as uow:
        uow.access_log.record_number_read(
            Reader.command_line("support-1", "a call"), "person_show", hub.clock(), UNKNOWN
        )
        uow.access_log.record_number_read(Reader.desk("kari"), "search_person", hub.clock(), DUF)
        uow.commit()
    [entry, _] = _entries(hub)
    assert entry.person_id is None and entry.subject_key == subject_key(UNKNOWN)
    with hub.unit_of_work() as uow:
        RegisterRepository(uow.session).person_with(UNKNOWN, None, hub.clock())
        uow.commit()
        person_id = find_person_id(uow.session, UNKNOWN) or 0
        reads = uow.access_log.reads_of(person_id)
    assert [(r["actor"], r["action"], r["reason"]) for r in reads] == [("support-1", "person_show", "a call")]


def test_only_imdi_s_support_staff_are_offered_and_given_a_person_s_export_on_the_desk(
    sqlite_url: str,
) -> None:
    hub = web_hub(sqlite_url)
    _, ticket_id = _register(hub)
    with hub.unit_of_work() as uow:
        create_user(uow, "ola", PASSWORD, Role.MUNICIPALITY_SUPERUSER, "0301", hub.clock())
        uow.commit()

    async def work(client: Client) -> tuple[str, int, int]:
        await sign_in(client, "kari", PASSWORD)
        imdi_page, _ = await page_and_token(client, f"/support/tickets/{ticket_id}")
        client.session.cookie_jar.clear()
        await sign_in(client, "ola", PASSWORD)
        _, token = await page_and_token(client, "/support/tickets")
        page = await client.get(f"/support/tickets/{ticket_id}")
        refused = await client.post(
            f"/support/tickets/{ticket_id}/export",
            data={"number": "duf", "format": "json", "form_token": token},
        )
        assert 'id="export"' in imdi_page and 'id="export"' not in await page.text()
        return await refused.text(), refused.status, page.status

    text, status, page_status = serve(hub, work)
    assert (
        page_status == 200 and status == 403 and DUF not in text
    )  # the ticket is theirs to see; the export is not
    assert [e.actor for e in _entries(hub) if e.action == "person_export"] == []
