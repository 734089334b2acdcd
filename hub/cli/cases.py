"""The help's "Cases" section: case tickets and their incidents, and the support page's users."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hub.bootstrap import Hub
from hub.cli import common
from hub.cli.common import (
    AS_JSON,
    LIMIT,
    READ_REASON,
    USER,
    echo_listing,
    numbers_in,
    os_user,
    read_identifier,
)
from hub.support.access import Role

if TYPE_CHECKING:
    from hub.register.unit_of_work import UnitOfWork
    from hub.support.incidents import Incident


@click.group(name="cases", help="Case tickets for failed transfers: inspect, fix, replay.")
def cases_group() -> None:
    pass


def _filter_options(command: Any) -> Any:
    for option in reversed(
        [
            click.option("--status", type=click.Choice(["open", "replayed", "resolved", "discarded"])),
            click.option("--code", help="Error code, for example NIR-LIFE-001."),
            click.option("--source", help="Source system id."),
            click.option("--municipality", help="Municipality number."),
            click.option("--since", type=click.DateTime(), help="Last failure at or after (UTC)."),
            click.option("--until", type=click.DateTime(), help="Last failure at or before (UTC)."),
        ]
    ):
        command = option(command)
    return command


def _ticket_filter(**options: Any) -> Any:
    from hub.support.tickets import TicketFilter

    def utc(value: dt.datetime | None) -> dt.datetime | None:
        return value.replace(tzinfo=dt.UTC) if value is not None else None

    return TicketFilter(
        status=options["status"],
        error_code=options["code"],
        source_system=options["source"],
        municipality=options["municipality"],
        failed_from=utc(options["since"]),
        failed_until=utc(options["until"]),
    )


@cases_group.command(
    name="list",
    help="List tickets, newest failure first, then newest ticket (identifiers by their last digits "
    "only, unless --reveal); each ticket listed is kept in the access log.",
)
@_filter_options
@AS_JSON
@LIMIT
@READ_REASON
@click.option("--reveal", is_flag=True, help="Show the identifiers whole (kept in the access log as such).")
@USER
def cases_list(as_json: bool, limit: int, reason: str, reveal: bool, user: str, **options: Any) -> None:
    from hub.domain.identifiers import last_digits
    from hub.register.access_log import Reader
    from hub.support.tickets import describe_ticket

    hub = common.migrated_hub()
    reader, now = Reader.command_line(user, reason), hub.clock()
    with hub.unit_of_work() as uow:
        found = uow.tickets.find(_ticket_filter(**options), limit=limit + 1)
        tickets: list[dict[str, Any]] = []
        for t in found[:limit]:
            uow.access_log.record_ticket_read(reader, "cases_list_reveal" if reveal else "cases_list", now, t)
            shown = describe_ticket(uow, hub.catalog, t, reveal=reveal)
            shown["event"] = None  # a list shows no event; `cases show` does
            if not reveal:  # an edit's event holds the numbers too
                shown["dufNumber"], shown["nationalId"] = (
                    last_digits(t.duf_number),
                    last_digits(t.national_id),
                )
                shown["edits"] = [{k: v for k, v in e.items() if k != "event"} for e in shown["edits"]]
            tickets.append(shown)
        uow.commit()
    tickets += [{}] * len(found[limit:])  # counted only, for the notice that there are more
    columns = {
        "ticket": lambda t: t["id"],
        "status": lambda t: t["status"],
        "code": lambda t: t["error"]["code"],
        "source": lambda t: t["sourceSystem"],
        "municipality": lambda t: t["municipality"],
        "event type": lambda t: t["eventType"],
        "DUF number": lambda t: t["dufNumber"],
        "attempts": lambda t: t["attempts"],
    }
    echo_listing(tickets, columns, as_json=as_json, limit=limit, what="tickets")


@cases_group.command(
    name="show",
    help="Show one ticket with its decoded event and edits, and for an identity conflict the persons "
    "its numbers name (audited).",
)
@click.argument("ticket_id", type=int)
@READ_REASON
@USER
def cases_show(ticket_id: int, reason: str, user: str) -> None:
    from hub.register.access_log import Reader
    from hub.support.desk import identity_context
    from hub.support.tickets import IDENTITY_CONFLICT_KIND, describe_ticket, get_ticket

    hub = common.migrated_hub()
    with hub.unit_of_work() as uow:
        ticket = get_ticket(uow, ticket_id)
        shown = describe_ticket(uow, hub.catalog, ticket, reveal=True)
        if ticket.kind == IDENTITY_CONFLICT_KIND:  # the persons its numbers name, side by side
            shown["identity"] = identity_context(uow, ticket)
        uow.audit.record(user, "view_ticket", hub.clock(), ticket_id=ticket_id)
        uow.access_log.record_ticket_read(
            Reader.command_line(user, reason), "cases_show", hub.clock(), ticket
        )
        uow.commit()
    click.echo(json.dumps(shown, indent=2, ensure_ascii=False))


@cases_group.command(
    name="replay", help="Replay one ticket (optionally edited) or every ticket matching a filter."
)
@click.argument("ticket_id", type=int, required=False)
@_filter_options
@click.option(
    "--edit",
    "edit_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A corrected event (JSON, the contract's shape) to replay instead of the original.",
)
@USER
@click.option("--dry-run", is_flag=True, help="Show what would be replayed; send nothing.")
@click.option("--rate", type=float, default=50.0, show_default=True, help="Replays per second at most.")
def cases_replay(
    ticket_id: int | None, edit_file: Path | None, user: str, dry_run: bool, rate: float, **options: Any
) -> None:
    from hub.support.replay import ReplayStep, edit_ticket, replay_tickets
    from hub.support.tickets import get_ticket

    hub = common.migrated_hub()
    has_filter = any(options[k] is not None for k in options)
    if (ticket_id is None) == (not has_filter):
        raise click.UsageError("give either a ticket number or a filter")
    if edit_file is not None:
        if ticket_id is None:
            raise click.UsageError("--edit works on one ticket")

        with hub.unit_of_work() as uow:
            event = json.loads(edit_file.read_text(encoding="utf-8"))
            edit_ticket(uow, hub.catalog, get_ticket(uow, ticket_id), event, user, hub.clock())
            uow.commit()
        click.echo(f"ticket {ticket_id}: edit checked and kept")
    if ticket_id is not None:
        ids = [ticket_id]
    else:
        with hub.unit_of_work() as uow:
            ids = [t.id for t in uow.tickets.find(_ticket_filter(**options), limit=1_000_000)]
        ids.reverse()  # oldest failure first
    with click.progressbar(
        length=len(ids), label="replaying" if not dry_run else "dry run", file=sys.stderr
    ) as bar:

        def each(step: ReplayStep) -> None:
            bar.update(1)
            if dry_run or step.skipped or len(ids) == 1:
                click.echo(f"\nticket {step.ticket_id}: {step}", err=True)

        report = asyncio.run(
            replay_tickets(
                hub, ids, per_second=rate, dry_run=dry_run, on_each=each, user=None if dry_run else user
            )
        )
    verb = "would replay" if dry_run else "replayed"
    click.echo(f"{verb} {len(report.replayed)}, skipped {len(report.skipped)}")


def _settle(ticket_id: int, note: str, status_name: str, user: str) -> None:
    from hub.support.tickets import TicketStatus, settle

    hub = common.migrated_hub()
    with hub.unit_of_work() as uow:
        settle(uow, ticket_id, TicketStatus(status_name), note, hub.clock(), username=user)
        uow.commit()
    click.echo(f"ticket {ticket_id} {status_name}")


@cases_group.command(
    name="approve",
    help="Approve a ticket's event past the rule that refused it, where IMDi may (a correction or "
    "annulment of another municipality's registration, NIR-CORR-004), and replay it (audited).",
)
@click.argument("ticket_id", type=int)
@click.option("--note", required=True, help="Why IMDi approves it (kept in the audit log).")
@USER
def cases_approve(ticket_id: int, note: str, user: str) -> None:
    from hub.support.approval import approve
    from hub.support.tickets import get_ticket

    hub = common.migrated_hub()
    with hub.unit_of_work() as uow:
        approve(uow, get_ticket(uow, ticket_id), username=user, note=note, now=hub.clock())
        uow.commit()
    replayed = _replayed(hub, ticket_id, user)
    click.echo(f"ticket {ticket_id}: approved and replayed" if replayed else f"ticket {ticket_id}: approved")


def _replayed(hub: Hub, ticket_id: int, user: str) -> bool:
    """Replay one ticket's event after a decision on it; whether it was sent (why not, on stderr)."""
    from hub.support.replay import replay_tickets

    report = asyncio.run(replay_tickets(hub, [ticket_id], user=user))
    for step in report.skipped.values():
        click.echo(f"ticket {step.ticket_id}: {step}", err=True)
    return bool(report.replayed)


@cases_group.command(name="resolve", help="Close a ticket as solved, with a note.")
@click.argument("ticket_id", type=int)
@click.option("--note", required=True)
@USER
def cases_resolve(ticket_id: int, note: str, user: str) -> None:
    _settle(ticket_id, note, "resolved", user)


@cases_group.command(name="discard", help="Close a ticket without fixing it, with a note.")
@click.argument("ticket_id", type=int)
@click.option("--note", required=True)
@USER
def cases_discard(ticket_id: int, note: str, user: str) -> None:
    _settle(ticket_id, note, "discarded", user)


@cases_group.command(
    name="incidents",
    help="List the incidents: the open and replayed tickets of one cause (source, error code, event "
    "type, fagsystemVersion) whose failures follow each other less than NIR_INCIDENT_WINDOW_HOURS "
    "apart; newest last failure first, with counts of municipalities and persons (never who).",
)
@AS_JSON
@LIMIT
def cases_incidents(as_json: bool, limit: int) -> None:

    hub = common.migrated_hub()
    with hub.unit_of_work() as uow:
        found = uow.incidents.find(window=_incident_window(hub), limit=limit + 1)
    rows = [i.as_json() for i in found]
    columns = {
        "source": lambda i: i["sourceSystem"],
        "code": lambda i: i["errorCode"],
        "event type": lambda i: i["eventType"],
        "version": lambda i: i["fagsystemVersion"],
        "tickets": lambda i: i["tickets"],
        "first seen": lambda i: i["firstSeen"],
        "last seen": lambda i: i["lastSeen"],
        "sample ticket": lambda i: i["sampleTicket"],
        "municipalities": lambda i: i["municipalities"],
        "persons": lambda i: i["persons"],
    }
    echo_listing(rows, columns, as_json=as_json, limit=limit, what="incidents")


def _incident_window(hub: Hub) -> dt.timedelta:
    return dt.timedelta(hours=hub.settings.incident_window_hours)


def _none_if_dash(value: str | None) -> str | None:
    """A cause's part as `cases incidents` prints it: "-" is none."""
    return None if value in (None, "-") else value


def _incident_options(command: Callable[..., None]) -> Callable[..., None]:
    """The options that choose one incident: its cause, or one of its tickets."""
    for option in reversed(
        (
            click.option("--source", help="The incident's source system."),
            click.option("--code", help="The incident's error code."),
            click.option(
                "--event-type", help='The incident\'s event type ("-": none, an undecodable message).'
            ),
            click.option(
                "--version",
                "fagsystem_version",
                help='The incident\'s fagsystemVersion (omitted or "-": none).',
            ),
            click.option(
                "--ticket", "ticket_id", type=int, help="One of the incident's tickets (its sample ticket)."
            ),
        )
    ):
        command = option(command)
    return command


def _chosen_incident(
    hub: Hub,
    source: str | None,
    code: str | None,
    event_type: str | None,
    fagsystem_version: str | None,
    ticket_id: int | None,
) -> Incident:
    """The incident `_incident_options` choose (a usage error if they choose none or several)."""
    from hub.support.incidents import Cause, find_incident

    given = [source, code, event_type]
    if any(v is None for v in given) and (ticket_id is None or any(v is not None for v in given)):
        raise click.UsageError("give --source, --code and --event-type, or --ticket")
    cause = (
        Cause(*(_none_if_dash(v) for v in (source, code, event_type, fagsystem_version)))
        if source is not None
        else None
    )
    with hub.unit_of_work() as uow:
        return find_incident(uow, window=_incident_window(hub), cause=cause, ticket_id=ticket_id)


@cases_group.command(
    name="resolve-incident",
    help="Close every open and replayed ticket of one incident as solved, with a note (each audited), "
    "1,000 per transaction. The incident is chosen by its cause as `cases incidents` prints it "
    '("-" for none) or by one of its tickets (--ticket, e.g. its sample ticket).',
)
@_incident_options
@click.option("--note", required=True)
@USER
def cases_resolve_incident(
    source: str | None,
    code: str | None,
    event_type: str | None,
    fagsystem_version: str | None,
    ticket_id: int | None,
    note: str,
    user: str,
) -> None:
    from hub.support.incidents import resolve_incident

    if not note.strip():
        raise click.UsageError("--note must say why")
    hub = common.migrated_hub()
    incident = _chosen_incident(hub, source, code, event_type, fagsystem_version, ticket_id)
    resolved = 0
    for count in resolve_incident(hub.unit_of_work, incident, note, hub.clock(), username=user):
        resolved += count
        click.echo(f"resolved {resolved} of {incident.tickets}", err=True)
    click.echo(f"resolved {resolved} ticket(s) of the incident")


@cases_group.command(
    name="replay-incident",
    help="Replay every open and replayed ticket of one incident (after the vendor's fix), oldest first, "
    "1,000 at a time; each replay audited, and the incident's replay with --reason and the OS user. "
    "Chosen as for resolve-incident. Asks first unless --yes; --dry-run sends nothing.",
)
@_incident_options
@click.option(
    "--reason", required=True, help="Why the incident is replayed (kept in the audit log with who and when)."
)
@USER
@click.option("--dry-run", is_flag=True, help="Show what would be replayed; send nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--rate", type=float, default=50.0, show_default=True, help="Replays per second at most.")
def cases_replay_incident(
    source: str | None,
    code: str | None,
    event_type: str | None,
    fagsystem_version: str | None,
    ticket_id: int | None,
    reason: str,
    user: str,
    dry_run: bool,
    yes: bool,
    rate: float,
) -> None:
    from hub.support.replay import ReplayStep, replay_incident

    if not reason.strip():
        raise click.UsageError("--reason must say why")
    hub = common.migrated_hub()
    incident = _chosen_incident(hub, source, code, event_type, fagsystem_version, ticket_id)
    described = " / ".join(v or "-" for v in incident.cause.as_tuple())
    click.echo(f"incident {described}: {incident.tickets} ticket(s), sample ticket {incident.sample_ticket}")
    if not dry_run:
        if not yes:
            click.confirm(f"replay {incident.tickets} ticket(s)?", abort=True, err=True)
        with hub.unit_of_work() as uow:
            detail = f"os user {os_user()}: {reason.strip()}"[:512]
            uow.audit.record(
                user,
                "replay_incident",
                hub.clock(),
                ticket_id=incident.sample_ticket,
                detail=detail,
            )
            uow.commit()
    handled = 0

    def each(step: ReplayStep) -> None:
        nonlocal handled
        handled += 1
        if dry_run or step.skipped:
            click.echo(f"ticket {step.ticket_id}: {step}", err=True)
        if handled % 100 == 0:
            click.echo(f"{handled} of {incident.tickets} handled", err=True)

    report = asyncio.run(
        replay_incident(
            hub, incident, per_second=rate, dry_run=dry_run, on_each=each, user=None if dry_run else user
        )
    )
    verb = "would replay" if dry_run else "replayed"
    click.echo(f"{verb} {len(report.replayed)}, skipped {len(report.skipped)}")


@cases_group.command(
    name="file",
    help="File a case about a person by hand; their DUF number on standard input or in --file "
    "(never on the command line).",
)
@numbers_in()
@click.option("--description", required=True)
@click.option("--municipality", help="The municipality's number, if the case is about one.")
@USER
def cases_file(
    identifier: str | None,
    identifier_file: Path | None,
    description: str,
    municipality: str | None,
    user: str,
) -> None:
    from hub.support.tickets import file_manual_case

    duf_number = read_identifier(identifier, identifier_file)
    hub = common.migrated_hub()
    with hub.unit_of_work() as uow:
        ticket = file_manual_case(
            uow,
            duf_number=duf_number,
            description=description,
            municipality=municipality,
            now=hub.clock(),
        )
        uow.audit.record(user, "file_case", hub.clock(), ticket_id=ticket.id)
        uow.commit()
        click.echo(f"filed ticket {ticket.id}")


@click.group(name="users", help="Support users for the support page.")
def users_group() -> None:
    pass


_ACTING_AS = click.option(
    "--as",
    "acting_as",
    metavar="USERNAME",
    help="Act as this support user, with their rights: a municipality's administrative user manages "
    "only its municipality's users and gives only its roles (refusals are audited).",
)


_ROLES = click.Choice([r.value for r in Role])


@users_group.command(
    name="add", help="Add a support user; the password is asked for (or read from NIR_NEW_PASSWORD)."
)
@click.argument("username")
@click.option("--role", type=_ROLES, required=True)
@click.option("--municipality", help="For a municipality's user: the municipality number.")
@_ACTING_AS
@USER
def users_add(username: str, role: str, municipality: str | None, acting_as: str | None, user: str) -> None:
    from hub.support import administration

    password = os.environ.get("NIR_NEW_PASSWORD") or click.prompt(
        "password", hide_input=True, confirmation_prompt=True
    )

    def add(uow: UnitOfWork, now: dt.datetime) -> None:
        # Without --as, the operator acts with IMDi's rights (the register's own tool).
        actor = administration.acting_user(uow, acting_as) if acting_as else administration.operator(user)
        administration.add_user(uow, actor, username, password, Role(role), municipality, now)

    _administer(add)
    click.echo(f"user {username} added ({role}{', ' + municipality if municipality else ''})")


@users_group.command(name="list", help="List the users: role, municipality, disabled, last sign-in, lockout.")
def users_list() -> None:
    from hub.support.access import Throttle, list_users

    hub = common.migrated_hub()
    with hub.unit_of_work() as uow:
        users = list_users(uow, hub.clock(), Throttle.from_settings(hub.settings))

    def when(value: dt.datetime | None) -> str:
        return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "-"

    click.echo(
        f"{'username':<24} {'role':<24} {'municipality':<12} {'disabled':<8} {'last sign-in':<20} locked until"
    )
    for u in users:
        click.echo(
            f"{u.username:<24} {u.role:<24} {u.municipality or '-':<12} {'yes' if u.disabled else 'no':<8} "
            f"{when(u.last_sign_in_at):<20} {when(u.locked_until)}"
        )


def _administer(act: Callable[[UnitOfWork, dt.datetime], None]) -> None:
    """Run `act(uow, now)`, one of `hub.support.access`'s audited acts on users, in one unit of
    work."""
    hub = common.migrated_hub()
    with hub.unit_of_work() as uow:
        act(uow, hub.clock())
        uow.commit()


@users_group.command(name="disable", help="Stop a user from signing in, and end their sessions now.")
@click.argument("username")
@USER
@_ACTING_AS
def users_disable(username: str, user: str, acting_as: str | None) -> None:
    from hub.support import administration
    from hub.support.access import disable_user

    def disable(uow: UnitOfWork, now: dt.datetime) -> None:
        if acting_as:
            administration.set_disabled(uow, administration.acting_user(uow, acting_as), username, True, now)
        else:
            disable_user(uow, username, user, now)

    _administer(disable)
    click.echo(f"user {username} disabled; their sessions have ended")


@users_group.command(name="enable", help="Let a disabled user sign in again; also lifts a lockout.")
@click.argument("username")
@USER
@_ACTING_AS
def users_enable(username: str, user: str, acting_as: str | None) -> None:
    from hub.support import administration
    from hub.support.access import enable_user

    def enable(uow: UnitOfWork, now: dt.datetime) -> None:
        if acting_as:
            administration.set_disabled(uow, administration.acting_user(uow, acting_as), username, False, now)
        else:
            enable_user(uow, username, user, now)

    _administer(enable)
    click.echo(f"user {username} enabled")


@users_group.command(name="set-role", help="Give a user another role (in the same municipality).")
@click.argument("username")
@click.option("--role", type=_ROLES, required=True)
@USER
@_ACTING_AS
def users_set_role(username: str, role: str, user: str, acting_as: str | None) -> None:
    from hub.support import administration

    def change(uow: UnitOfWork, now: dt.datetime) -> None:
        # Without --as, the operator acts with IMDi's rights (the register's own tool).
        actor = administration.acting_user(uow, acting_as) if acting_as else administration.operator(user)
        administration.set_role(uow, actor, username, Role(role), now)

    _administer(change)
    click.echo(f"user {username} is now {role}")


@users_group.command(name="set-password", help="Set a user's password (asked twice); ends their sessions.")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@USER
def users_set_password(username: str, password_stdin: bool, user: str) -> None:
    from hub.support.access import set_password

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("new password", hide_input=True, confirmation_prompt=True)
    _administer(lambda uow, now: set_password(uow, username, password, user, now))
    click.echo(f"password of {username} set; their sessions have ended")


@users_group.command(
    name="reset-second-factor",
    help="Forget a user's second factor (lost phone): they enrol a new one at their next sign-in; "
    "ends their sessions.",
)
@click.argument("username")
@USER
@_ACTING_AS
def users_reset_second_factor(username: str, user: str, acting_as: str | None) -> None:
    from hub.support import administration
    from hub.support.access import reset_second_factor

    def reset(uow: UnitOfWork, now: dt.datetime) -> None:
        if acting_as:
            administration.reset_factor(uow, administration.acting_user(uow, acting_as), username, now)
        else:
            reset_second_factor(uow, username, user, now)

    _administer(reset)
    click.echo(f"second factor of {username} reset; they enrol a new one at their next sign-in")


@users_group.command(
    name="link",
    help="Let a user sign in through an identity provider (OpenID Connect) as the person it names: "
    "the issuer (NIR_OIDC_ISSUER) and the person's pid (ID-porten) or sub. Give --subject - to read "
    "it from stdin, so a fødselsnummer stays out of the shell's history.",
)
@click.argument("username")
@click.option("--issuer", required=True, help="The identity provider's issuer URL, exactly as in its tokens.")
@click.option("--subject", required=True, help="The person's pid (ID-porten) or sub; - reads it from stdin.")
@USER
def users_link(username: str, issuer: str, subject: str, user: str) -> None:
    from hub.domain.redaction import mask_identifiers
    from hub.support.oidc import link_user

    if subject == "-":
        subject = sys.stdin.readline().strip()
    elif mask_identifiers(subject) != subject:  # ID-porten's pid is a fødselsnummer
        raise click.UsageError(
            "give --subject - and the person's number on standard input, not on the command line"
        )
    _administer(lambda uow, now: link_user(uow, username, issuer, subject, user, now))
    click.echo(f"user {username} linked to a person at {issuer}")


@users_group.command(name="unlink", help="Stop a user from signing in through an identity provider.")
@click.argument("username")
@USER
def users_unlink(username: str, user: str) -> None:
    from hub.support.oidc import unlink_user

    _administer(lambda uow, now: unlink_user(uow, username, user, now))
    click.echo(f"user {username} unlinked from their identity provider")
