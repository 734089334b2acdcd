"""The help's "Operations" section: topics, recovery, the Folkeregister connector, the
Maskinporten and ID-porten stand-ins and checks, the effective settings."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import click

from hub.cli import common
from hub.cli.services import run_service
from hub.config import Settings


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

    hub = common.migrated_hub()
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

    hub = common.the_hub()
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


@click.group(name="folkeregister", help="The Folkeregister connector and its local stand-in.")
def folkeregister_group() -> None:
    pass


@folkeregister_group.command(
    name="connect", help="Follow Folkeregisteret's feed and publish known persons' address changes."
)
def folkeregister_connect() -> None:
    from hub.connectors.folkeregister import run_connector
    from hub.kafka.admin import ensure_topics
    from hub.kafka.topics import folkeregister_topics

    hub = common.migrated_hub()

    async def connect(settings: Settings, stop: asyncio.Event) -> None:
        if settings.connector_metrics_port:
            from prometheus_client import start_http_server

            start_http_server(settings.connector_metrics_port, addr=settings.web_host)
        await ensure_topics(settings.kafka, folkeregister_topics(settings), settings.replication_factor)
        status = await run_connector(hub, stop)
        click.echo(
            f"stopped at sequence number {status.position}: {status.published} published, "
            f"{status.passed_over} passed over, {status.looked_up} looked up",
            err=True,
        )

    run_service(
        connect,
        lambda s: f"Folkeregister connector on {s.folkeregister_url} as {s.kafka_username}",
        hub.settings,
    )


@click.command(
    name="lag-exporter",
    help="Serve the consumer group's lag as the broker reports it (committed against end offsets) "
    "at /metrics on NIR_METRICS_HOST:NIR_LAG_EXPORTER_PORT, as the monitoring principal.",
)
def lag_exporter() -> None:
    from hub.ops.lag_exporter import serve

    run_service(
        serve,
        lambda s: f"lag of group {s.app_id} as {s.kafka_username}, on {s.metrics_host}:{s.lag_exporter_port}",
    )


@folkeregister_group.command(name="stand-in", help="Serve a local stand-in of Folkeregisteret's feed.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=6070, show_default=True)
@click.option("--token", help="Ask for this bearer token.")
def folkeregister_stand_in(host: str, port: int, token: str | None) -> None:

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

    settings = common.the_hub().settings
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
    click.echo(common.the_hub().settings.describe())
