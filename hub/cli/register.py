"""The help's "Register" section: the database, backup and restore, a person's data, retention."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import click

from hub.bootstrap import Hub
from hub.cli import common
from hub.cli.cases import _replayed
from hub.cli.common import READ_REASON, USER, numbers_in, read_identifier, read_identifiers
from hub.domain.calendar import iso_utc
from hub.errors import HubError


@click.group(name="db", help="The register's database.")
def db_group() -> None:
    pass


@db_group.command(name="upgrade", help="Apply every Alembic migration the register lacks.")
def db_upgrade() -> None:
    from hub.register.migrate import current_revision, upgrade

    hub = common.the_hub()
    upgrade(hub.engine)
    click.echo(f"register at revision {current_revision(hub.engine)}")


@click.command(
    name="backup",
    help="Copy the register in one snapshot, while the worker runs, to FILE (SQLite: the online "
    "backup API; PostgreSQL: pg_dump's custom format), with its manifest beside it "
    "(FILE.manifest.json): the migration revision and, per partition of every topic the hub "
    "reads, the offset up to which the copy is complete.",
)
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), help="The backup's file.")
@click.option(
    "--into",
    type=click.Path(file_okay=False, path_type=Path),
    help="A directory of backups instead: each named by when it was taken (register-<UTC>.backup).",
)
@click.option(
    "--keep", type=click.IntRange(min=1), default=14, show_default=True, help="With --into: the newest kept."
)
@click.option(
    "--repeat",
    is_flag=True,
    help="With --into: again every NIR_BACKUP_INTERVAL_HOURS until stopped (a failed backup is "
    "said on stderr and tried again in at most 15 minutes).",
)
def backup_command(out: Path | None, into: Path | None, keep: int, repeat: bool) -> None:
    from hub.ops.recovery import prune_backups, timestamped_backup

    if (out is None) == (into is None):
        raise click.UsageError("give either --out FILE or --into DIRECTORY")
    if repeat and into is None:
        raise click.UsageError("--repeat takes --into DIRECTORY")
    hub = common.migrated_hub()
    if out is not None:
        _back_up(hub, out)
        return
    assert into is not None
    while True:
        try:
            _back_up(hub, timestamped_backup(into, hub.clock()))
            for gone in prune_backups(into, keep):
                click.echo(f"removed {gone} (more than {keep} kept)")
            wait = hub.settings.backup_interval_hours * 3600
        except (HubError, OSError) as exc:
            if not repeat:
                raise
            click.echo(f"error: the backup failed ({exc}); trying again in 15 minutes", err=True)
            wait = min(hub.settings.backup_interval_hours * 3600, 15 * 60)
        if not repeat:
            return
        time.sleep(wait)


def _back_up(hub: Hub, out: Path) -> None:
    from hub.ops.recovery import manifest_path, take_backup

    manifest = asyncio.run(take_backup(hub, out))
    click.echo(f"backup {out} of revision {manifest.revision}, taken {iso_utc(manifest.taken_at)}")
    click.echo(f"manifest {manifest_path(out)}: {len(manifest.offsets)} partition(s)")
    if manifest.group_committed is None:
        click.echo(
            "warning: the broker did not answer; the manifest holds what the register proves only",
            err=True,
        )


@click.command(
    name="restore",
    help="Put the backup in FILE in place of the register (stop every worker first), checking "
    "its manifest's revision; refuses a register that holds data unless --force. Then run "
    "`hub recover --manifest FILE.manifest.json`.",
)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite a register that holds data.")
def restore_command(file: Path, force: bool) -> None:
    from hub.ops.recovery import manifest_path, restore_backup

    restored = restore_backup(common.the_hub(), file, force=force)
    click.echo(f"restored {file}: register at revision {restored.revision}")
    if restored.upgraded_to is not None:
        click.echo(f"upgraded to revision {restored.upgraded_to}")
    click.echo(f"next, with every worker stopped: hub recover --manifest {manifest_path(file)}")


@click.group(
    name="retention",
    short_help="Delete or anonymise what is past its time.",
    help="The retention policy (NIR_RETENTION_*_DAYS; docs/operations/retention.md).",
)
def retention_group() -> None:
    pass


@retention_group.command(
    name="run",
    help="Show per kind of data what is past its time (a dry run, which changes nothing); with "
    "--apply, delete or anonymise it, one transaction per batch. Safe to run from cron on several "
    "machines at once: no row is taken, or counted, twice.",
)
@click.option("--apply", "apply", is_flag=True, help="Delete and anonymise; without it, only count.")
def retention_run(apply: bool) -> None:
    from hub.kafka.topics import TopicNames
    from hub.ops import logs
    from hub.register.retention import policy, run

    hub = common.migrated_hub()
    settings = hub.settings
    if apply:
        logs.for_service(settings.log_repeat_seconds)  # the counts, to stderr, for cron's log
    outcomes = run(
        hub.unit_of_work, policy(settings), hub.clock(), apply=apply, batch_size=settings.retention_batch_size
    )
    click.echo("retention: " + ("applied" if apply else "dry run, nothing changed (--apply to change)"))
    for outcome in outcomes:
        click.echo(f"  {outcome.line(apply)}")
    click.echo(
        "  the register's facts (persons, identifiers, registrations, addresses): kept indefinitely "
        "(NIR_RETENTION_REGISTER_DAYS=0; the NIR regulation's period is unconfirmed)"
    )
    names = TopicNames(settings.topic_prefix)
    for topic, setting, days in (
        (names.dead_letters, "NIR_RETENTION_DEAD_LETTER_DAYS", settings.retention_dead_letter_days),
        (
            names.registrations("<source>"),
            "NIR_RETENTION_REGISTRATIONS_DAYS",
            settings.retention_registrations_days,
        ),
        (names.receipts("<source>"), "NIR_RETENTION_RECEIPTS_DAYS", settings.retention_receipts_days),
    ):
        kept = f"{days} days" if days else "indefinitely"
        click.echo(f"  topic {topic}: the broker keeps {kept} ({setting}; set by `hub topics ensure`)")


@click.group(name="person", help="What the register holds about a person.")
def person_group() -> None:
    pass


@person_group.command(
    name="show",
    help="Show a person by fødselsnummer, D-number or DUF number, given on standard input or "
    "with --file (never on the command line); the read is kept in the access log.",
)
@numbers_in()
@READ_REASON
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
@click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Only what the register knew at the end of this day (Norwegian time), and the state then.",
)
@USER
def person_show(
    identifier: str | None,
    identifier_file: Path | None,
    reason: str,
    as_json: bool,
    as_of: dt.datetime | None,
    user: str,
) -> None:
    from hub.domain.calendar import end_of_norwegian_day
    from hub.register.access_log import Reader

    number = read_identifier(identifier, identifier_file)
    hub = common.migrated_hub()
    known_by = None
    if as_of is not None:
        known_by = end_of_norwegian_day(as_of.date())
    with hub.unit_of_work() as uow:
        # Logged whether or not the number names anyone: the search itself says something.
        uow.access_log.record_number_read(Reader.command_line(user, reason), "person_show", hub.clock(), number)
        uow.commit()
        person_id = uow.identity.person_id_of(number)
        if person_id is None:
            click.echo("no person with that identifier in the register", err=True)
            sys.exit(1)
        person = uow.person_data.describe(person_id, as_of=known_by)
    if as_json:
        click.echo(json.dumps(person, indent=2, ensure_ascii=False))
        return
    click.echo(f"person {person['personId']}")
    for i in person["identifiers"]:
        ceased = f" (ceased {i['ceasedAt']})" if i["ceasedAt"] else ""
        click.echo(f"  {i['kind']}: {i['value']}{ceased}")
    for state in person["states"]:
        click.echo(
            f"  state: {state['state']} on {state['on']} (Folkeregisteret, sequence {state['sequenceNumber']})"
        )
    for scheme, state in person["state"].items():
        dates = ", ".join(
            f"{name.removesuffix('On')} {state[name]}"
            for name in ("claimedOn", "decidedOn", "startedOn", "stoppedOn", "endedOn")
            if state[name]
        )
        click.echo(f"  {scheme}: {state['status']}" + (f" ({dates})" if dates else ""))
    for r in person["registrations"]:
        click.echo(
            f"  {r['factDate']}  {r['action']:<8} {r['eventType']}  ({r['municipality']}, {r['sourceSystem']})"
        )
    for chain in person["chains"]:
        standing = "in force" if chain["standing"] else "annulled"
        click.echo(f"  registration {chain['registrationId']} ({chain['eventType']}), {standing}:")
        for v in chain["versions"]:
            click.echo(
                f"    {v['sentAt']}  {v['action']:<8} {v['effect']:<9} {v['eventId']}  "
                f"({v['municipality']}, {v['sourceSystem']})"
            )
    for m in person["merges"]:
        split = f"; split {m['splitAt']} by {m['splitBy']}: {m['splitReason']}" if m["splitAt"] else ""
        click.echo(
            f"  merge {m['mergeId']}: person {m['otherPersonId']} joined {m['mergedAt']} by {m['mergedBy']}: "
            f"{m['reason']}{split}"
        )
    for a in person["affiliation"]:
        shown = "protected" if a.get("protected") else (a["municipality"] or "none (emigrated or unknown)")
        click.echo(f"  lived from {a['from']}: municipality {shown}")
    on = person["municipalityOn"]
    shown_on = on["municipality"] or ("protected" if on.get("protected") else "not known")
    click.echo(f"  municipality on {on['date']}: {shown_on}")
    categories = person["categories"]
    if categories is None:
        click.echo("  category: no residence permit registered")
    else:
        click.echo(
            f"  category ({categories['act']}): training {categories['training']}, "
            f"introduction programme {categories['introductionProgramme']}"
        )
        for note in categories["notes"]:
            click.echo(f"    note: {note}")


@person_group.command(
    name="export",
    help="Write everything the register holds about a person (GDPR art. 15: identifiers, "
    "registrations and their corrections, states, addresses, merges, tickets, and who has read "
    "their data) to --out, as JSON or a Norwegian page for the person. The number on standard "
    "input or with --file; the export is kept in the access log.",
)
@numbers_in()
@READ_REASON
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="The file to write (new)."
)
@click.option("--format", "form", type=click.Choice(["json", "html"]), default="json", show_default=True)
@USER
def person_export(
    identifier: str | None, identifier_file: Path | None, reason: str, out: Path, form: str, user: str
) -> None:
    from hub.register.access_log import Reader
    from hub.support.export import export_html, export_number, export_person

    number = read_identifier(identifier, identifier_file)
    hub = common.migrated_hub()
    with hub.unit_of_work() as uow:
        person_id = uow.identity.person_id_of(number)
        reader = Reader.command_line(user, reason)
        if person_id is None:  # no registration, but perhaps a failed or held one, or reads of it
            export = export_number(uow, hub.catalog, reader, number, hub.clock())
            if export is None:
                click.echo("the register holds nothing about that identifier", err=True)
                sys.exit(1)
        else:
            export = export_person(uow, hub.catalog, reader, person_id, hub.clock())
        text = export_html(export) if form == "html" else json.dumps(export, indent=2, ensure_ascii=False)
        try:  # a new file only its owner may read: it is all of one person's data
            with os.fdopen(
                os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8"
            ) as f:
                f.write(text)
        except FileExistsError:
            raise click.UsageError(f"{out} exists; an export is written to a new file") from None
        uow.commit()  # the read is logged once the export is written
    click.echo(f"person {person_id or '(none in the register)'}: written to {out}", err=True)


@person_group.command(
    name="merge",
    help="Join two persons into one: IMDi's decision on an identity conflict (recorded, audited, "
    "undone by `hub person split`). Two numbers on standard input or in --file, one per line: "
    "first the person whose record is kept, then the other (never on the command line).",
)
@numbers_in("< NUMBERS-FILE")
@click.option("--reason", required=True, help="Why the two are one person (kept with the merge).")
@click.option(
    "--ticket",
    "ticket_id",
    type=int,
    help="The identity-conflict ticket this settles: its event is replayed once they are one.",
)
@USER
def person_merge(
    identifier: str | None, identifier_file: Path | None, reason: str, ticket_id: int | None, user: str
) -> None:
    from hub.support.persons import merge

    keep, other = read_identifiers(
        identifier,
        identifier_file,
        [
            "The number of the person whose record is kept (not shown)",
            "The other person's number (not shown)",
        ],
    )
    hub = common.migrated_hub()
    with hub.unit_of_work() as uow:
        done = merge(uow, user, keep, other, reason=reason, now=hub.clock(), ticket_id=ticket_id)
        uow.commit()
        click.echo(f"merge {done.id}: person {done.other_id} joined into person {done.keeper_id}")
    if ticket_id is not None and _replayed(hub, ticket_id, user):
        click.echo(f"ticket {ticket_id}: its event replayed")


@person_group.command(
    name="split",
    help="Undo a merge into the person whose number is on standard input or in --file (the newest "
    "merge in force, or --merge): the other person back with what the merge moved and what came "
    "for their numbers since (audited).",
)
@numbers_in()
@click.option("--reason", required=True, help="Why the two are not one person.")
@click.option("--merge", "merge_id", type=int, help="The merge to undo (`hub person show` lists them).")
@click.option(
    "--mixed-to",
    type=click.Choice(["keeper", "other"]),
    help="Where registrations since the merge that named numbers of both persons go.",
)
@USER
def person_split(
    identifier: str | None,
    identifier_file: Path | None,
    reason: str,
    merge_id: int | None,
    mixed_to: str | None,
    user: str,
) -> None:
    from hub.support.persons import split

    number = read_identifier(identifier, identifier_file)
    hub = common.migrated_hub()
    with hub.unit_of_work() as uow:
        report = split(
            uow,
            user,
            number,
            reason=reason,
            now=hub.clock(),
            merge_id=merge_id,
            mixed_to=mixed_to,
        )
        uow.commit()
    moved = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in report.moved_back.items() if n)
    click.echo(
        f"merge {report.merge_id} split: person {report.other_id} is back"
        + (f" with {moved}" if moved else "")
        + (
            f"; {len(report.placed)} mixed registration(s) placed with the {mixed_to}"
            if report.placed
            else ""
        )
    )
