"""The `hub` command: the hub's commands, grouped in its help, with Faust's worker as `hub worker`
and the rest of Faust's command line under `hub faust`."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hub.bootstrap import Hub
from hub.domain.calendar import iso_utc
from hub.errors import HubError
from hub.gateway.server import gateway
from hub.ops.lag_exporter import lag_exporter
from hub.support.access import Role

if TYPE_CHECKING:
    from hub.support.incidents import Incident


def _hub() -> Hub:
    from hub.app import hub

    return hub


def _migrated_hub() -> Hub:
    """The hub, once its register is known to be at the newest migration (else a clear error)."""
    from hub.register.migrate import require_current

    hub = _hub()
    require_current(hub.engine)
    return hub


@click.group(name="db", help="The register's database.")
def db_group() -> None:
    pass


@db_group.command(name="upgrade", help="Apply every Alembic migration the register lacks.")
def db_upgrade() -> None:
    from hub.register.migrate import current_revision, upgrade

    hub = _hub()
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
    hub = _migrated_hub()
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

    restored = restore_backup(_hub(), file, force=force)
    click.echo(f"restored {file}: register at revision {restored.revision}")
    if restored.upgraded_to is not None:
        click.echo(f"upgraded to revision {restored.upgraded_to}")
    click.echo(f"next, with every worker stopped: hub recover --manifest {manifest_path(file)}")


@click.command(
    name="recover",
    help="After a restore, as the admin principal: move the consumer group back, on every topic "
    "the hub reads, to the manifest's offsets (without --manifest: to what the register proves "
    "done). Refuses while a worker of the group is alive. The worker then decides again what "
    "came after; what the register holds is answered as a redelivery.",
)
@click.option("--manifest", "manifest_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Show the moves; make none.")
def recover_command(manifest_file: Path | None, dry_run: bool) -> None:
    from hub.ops.recovery import Manifest, recover

    hub = _migrated_hub()
    manifest = Manifest.read(manifest_file) if manifest_file is not None else None
    moves = recover(hub, hub.settings, manifest, dry_run=dry_run)
    for m in moves:
        was = "none" if m.committed is None else str(m.committed)
        click.echo(f"{m.topic}  partition={m.partition}  {was} -> {m.to}")
        if m.lost is not None:
            click.echo(
                f"warning: {m.topic} partition {m.partition} no longer holds offsets {m.lost} to "
                f"{m.to - 1}: their events are not in the register and cannot be read again",
                err=True,
            )
    moved = sum(m.committed != m.to for m in moves)
    click.echo(
        f"{'would move' if dry_run else 'moved'} {moved} of {len(moves)} partition(s) of group {hub.settings.app_id}"
    )


@click.group(name="topics", help="The hub's Kafka topics.")
def topics_group() -> None:
    pass


@topics_group.command(
    name="ensure",
    help="As the admin principal: create every topic the hub needs that is missing, the "
    "credentials and ACLs of the worker and the connector, and grant every registered source. "
    "Idempotent.",
)
def topics_ensure() -> None:
    from hub.kafka.admin import config_drift, shorter_retention
    from hub.kafka.principals import BrokerAccess, prepare_broker
    from hub.kafka.topics import read_by_the_hub, required_topics

    hub = _hub()
    specs = required_topics(hub.settings, hub.registry)
    created = asyncio.run(prepare_broker(hub.settings, hub.registry))
    for spec in specs:
        state = "created" if spec.name in created else "exists"
        click.echo(f"{spec.name}  partitions={spec.partitions}  {state}")
    drifts = asyncio.run(config_drift(hub.settings.kafka, specs))
    # The retention policy (NIR_RETENTION_*_DAYS) is the operator's own setting: applied to
    # existing topics too, incrementally. Any other config a topic lacks changes what it holds or
    # how it is read (compaction, timestamps): the operator decides, from the printed command.
    retained = [d for d in drifts if d.key == "retention.ms"]
    BrokerAccess(hub.settings).set_topic_configs((d.topic, d.key, d.wanted) for d in retained)
    for drift in retained:
        click.echo(f"{drift.topic}  retention.ms={drift.wanted} set (was {drift.actual})")
    for drift in (d for d in drifts if d.key != "retention.ms"):
        click.echo(
            f"warning: {drift.topic} has {drift.key}={drift.actual}, not {drift.wanted} (it was "
            f"created before the hub asked for that; docs/developers/topics.md says what it changes):\n"
            f"  {drift.fix(hub.settings.kafka.bootstrap)}",
            err=True,
        )
    interval = hub.settings.backup_interval_hours
    short = asyncio.run(
        shorter_retention(hub.settings.kafka, read_by_the_hub(hub.names, hub.registry), interval * 3_600_000)
    )
    for topic, kept in short.items():
        click.echo(
            f"warning: {topic} keeps messages for {kept / 3_600_000:g} hours, less than the backup "
            f"interval (NIR_BACKUP_INTERVAL_HOURS={interval}): after a restore, what it no longer "
            "holds cannot be applied again (docs/operations/backup-and-recovery.md)",
            err=True,
        )
    click.echo(
        f"ACLs: {hub.settings.kafka_worker_user}, {hub.settings.kafka_connector_user}, "
        + ", ".join(s.user for s in hub.registry)
    )


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

    hub = _migrated_hub()
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


@click.group(
    name="sources",
    short_help="The fagsystems: list, grant, revoke, restore.",
    help="The source registry's fagsystems, and their access to the broker.",
)
def sources_group() -> None:
    pass


def _source(hub: Hub, source_id: str) -> Any:
    source = hub.registry.get(source_id)
    if source is None:
        raise click.BadParameter(f"{source_id!r} is not in the source registry", param_hint="ID")
    return source


@sources_group.command(
    name="list", help="Each source: its principal, how it authenticates, its municipalities."
)
def sources_list() -> None:
    for source in _hub().registry:
        click.echo(
            f"{source.id}  principal={source.user}  authentication={source.authentication}  "
            f"municipalities={','.join(sorted(source.municipalities))}  {source.name}"
        )


@sources_group.command(
    name="grant",
    help="As the admin principal: create the source's topics, its SCRAM credential (when the hub "
    "keeps its password) and its ACLs: write its registrations, read its receipts. Idempotent.",
)
@click.argument("source_id", metavar="ID")
def sources_grant(source_id: str) -> None:
    from hub.kafka.admin import ensure_topics
    from hub.kafka.principals import BrokerAccess, describe
    from hub.kafka.topics import required_topics
    from hub.sources import SourceRegistry

    hub = _hub()
    source = _source(hub, source_id)
    specs = required_topics(hub.settings, SourceRegistry({source.id: source}))
    asyncio.run(ensure_topics(hub.settings.kafka, specs, hub.settings.replication_factor))
    for acl in BrokerAccess(hub.settings).grant(source):
        click.echo(describe(acl))
    if source.authentication == "scram":
        click.echo(
            f"password of {source.user}: {hub.settings.password_file(source.user)} (hand it over securely)"
        )


# Who decided a revocation or a restoration, and why: recorded in the register.
_reason = click.option("--reason", required=True, help="Why (recorded in the register with who and when).")
_decided_by = click.option(
    # (a lambda: `_os_user` is defined further down, beside the other options that record who)
    "--by",
    default=lambda: _os_user(),
    show_default="the OS user",
    help="Who decided it.",
)


def _change_source(source_id: str, change: Callable[[Hub, Any], Coroutine[Any, Any, str]]) -> None:
    """Revoke or restore a source (`hub.revocation`), and say what was done."""
    hub = _migrated_hub()
    source = _source(hub, source_id)
    try:
        click.echo(asyncio.run(change(hub, source)))
    except ValueError as exc:  # no reason given, or not revoked
        raise click.UsageError(str(exc)) from None


@sources_group.command(
    name="revoke",
    help="Stop a source at once, as the admin principal: the worker rejects everything on its "
    "topic from the next batch (NIR-SOURCE-003), the gateway answers it 403, and its ACLs and SCRAM "
    "credential are removed; its topics and what they hold stay. Idempotent: run it again after a "
    "failure.",
)
@click.argument("source_id", metavar="ID")
@_reason
@_decided_by
def sources_revoke(source_id: str, reason: str, by: str) -> None:
    from hub import revocation

    async def revoke(hub: Hub, source: Any) -> str:
        state, removed = await revocation.revoke(hub, source, by=by, reason=reason)
        return (
            f"revoked {source.id} since {iso_utc(state.since)}: "
            f"{removed} ACL(s) of {source.kafka_principal} removed"
        )

    _change_source(source_id, revoke)


@sources_group.command(
    name="restore",
    help="Let a revoked source transfer again: recorded, published to the gateway, and its ACLs "
    "granted again.",
)
@click.argument("source_id", metavar="ID")
@_reason
@_decided_by
def sources_restore(source_id: str, reason: str, by: str) -> None:
    from hub import revocation

    async def restore(hub: Hub, source: Any) -> str:
        state = await revocation.restore(hub, source, by=by, reason=reason)
        return f"restored {source.id} since {iso_utc(state.since)}"

    _change_source(source_id, restore)


@click.group(name="schemas", help="The Avro contract, for fagsystem vendors.")
def schemas_group() -> None:
    pass


@schemas_group.command(name="list", help="List every schema version with its fingerprint.")
def schemas_list() -> None:
    from hub.schemas.codec import catalog

    c = catalog()
    for version in c:
        current = " (current)" if c.current(version.family) is version else ""
        click.echo(f"{version.path.name}  fingerprint {version.fingerprint.hex()}{current}")


@schemas_group.command(name="export", help="Copy every .avsc file into DIR.")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def schemas_export(directory: Path) -> None:
    from hub.schemas.codec import catalog

    directory.mkdir(parents=True, exist_ok=True)
    for version in catalog():
        shutil.copyfile(version.path, directory / version.path.name)
        click.echo(str(directory / version.path.name))


@click.command(
    name="publish",
    short_help="Publish a JSON Lines file of registration events.",
    help="Check and publish a JSON Lines file of registration events, as the source's principal "
    "(NIR_KAFKA_USERNAME, or a Maskinporten token): the broker lets it write only its own topic.",
)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--source", help="Send as this source; lines naming another source are refused.")
def publish(file: Path, source: str | None) -> None:
    from hub.connectors.fagsystem import FagsystemProducer
    from hub.connectors.jsonlines import publish_file

    hub = _hub()

    def producer_for(source_id: str) -> FagsystemProducer:
        return FagsystemProducer(hub.settings.kafka, source_id, topic_prefix=hub.settings.topic_prefix)

    report = asyncio.run(
        publish_file(file, producer_for, source=source, on_line=lambda r: click.echo(r.describe()))
    )
    click.echo(f"sent {report.sent}, refused {report.refused}")
    if report.refused:
        sys.exit(1)


@click.command(name="receipts", help="Show the receipts a source has been sent.")
@click.option("--source", "source_id", required=True, help="The source (fagsystem installation) id.")
@click.option("--follow", is_flag=True, help="Keep printing receipts as they arrive.")
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON object per receipt, as the contract and the gateway write it."
)
def receipts(source_id: str, follow: bool, as_json: bool) -> None:
    from hub.connectors.receipts import Receipt, ReceiptReader
    hub = _hub()
    if hub.registry.get(source_id) is None:
        click.echo(f"source {source_id!r} is not in the source registry", err=True)
        sys.exit(1)

    def show(receipt: Receipt) -> None:
        click.echo(json.dumps(receipt.as_json()) if as_json else receipt.describe())

    async def read() -> None:
        async with ReceiptReader(
            hub.settings.kafka, source_id, topic_prefix=hub.settings.topic_prefix
        ) as reader:
            for receipt in await reader.until_caught_up():
                show(receipt)
            if follow:
                async for receipt in reader.stream():
                    show(receipt)

    asyncio.run(read())


_AS_JSON = click.option("--json", "as_json", is_flag=True, help="One JSON object a line, no header.")
_LIMIT = click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="Show at most this many; a notice on stderr says when there are more.",
)


def _echo_listing(
    rows: list[dict[str, Any]],
    columns: dict[str, Callable[[dict[str, Any]], Any]],
    *,
    as_json: bool,
    limit: int,
    what: str,
) -> None:
    """Print a list command's `rows` as a table under a header of `columns`, or as JSON Lines.

    Given up to `limit` + 1 rows, it shows `limit` and says on stderr when there were more: a
    list cut short must not pass for the whole.
    """
    shown = rows[:limit]
    if as_json:
        for row in shown:
            click.echo(json.dumps(row, ensure_ascii=False))
    else:
        table = [list(columns)] + [
            ["-" if (value := cell(row)) is None else str(value) for cell in columns.values()]
            for row in shown
        ]
        widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
        for line in table:
            click.echo(
                "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
            )
    if len(rows) > limit:
        click.echo(f"only the first {limit} {what} are shown; there are more (--limit)", err=True)


def _os_user() -> str:
    from hub.register.access_log import os_user

    return os_user()


_USER = click.option(
    "--user",
    default=_os_user,
    show_default="the OS user",
    help="Who is acting (for the audit log); the operating-system user is recorded beside it.",
)
_READ_REASON = click.option(
    "--reason",
    required=True,
    help="Why you read this person's data (kept in the access log with who and when).",
)
_IDENTIFIER_FILE = click.option(
    "--file",
    "identifier_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file holding the person's number (else it is read from standard input).",
)


def _numbers_in(metavar: str = "< NUMBER-FILE") -> Callable[[Any], Any]:
    """A command that takes a person's number (or numbers) on standard input or with --file: the
    --file option, and an `identifier` argument that is there only to refuse a number given on
    the command line (`_identifiers`) with how to give it instead."""

    def decorate(command: Any) -> Any:
        return click.argument("identifier", required=False, metavar=metavar)(_IDENTIFIER_FILE(command))

    return decorate


def _identifier(on_command_line: str | None, file: Path | None) -> str:
    """The person's number, from `--file` or standard input; see `_identifiers`."""
    [number] = _identifiers(on_command_line, file, ["The person's number (not shown)"])
    return number


def _identifiers(on_command_line: str | None, file: Path | None, prompts: list[str]) -> list[str]:
    """One number per prompt, from `--file` or standard input (one per line; asked for, unechoed,
    at a terminal): never from the command line, where it would stay in the shell's history and be
    seen by anyone listing processes. A number given there is refused with how to give it instead."""
    if on_command_line is not None:
        raise click.UsageError(
            "a person's number is not taken on the command line (it would stay in the shell's history "
            "and the process list); give it on standard input (`< FILE`, or type it when asked) "
            "or with --file FILE"
        )
    if file is not None:
        numbers = file.read_text(encoding="utf-8").split()
    elif sys.stdin.isatty():
        numbers = [click.prompt(prompt, hide_input=True, err=True).strip() for prompt in prompts]
    else:
        numbers = sys.stdin.read().split()
    whole = all(len(n) in (11, 12) and n.isascii() and n.isdigit() for n in numbers)
    if len(numbers) != len(prompts) or not whole:
        one = "one whole fødselsnummer, D-number (11 digits) or DUF number (12 digits)"
        raise click.UsageError(
            f"give {one}" if len(prompts) == 1 else f"give {len(prompts)} numbers, one per line, each {one}"
        )
    return numbers


@click.group(name="person", help="What the register holds about a person.")
def person_group() -> None:
    pass


@person_group.command(
    name="show",
    help="Show a person by fødselsnummer, D-number or DUF number, given on standard input or "
    "with --file (never on the command line); the read is kept in the access log.",
)
@_numbers_in()
@_READ_REASON
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
@click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Only what the register knew at the end of this day (Norwegian time), and the state then.",
)
@_USER
def person_show(
    identifier: str | None,
    identifier_file: Path | None,
    reason: str,
    as_json: bool,
    as_of: dt.datetime | None,
    user: str,
) -> None:
    from hub.domain.calendar import OSLO
    from hub.register.access_log import Reader, record_number_read
    from hub.register.people import describe_person
    from hub.register.repository import find_person_id
    from hub.register.unit_of_work import UnitOfWork

    number = _identifier(identifier, identifier_file)
    hub = _migrated_hub()
    known_by = None
    if as_of is not None:
        known_by = dt.datetime.combine(as_of.date(), dt.time.max, tzinfo=OSLO).astimezone(dt.UTC)
    with UnitOfWork(hub.session_factory) as uow:
        # Logged whether or not the number names anyone: the search itself says something.
        record_number_read(uow.session, Reader.command_line(user, reason), "person_show", hub.clock(), number)
        uow.commit()
        person_id = find_person_id(uow.session, number)
        if person_id is None:
            click.echo("no person with that identifier in the register", err=True)
            sys.exit(1)
        person = describe_person(uow.session, person_id, as_of=known_by)
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
@_numbers_in()
@_READ_REASON
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="The file to write (new)."
)
@click.option("--format", "form", type=click.Choice(["json", "html"]), default="json", show_default=True)
@_USER
def person_export(
    identifier: str | None, identifier_file: Path | None, reason: str, out: Path, form: str, user: str
) -> None:
    from hub.register.access_log import Reader
    from hub.register.repository import find_person_id
    from hub.register.unit_of_work import UnitOfWork
    from hub.support.export import export_html, export_person

    number = _identifier(identifier, identifier_file)
    hub = _migrated_hub()
    with UnitOfWork(hub.session_factory) as uow:
        person_id = find_person_id(uow.session, number)
        if person_id is None:
            click.echo("no person with that identifier in the register", err=True)
            sys.exit(1)
        export = export_person(
            uow.session, hub.catalog, Reader.command_line(user, reason), person_id, hub.clock()
        )
        text = export_html(export) if form == "html" else json.dumps(export, indent=2, ensure_ascii=False)
        try:  # a new file only its owner may read: it is all of one person's data
            with os.fdopen(
                os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8"
            ) as f:
                f.write(text)
        except FileExistsError:
            raise click.UsageError(f"{out} exists; an export is written to a new file") from None
        uow.commit()  # the read is logged once the export is written
    click.echo(f"person {person_id}: written to {out}", err=True)


@person_group.command(
    name="merge",
    help="Join two persons into one: IMDi's decision on an identity conflict (recorded, audited, "
    "undone by `hub person split`). Two numbers on standard input or in --file, one per line: "
    "first the person whose record is kept, then the other (never on the command line).",
)
@_numbers_in("< NUMBERS-FILE")
@click.option("--reason", required=True, help="Why the two are one person (kept with the merge).")
@click.option(
    "--ticket",
    "ticket_id",
    type=int,
    help="The identity-conflict ticket this settles: its event is replayed once they are one.",
)
@_USER
def person_merge(
    identifier: str | None, identifier_file: Path | None, reason: str, ticket_id: int | None, user: str
) -> None:
    from hub.register.unit_of_work import UnitOfWork
    from hub.support.persons import merge

    keep, other = _identifiers(
        identifier,
        identifier_file,
        [
            "The number of the person whose record is kept (not shown)",
            "The other person's number (not shown)",
        ],
    )
    hub = _migrated_hub()
    with UnitOfWork(hub.session_factory) as uow:
        done = merge(uow.session, user, keep, other, reason=reason, now=hub.clock(), ticket_id=ticket_id)
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
@_numbers_in()
@click.option("--reason", required=True, help="Why the two are not one person.")
@click.option("--merge", "merge_id", type=int, help="The merge to undo (`hub person show` lists them).")
@click.option(
    "--mixed-to",
    type=click.Choice(["keeper", "other"]),
    help="Where registrations since the merge that named numbers of both persons go.",
)
@_USER
def person_split(
    identifier: str | None,
    identifier_file: Path | None,
    reason: str,
    merge_id: int | None,
    mixed_to: str | None,
    user: str,
) -> None:
    from hub.register.unit_of_work import UnitOfWork
    from hub.support.persons import split

    number = _identifier(identifier, identifier_file)
    hub = _migrated_hub()
    with UnitOfWork(hub.session_factory) as uow:
        report = split(
            uow.session,
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


@click.command(
    name="report",
    short_help="Statistics as CSV: participants, status, exits, late.",
    help="Statistics from the register as CSV: participants, status, exits, late.",
)
@click.argument("name", type=click.Choice(["participants", "status", "exits", "late"]))
@click.option("--year", type=int, default=lambda: dt.date.today().year, help="The year to report on.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write the CSV here.")
@click.option("--chart", type=click.Path(dir_okay=False, path_type=Path), help="Also draw it as a PNG.")
def report(name: str, year: int, output: Path | None, chart: Path | None) -> None:
    import csv
    import io

    from hub.register.reports import REPORTS

    hub = _migrated_hub()
    with hub.session_factory() as session:
        result = REPORTS[name](session, year)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(result.columns)
    writer.writerows(result.rows)
    if output is not None:
        output.write_text(buffer.getvalue(), encoding="utf-8")
    else:
        click.echo(buffer.getvalue(), nl=False)
    if chart is not None:
        from hub.register.charts import draw

        draw(result, title=f"{name} {year}", path=chart)
        click.echo(f"chart written to {chart}", err=True)


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
@_AS_JSON
@_LIMIT
@_READ_REASON
@click.option("--reveal", is_flag=True, help="Show the identifiers whole (kept in the access log as such).")
@_USER
def cases_list(as_json: bool, limit: int, reason: str, reveal: bool, user: str, **options: Any) -> None:
    from hub.domain.identifiers import last_digits
    from hub.register.access_log import Reader, record_ticket_read
    from hub.register.unit_of_work import UnitOfWork
    from hub.support.tickets import describe_ticket, list_tickets

    hub = _migrated_hub()
    reader, now = Reader.command_line(user, reason), hub.clock()
    with UnitOfWork(hub.session_factory) as uow:
        found = list_tickets(uow.session, _ticket_filter(**options), limit=limit + 1)
        tickets: list[dict[str, Any]] = []
        for t in found[:limit]:
            record_ticket_read(uow.session, reader, "cases_list_reveal" if reveal else "cases_list", now, t)
            shown = describe_ticket(uow.session, hub.catalog, t, reveal=reveal)
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
    _echo_listing(tickets, columns, as_json=as_json, limit=limit, what="tickets")


@cases_group.command(
    name="show",
    help="Show one ticket with its decoded event and edits, and for an identity conflict the persons "
    "its numbers name (audited).",
)
@click.argument("ticket_id", type=int)
@_READ_REASON
@_USER
def cases_show(ticket_id: int, reason: str, user: str) -> None:
    from hub.register.access_log import Reader, record_ticket_read
    from hub.register.unit_of_work import UnitOfWork
    from hub.support.access import audit
    from hub.support.desk import identity_context
    from hub.support.tickets import IDENTITY_CONFLICT_KIND, describe_ticket, get_ticket

    hub = _migrated_hub()
    with UnitOfWork(hub.session_factory) as uow:
        ticket = get_ticket(uow.session, ticket_id)
        shown = describe_ticket(uow.session, hub.catalog, ticket, reveal=True)
        if ticket.kind == IDENTITY_CONFLICT_KIND:  # the persons its numbers name, side by side
            shown["identity"] = identity_context(uow.session, ticket)
        audit(uow.session, user, "view_ticket", hub.clock(), ticket_id=ticket_id)
        record_ticket_read(uow.session, Reader.command_line(user, reason), "cases_show", hub.clock(), ticket)
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
@_USER
@click.option("--dry-run", is_flag=True, help="Show what would be replayed; send nothing.")
@click.option("--rate", type=float, default=50.0, show_default=True, help="Replays per second at most.")
def cases_replay(
    ticket_id: int | None, edit_file: Path | None, user: str, dry_run: bool, rate: float, **options: Any
) -> None:
    from hub.support.replay import ReplayStep, edit_ticket, replay_tickets
    from hub.support.tickets import get_ticket, list_tickets

    hub = _migrated_hub()
    has_filter = any(options[k] is not None for k in options)
    if (ticket_id is None) == (not has_filter):
        raise click.UsageError("give either a ticket number or a filter")
    if edit_file is not None:
        if ticket_id is None:
            raise click.UsageError("--edit works on one ticket")
        from hub.register.unit_of_work import UnitOfWork

        with UnitOfWork(hub.session_factory) as uow:
            event = json.loads(edit_file.read_text(encoding="utf-8"))
            edit_ticket(
                uow.session, hub.catalog, get_ticket(uow.session, ticket_id), event, user, hub.clock()
            )
            uow.commit()
        click.echo(f"ticket {ticket_id}: edit checked and kept")
    if ticket_id is not None:
        ids = [ticket_id]
    else:
        with hub.session_factory() as session:
            ids = [t.id for t in list_tickets(session, _ticket_filter(**options), limit=1_000_000)]
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
    from hub.register.unit_of_work import UnitOfWork
    from hub.support.tickets import TicketStatus, settle

    hub = _migrated_hub()
    with UnitOfWork(hub.session_factory) as uow:
        settle(uow.session, ticket_id, TicketStatus(status_name), note, hub.clock(), username=user)
        uow.commit()
    click.echo(f"ticket {ticket_id} {status_name}")


@cases_group.command(
    name="approve",
    help="Approve a ticket's event past the rule that refused it, where IMDi may (a correction or "
    "annulment of another municipality's registration, NIR-CORR-004), and replay it (audited).",
)
@click.argument("ticket_id", type=int)
@click.option("--note", required=True, help="Why IMDi approves it (kept in the audit log).")
@_USER
def cases_approve(ticket_id: int, note: str, user: str) -> None:
    from hub.register.unit_of_work import UnitOfWork
    from hub.support.approval import approve
    from hub.support.tickets import get_ticket

    hub = _migrated_hub()
    with UnitOfWork(hub.session_factory) as uow:
        approve(uow.session, get_ticket(uow.session, ticket_id), username=user, note=note, now=hub.clock())
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
@_USER
def cases_resolve(ticket_id: int, note: str, user: str) -> None:
    _settle(ticket_id, note, "resolved", user)


@cases_group.command(name="discard", help="Close a ticket without fixing it, with a note.")
@click.argument("ticket_id", type=int)
@click.option("--note", required=True)
@_USER
def cases_discard(ticket_id: int, note: str, user: str) -> None:
    _settle(ticket_id, note, "discarded", user)


@cases_group.command(
    name="incidents",
    help="List the incidents: the open and replayed tickets of one cause (source, error code, event "
    "type, fagsystemVersion) whose failures follow each other less than NIR_INCIDENT_WINDOW_HOURS "
    "apart; newest last failure first, with counts of municipalities and persons (never who).",
)
@_AS_JSON
@_LIMIT
def cases_incidents(as_json: bool, limit: int) -> None:
    from hub.support.incidents import list_incidents

    hub = _migrated_hub()
    with hub.session_factory() as session:
        found = list_incidents(session, window=_incident_window(hub), limit=limit + 1)
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
    _echo_listing(rows, columns, as_json=as_json, limit=limit, what="incidents")


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
    with hub.session_factory() as session:
        return find_incident(session, window=_incident_window(hub), cause=cause, ticket_id=ticket_id)


@cases_group.command(
    name="resolve-incident",
    help="Close every open and replayed ticket of one incident as solved, with a note (each audited), "
    "1,000 per transaction. The incident is chosen by its cause as `cases incidents` prints it "
    '("-" for none) or by one of its tickets (--ticket, e.g. its sample ticket).',
)
@_incident_options
@click.option("--note", required=True)
@_USER
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
    hub = _migrated_hub()
    incident = _chosen_incident(hub, source, code, event_type, fagsystem_version, ticket_id)
    resolved = 0
    for count in resolve_incident(hub.session_factory, incident, note, hub.clock(), username=user):
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
@_USER
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
    from hub.register.unit_of_work import UnitOfWork
    from hub.support.access import audit
    from hub.support.replay import ReplayStep, replay_incident

    if not reason.strip():
        raise click.UsageError("--reason must say why")
    hub = _migrated_hub()
    incident = _chosen_incident(hub, source, code, event_type, fagsystem_version, ticket_id)
    described = " / ".join(v or "-" for v in incident.cause.as_tuple())
    click.echo(f"incident {described}: {incident.tickets} ticket(s), sample ticket {incident.sample_ticket}")
    if not dry_run:
        if not yes:
            click.confirm(f"replay {incident.tickets} ticket(s)?", abort=True, err=True)
        with UnitOfWork(hub.session_factory) as uow:
            detail = f"os user {_os_user()}: {reason.strip()}"[:512]
            audit(
                uow.session,
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
@_numbers_in()
@click.option("--description", required=True)
@click.option("--municipality", help="The municipality's number, if the case is about one.")
@_USER
def cases_file(
    identifier: str | None,
    identifier_file: Path | None,
    description: str,
    municipality: str | None,
    user: str,
) -> None:
    from hub.register.unit_of_work import UnitOfWork
    from hub.support.access import audit
    from hub.support.tickets import file_manual_case

    duf_number = _identifier(identifier, identifier_file)
    hub = _migrated_hub()
    with UnitOfWork(hub.session_factory) as uow:
        ticket = file_manual_case(
            uow.session,
            duf_number=duf_number,
            description=description,
            municipality=municipality,
            now=hub.clock(),
        )
        audit(uow.session, user, "file_case", hub.clock(), ticket_id=ticket.id)
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
@_USER
def users_add(username: str, role: str, municipality: str | None, acting_as: str | None, user: str) -> None:
    from hub.support import administration
    from hub.support.access import audit, create_user

    password = os.environ.get("NIR_NEW_PASSWORD") or click.prompt(
        "password", hide_input=True, confirmation_prompt=True
    )

    def add(session: Any, now: dt.datetime) -> None:
        if acting_as:
            actor = administration.acting_user(session, acting_as)
            administration.add_user(session, actor, username, password, Role(role), municipality, now)
        else:
            create_user(session, username, password, Role(role), municipality, now)
            audit(
                session,
                user,
                "add_user",
                now,
                detail=f"user {username} role={role} municipality={municipality}",
            )

    _administer(add)
    click.echo(f"user {username} added ({role}{', ' + municipality if municipality else ''})")


@users_group.command(name="list", help="List the users: role, municipality, disabled, last sign-in, lockout.")
def users_list() -> None:
    from hub.support.access import Throttle, list_users

    hub = _migrated_hub()
    with hub.session_factory() as session:
        users = list_users(session, hub.clock(), Throttle.from_settings(hub.settings))

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


def _administer(act: Any) -> None:
    """Run `act(session, now)`, one of `hub.support.access`'s audited acts on users, in one unit
    of work."""
    from hub.register.unit_of_work import UnitOfWork

    hub = _migrated_hub()
    with UnitOfWork(hub.session_factory) as uow:
        act(uow.session, hub.clock())
        uow.commit()


@users_group.command(name="disable", help="Stop a user from signing in, and end their sessions now.")
@click.argument("username")
@_USER
@_ACTING_AS
def users_disable(username: str, user: str, acting_as: str | None) -> None:
    from hub.support import administration
    from hub.support.access import disable_user

    def disable(session: Any, now: dt.datetime) -> None:
        if acting_as:
            administration.set_disabled(
                session, administration.acting_user(session, acting_as), username, True, now
            )
        else:
            disable_user(session, username, user, now)

    _administer(disable)
    click.echo(f"user {username} disabled; their sessions have ended")


@users_group.command(name="enable", help="Let a disabled user sign in again; also lifts a lockout.")
@click.argument("username")
@_USER
@_ACTING_AS
def users_enable(username: str, user: str, acting_as: str | None) -> None:
    from hub.support import administration
    from hub.support.access import enable_user

    def enable(session: Any, now: dt.datetime) -> None:
        if acting_as:
            administration.set_disabled(
                session, administration.acting_user(session, acting_as), username, False, now
            )
        else:
            enable_user(session, username, user, now)

    _administer(enable)
    click.echo(f"user {username} enabled")


@users_group.command(name="set-role", help="Give a user another role (in the same municipality).")
@click.argument("username")
@click.option("--role", type=_ROLES, required=True)
@_USER
@_ACTING_AS
def users_set_role(username: str, role: str, user: str, acting_as: str | None) -> None:
    from hub.support import administration

    def change(session: Any, now: dt.datetime) -> None:
        # Without --as, the operator acts with IMDi's rights (the register's own tool).
        actor = administration.acting_user(session, acting_as) if acting_as else administration.operator(user)
        administration.set_role(session, actor, username, Role(role), now)

    _administer(change)
    click.echo(f"user {username} is now {role}")


@users_group.command(name="set-password", help="Set a user's password (asked twice); ends their sessions.")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@_USER
def users_set_password(username: str, password_stdin: bool, user: str) -> None:
    from hub.support.access import set_password

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("new password", hide_input=True, confirmation_prompt=True)
    _administer(lambda session, now: set_password(session, username, password, user, now))
    click.echo(f"password of {username} set; their sessions have ended")


@users_group.command(
    name="reset-second-factor",
    help="Forget a user's second factor (lost phone): they enrol a new one at their next sign-in; "
    "ends their sessions.",
)
@click.argument("username")
@_USER
@_ACTING_AS
def users_reset_second_factor(username: str, user: str, acting_as: str | None) -> None:
    from hub.support import administration
    from hub.support.access import reset_second_factor

    def reset(session: Any, now: dt.datetime) -> None:
        if acting_as:
            administration.reset_factor(
                session, administration.acting_user(session, acting_as), username, now
            )
        else:
            reset_second_factor(session, username, user, now)

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
@_USER
def users_link(username: str, issuer: str, subject: str, user: str) -> None:
    from hub.domain.redaction import mask_identifiers
    from hub.support.oidc import link_user

    if subject == "-":
        subject = sys.stdin.readline().strip()
    elif mask_identifiers(subject) != subject:  # ID-porten's pid is a fødselsnummer
        raise click.UsageError(
            "give --subject - and the person's number on standard input, not on the command line"
        )
    _administer(lambda session, now: link_user(session, username, issuer, subject, user, now))
    click.echo(f"user {username} linked to a person at {issuer}")


@users_group.command(name="unlink", help="Stop a user from signing in through an identity provider.")
@click.argument("username")
@_USER
def users_unlink(username: str, user: str) -> None:
    from hub.support.oidc import unlink_user

    _administer(lambda session, now: unlink_user(session, username, user, now))
    click.echo(f"user {username} unlinked from their identity provider")


@click.group(name="rules", help="The validation rule catalogue.")
def rules_group() -> None:
    pass


@rules_group.command(
    name="list",
    help="Every rule's code, severity and title, and the codes of the other failures an event can "
    "end with; sorted by code.",
)
@click.option("--lang", type=click.Choice(["en", "nb"]), default="en", help="Language of the titles.")
@click.option("--advice", "with_advice", is_flag=True, help="Add each rule's what-to-do text.")
@_AS_JSON
@_LIMIT
def rules_list(lang: str, with_advice: bool, as_json: bool, limit: int) -> None:
    from hub.errors import FAILURE_CODES, title
    from hub.rules import RULES

    codes = [
        {
            "code": r.code,
            "severity": r.severity.value,
            "kind": "rule",
            "title": r.title,
            "titleNb": r.title_nb,
            "advice": r.advice.en,
            "adviceNb": r.advice.nb,
        }
        for r in RULES
    ] + [
        {
            "code": e.code,
            "severity": "REJECT",
            "kind": "failure",
            "title": title(e),
            "titleNb": e.title_nb,
            "advice": None,
            "adviceNb": None,
        }
        for e in FAILURE_CODES
    ]
    codes.sort(key=lambda c: str(c["code"]))
    shown_title = "title" if lang == "en" else "titleNb"
    columns = {
        "code": lambda c: c["code"],
        "severity": lambda c: c["severity"],
        "kind": lambda c: c["kind"],
        "title": lambda c: c[shown_title],
    }
    if with_advice:
        shown_advice = "advice" if lang == "en" else "adviceNb"
        columns["advice"] = lambda c: c[shown_advice] or ""
    _echo_listing(codes, columns, as_json=as_json, limit=limit, what="codes")


@click.command(name="demo", help="Run the hub end to end on the embedded defaults.")
@click.option("--keep-broker", is_flag=True, help="Leave a broker the demo started running.")
@click.option("--support", is_flag=True, help="Then keep serving the support page, until Ctrl-C.")
@click.option(
    "--disaster",
    is_flag=True,
    help="Then back up the register, send more events, lose the register, restore and recover it.",
)
def demo(keep_broker: bool, support: bool, disaster: bool) -> None:
    from hub.dev.demo import run_demo

    sys.exit(run_demo(keep_broker=keep_broker, support=support, disaster=disaster))


@click.group(name="folkeregister", help="The Folkeregister connector and its local stand-in.")
def folkeregister_group() -> None:
    pass


@folkeregister_group.command(
    name="connect", help="Follow Folkeregisteret's feed and publish known persons' address changes."
)
def folkeregister_connect() -> None:
    import signal

    from hub.connectors.folkeregister import run_connector
    from hub.kafka.admin import ensure_topics
    from hub.kafka.topics import folkeregister_topics
    from hub.ops import logs

    hub = _migrated_hub()
    logs.for_service(hub.settings.log_repeat_seconds)
    if hub.settings.connector_metrics_port:
        from prometheus_client import start_http_server

        start_http_server(hub.settings.connector_metrics_port, addr=hub.settings.web_host)

    async def connect() -> None:
        await ensure_topics(
            hub.settings.kafka, folkeregister_topics(hub.settings), hub.settings.replication_factor
        )
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        status = await run_connector(hub, stop)
        click.echo(
            f"stopped at sequence number {status.position}: {status.published} published, "
            f"{status.passed_over} passed over, {status.looked_up} looked up",
            err=True,
        )

    asyncio.run(connect())


@folkeregister_group.command(name="stand-in", help="Serve a local stand-in of Folkeregisteret's feed.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=6070, show_default=True)
@click.option("--token", help="Ask for this bearer token.")
def folkeregister_stand_in(host: str, port: int, token: str | None) -> None:
    import time

    from hub.dev.folkeregister_standin import FolkeregisterStandIn, serving

    with serving(FolkeregisterStandIn(token=token), host, port) as url:
        click.echo(
            f"Folkeregister stand-in at {url} (POST http://{host}:{port}/standin/moves to move a person)"
        )
        while True:
            time.sleep(3600)


@click.group(
    name="maskinporten",
    short_help="Maskinporten tokens, client keys and a local stand-in.",
    help="Maskinporten access tokens and a local stand-in of Maskinporten.",
)
def maskinporten_group() -> None:
    pass


@click.group(
    name="idporten",
    short_help="A local stand-in of ID-porten for the support page's sign-in.",
    help="A local stand-in of ID-porten (OpenID Connect) for the support page's sign-in.",
)
def idporten_group() -> None:
    pass


@idporten_group.command(
    name="stand-in",
    help="Serve a local stand-in of ID-porten: discovery, JWKS, authorize (pick a test person) and token. "
    "The hub's settings to use it are printed.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=6081, show_default=True)
@click.option("--client-id", default="nir-support", show_default=True)
@click.option(
    "--client-secret-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The client's secret (client_secret_basic); without it and --client-key, a new one is made in "
    "--keys-dir.",
)
@click.option(
    "--client-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The client's public key (PEM) for private_key_jwt.",
)
@click.option(
    "--persons",
    "persons_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Test persons (TOML [[persons]] pid, name; synthetic numbers only)  [default: three built in]",
)
@click.option(
    "--keys-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/idporten"),
    show_default=True,
    help="Where the stand-in keeps its signing key (made on first start, then reused).",
)
@click.option("--issuer", help="The issuer URL  [default: http://HOST:PORT/]")
def idporten_stand_in(
    host: str,
    port: int,
    client_id: str,
    client_secret_file: Path | None,
    client_key: Path | None,
    persons_file: Path | None,
    keys_dir: Path,
    issuer: str | None,
) -> None:
    import secrets
    import time

    from hub.dev.idporten_standin import (
        BUILT_IN_PERSONS,
        IdportenStandIn,
        StandInClient,
        load_persons,
        serving,
    )
    from hub.dev.maskinporten_standin import signing_key
    from hub.maskinporten import read_public_key

    if client_key is not None:
        client = StandInClient(
            client_id, public_key=read_public_key(client_key.read_bytes(), str(client_key))
        )
        secret_note = f"NIR_OIDC_PRIVATE_KEY_FILE=<the private key of {client_key}>"
    else:
        if client_secret_file is None:
            keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            client_secret_file = keys_dir / "client-secret"
            if not client_secret_file.exists():
                client_secret_file.write_text(secrets.token_urlsafe(32))
                client_secret_file.chmod(0o600)
        client = StandInClient(client_id, secret=client_secret_file.read_text().strip())
        secret_note = f"NIR_OIDC_CLIENT_SECRET_FILE={client_secret_file}"
    stand_in = IdportenStandIn(
        signing_key(keys_dir),
        {client_id: client},
        persons=load_persons(persons_file) if persons_file is not None else BUILT_IN_PERSONS,
        issuer=issuer or f"http://{host}:{port}/",
    )
    with serving(stand_in, host, port) as served_issuer:
        click.echo(f"ID-porten stand-in: issuer {served_issuer} (key {stand_in.kid})")
        click.echo(
            f"the hub's settings: NIR_OIDC_ISSUER={served_issuer} NIR_OIDC_CLIENT_ID={client_id} {secret_note}"
        )
        click.echo("test persons (link one to a user: hub users link USERNAME --issuer ISSUER --subject -):")
        for person in stand_in.persons:
            click.echo(f"  {person.name}")
        while True:
            time.sleep(3600)


@maskinporten_group.command(name="stand-in", help="Serve a local stand-in of Maskinporten's token endpoint.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=6080, show_default=True)
@click.option(
    "--clients",
    "clients_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The registered clients (TOML; see `hub maskinporten client-keys`).",
)
@click.option(
    "--keys-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/maskinporten"),
    show_default=True,
    help="Where the stand-in keeps its signing key (made on first start, then reused).",
)
@click.option("--issuer", help="The issuer URL  [default: http://HOST:PORT/]")
@click.option(
    "--token-lifetime", type=click.IntRange(1, 86400), default=120, show_default=True, help="Seconds."
)
@click.option(
    "--default-audience",
    default="unspecified",
    show_default=True,
    help="The access token's aud when the grant names no resource.",
)
def maskinporten_stand_in(
    host: str,
    port: int,
    clients_file: Path,
    keys_dir: Path,
    issuer: str | None,
    token_lifetime: int,
    default_audience: str,
) -> None:
    import time

    from hub.dev.maskinporten_standin import MaskinportenStandIn, load_clients, serving, signing_key

    stand_in = MaskinportenStandIn(
        signing_key(keys_dir),
        load_clients(clients_file),
        issuer=issuer or f"http://{host}:{port}/",
        default_audience=default_audience,
        token_lifetime=token_lifetime,
    )
    with serving(stand_in, host, port) as served_issuer:
        click.echo(
            f"Maskinporten stand-in: issuer {served_issuer}, token endpoint http://{host}:{port}/token, "
            f"JWKS http://{host}:{port}/jwks ({len(stand_in.clients)} client(s), key {stand_in.kid})"
        )
        while True:
            time.sleep(3600)


@maskinporten_group.command(
    name="client-keys", help="Make an RSA key pair for a client and print its clients-file entry."
)
@click.argument("client_id")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for CLIENT_ID.key.pem (0600) and CLIENT_ID.pub.pem.",
)
@click.option("--org-number", required=True, help="The client's organisation number (9 digits).")
@click.option("--scope", "scopes", multiple=True, required=True, help="A scope the client may have (repeat).")
@click.option("--audience", "audiences", multiple=True, help="A resource the client may ask for (repeat).")
def maskinporten_client_keys(
    client_id: str, out: Path, org_number: str, scopes: tuple[str, ...], audiences: tuple[str, ...]
) -> None:
    from hub.dev.maskinporten_standin import client_entry, make_client_keys

    if not (len(org_number) == 9 and org_number.isascii() and org_number.isdigit()):
        raise click.BadParameter("must be 9 digits", param_hint="--org-number")
    kid, private_file, public_file = make_client_keys(out, client_id)
    click.echo(
        client_entry(client_id, org_number, kid, str(public_file), list(scopes), list(audiences)), nl=False
    )
    click.echo(
        "add the entry above to the stand-in's clients file; the hub's settings for this client:\n"
        f"  NIR_MASKINPORTEN_CLIENT_ID={client_id}\n"
        f"  NIR_MASKINPORTEN_KEY_FILE={private_file}\n"
        f"  NIR_MASKINPORTEN_KID={kid}",
        err=True,
    )


@maskinporten_group.command(
    name="check",
    help="Ask Maskinporten for a token with the NIR_MASKINPORTEN_* client (the token is not shown).",
)
@click.option("--scope", help="The scope to ask for  [default: NIR_FOLKEREGISTER_SCOPE]")
@click.option("--resource", help="The audience to ask for, if the API wants one.")
def maskinporten_check(scope: str | None, resource: str | None) -> None:
    from hub.maskinporten import MaskinportenTokens, client_from_settings

    settings = _hub().settings
    client = client_from_settings(settings, scope or settings.folkeregister_scope, resource)

    async def check() -> float:
        async with MaskinportenTokens(client) as tokens:
            await tokens.token()
            assert tokens.current is not None
            return tokens.current.expires_at - tokens.clock()

    seconds = asyncio.run(check())
    click.echo(f"granted: {client.scope} for client {client.client_id}, valid for {seconds:.0f} s")


@click.command(name="settings", help="Print the effective settings (secrets masked).")
def show_settings() -> None:
    click.echo(_hub().settings.describe())


def _faust_commands() -> click.Group:
    """Faust's command line, run on the hub's app, whose `worker` first runs `prepare_worker`.

    A copy: Faust's own group stays as Faust made it. The preparation hangs on the worker's
    callback, which click calls only once the arguments are parsed (never for `--help`).
    """
    from faust.cli.faust import cli as faust_cli

    faust_worker = faust_cli.commands["worker"]
    assert faust_worker.callback is not None
    start_worker = faust_worker.callback

    def prepared_worker(*args: Any, **kwargs: Any) -> Any:
        from hub.app import prepare_worker

        prepare_worker()
        return start_worker(*args, **kwargs)

    worker_command = copy.copy(faust_worker)
    worker_command.callback = prepared_worker
    group = copy.copy(faust_cli)
    group.commands = {**faust_cli.commands, "worker": worker_command}
    group.help = "Faust's own commands (agents, tables, send, worker, ...), run on the hub's app."
    return group


def _run_faust(args: list[str], prog_name: str) -> None:
    """Run Faust's command line with `args`, as `app.main()` does: the app is handed to it."""
    from hub.app import app

    _faust_commands().main(args=args, prog_name=prog_name, app=app)


# Everything after the command's name goes to Faust unread, `--help` included.
_TO_FAUST = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


@click.command(
    name="worker",
    context_settings=_TO_FAUST,
    short_help="Run the hub's worker (Faust's; `hub worker --help`).",
    help="Run the hub's worker: read the sources' topics, write the register, send receipts "
    "(Faust's worker; `hub worker --help` lists its options).",
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def worker(args: tuple[str, ...]) -> None:
    _run_faust(["worker", *args], "hub")


@click.command(
    name="faust",
    context_settings=_TO_FAUST,
    short_help="Faust's own commands: `hub faust --help`.",
    help="Faust's own commands (agents, tables, send, ...) on the hub's app: `hub faust --help`.",
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def faust_group(args: tuple[str, ...]) -> None:
    _run_faust(list(args), "hub faust")


class SectionedGroup(click.Group):
    """A command group whose help lists its commands under headings, in the order given."""

    def __init__(self, name: str, sections: dict[str, list[click.Command]], **kwargs: Any) -> None:
        super().__init__(name, commands=[c for commands in sections.values() for c in commands], **kwargs)
        self.sections = {title: [c.name or "" for c in commands] for title, commands in sections.items()}

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(len(name) for name in self.commands)
        for title, names in self.sections.items():
            with formatter.section(title):
                formatter.write_dl([(name, self.commands[name].get_short_help_str(limit)) for name in names])


def _install_masks() -> None:
    """Before any command: what a command prints is cleaned (`hub.domain.redaction`), and its
    masks are keyed with this installation's key, as the worker's are."""
    from hub.bootstrap import install_masks
    from hub.config import Settings

    install_masks(Settings.from_env())


cli = SectionedGroup(
    "hub",
    {
        "Run": [worker, gateway, demo],
        "Register": [db_group, backup_command, restore_command, person_group, retention_group],
        "Sources": [sources_group, schemas_group, publish, receipts, rules_group],
        "Cases": [cases_group, users_group],
        "Reports": [report],
        "Operations": [
            topics_group,
            recover_command,
            folkeregister_group,
            maskinporten_group,
            idporten_group,
            lag_exporter,
            show_settings,
            faust_group,
        ],
    },
    help="The NIR integration hub: transfers the municipalities' registrations to the register.",
    callback=_install_masks,
)
click.version_option(package_name="nir-hub", prog_name="hub", message="%(prog)s %(version)s")(cli)


def main() -> None:
    try:
        cli.main(prog_name="hub")
    except HubError as exc:
        click.echo(f"error [{exc.code}]: {exc.message}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
