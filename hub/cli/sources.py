"""The help's "Sources" section: the source registry, the Avro contract, publishing and
receipts, the rule catalogue."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import click

from hub.bootstrap import Hub
from hub.cli import common
from hub.cli.common import AS_JSON, LIMIT, echo_listing, os_user
from hub.domain.calendar import iso_utc


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
    for source in common.the_hub().registry:
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

    hub = common.the_hub()
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
    # (a lambda: `os_user` is defined further down, beside the other options that record who)
    "--by",
    default=lambda: os_user(),
    show_default="the OS user",
    help="Who decided it.",
)


def _change_source(source_id: str, change: Callable[[Hub, Any], Coroutine[Any, Any, str]]) -> None:
    """Revoke or restore a source (`hub.revocation`), and say what was done."""
    hub = common.migrated_hub()
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

    hub = common.the_hub()

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
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object per receipt, as the contract and the gateway write it.",
)
def receipts(source_id: str, follow: bool, as_json: bool) -> None:
    from hub.connectors.receipts import Receipt, ReceiptReader

    hub = common.the_hub()
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
@AS_JSON
@LIMIT
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
    echo_listing(codes, columns, as_json=as_json, limit=limit, what="codes")
