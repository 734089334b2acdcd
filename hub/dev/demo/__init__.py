"""`hub demo`: the hub's main job end to end on the embedded defaults.

Starts the local broker if none answers, runs a worker, publishes the bundled sample (synthetic
persons in two municipalities: valid events, a duplicate, two invalid ones), waits until every
event has its receipt, then runs the Folkeregister connector against a local stand-in of the
feed: the persons who became known are looked up, and two live moves follow (one of a person the
register does not know, which is passed over). It prints what happened, and the command lines
that show a person and the support page. With `--support` it then keeps the worker, and so the
support page, running until Ctrl-C, for a support user it makes, who signs in with a password or
through the demo's local ID-porten stand-in as one of its test persons. The demo keeps to its own
topic prefix, consumer group and register file, so it never mixes with a real register, and
starts each run from empty demo topics and an empty demo register. With `--disaster` it then
loses its register, and restores and recovers it (`hub.dev.demo.disaster`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import re
import secrets
import shutil
import signal
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hub.bootstrap import Hub, install_masks
from hub.config import Settings
from hub.connectors.fagsystem import FagsystemProducer
from hub.connectors.folkeregister import read_position
from hub.connectors.jsonlines import publish_lines
from hub.connectors.receipts import decode_receipt
from hub.dev.folkeregister_standin import FolkeregisterStandIn
from hub.dev.folkeregister_standin import serving as serving_feed
from hub.dev.idporten_standin import BUILT_IN_PERSONS, IdportenStandIn, StandInClient, TestPerson
from hub.dev.idporten_standin import serving as serving_idporten
from hub.dev.localrun import (
    WorkerProcess,
    free_port,
    local_admin,
    local_broker_answers,
    start_local_broker,
    stop_local_broker,
)
from hub.dev.maskinporten_standin import (
    MaskinportenStandIn,
    RegisteredClient,
    key_files,
    make_client_keys,
    serving,
    signing_key,
)
from hub.errors import ConfigurationError
from hub.kafka.admin import delete_topics_with_prefix, end_offsets, read_from
from hub.kafka.principals import prepare_broker
from hub.maskinporten import MaskinportenTokens, client_from_settings, key_id, read_private_key
from hub.pipeline.deadletter import H_OFFSET, H_PARTITION, H_TOPIC, read_headers
from hub.register.database import make_engine
from hub.register.migrate import upgrade

SAMPLE = Path(__file__).resolve().parent / "sample.jsonl"
# One demo source signs in to Kafka with a Maskinporten token (from the demo's stand-in, or the
# Maskinporten client NIR_MASKINPORTEN_* names); the other with SCRAM.
MASKINPORTEN_SOURCE = "oslo-fagsystem"
DEMO_CLIENT_ID = "demo-oslo-fagsystem"
DEMO_ORG_NUMBER = "974760673"
DEMO_MASKINPORTEN_PORT = 6080  # `hub maskinporten stand-in`'s own default
# The support page signs in through a local ID-porten stand-in, as its client DEMO_OIDC_CLIENT_ID;
# the demo's support user is linked to DEMO_SUPPORT_PERSON there (synthetic, as all of its persons).
DEMO_IDPORTEN_PORT = 6081  # `hub idporten stand-in`'s own default
DEMO_IDPORTEN_KEYS = Path("var/demo/idporten")
DEMO_OIDC_CLIENT_ID = "nir-support"
DEMO_SUPPORT_USER = "demo"
DEMO_SUPPORT_PERSON: TestPerson = BUILT_IN_PERSONS[0]
FOLKEREGISTER_SAMPLE = Path(__file__).resolve().parent / "folkeregister.jsonl"
# The sample's dates are written as if today were this day; the demo moves them to today.
SAMPLE_TODAY = dt.date(2026, 11, 1)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def demo_settings(base: Settings) -> Settings:
    # The support page over TLS as in production, with the certificate the local broker's CA
    # issued for this machine (unless one is configured).
    local_certificate = str(_local_certificate(base))
    return dataclasses.replace(
        base,
        web_tls_cert_file=base.web_tls_cert_file or local_certificate,
        web_tls_key_file=base.web_tls_key_file if base.web_tls_cert_file else local_certificate,
        topic_prefix="nir-demo",
        app_id="nir-hub-demo",
        database_url="sqlite:///var/demo/register.sqlite3",
        data_dir="var/demo/faust",
        allow_synthetic_identifiers=True,  # the sample persons have Tenor test numbers
        connector_metrics_port=0,  # the demo's connector is scraped by nobody
    )


def shift_dates(value: Any, days: int) -> Any:
    """Move every ISO date and timestamp in a JSON value by `days` days."""
    if isinstance(value, dict):
        return {k: shift_dates(v, days) for k, v in value.items()}
    if isinstance(value, list):
        return [shift_dates(v, days) for v in value]
    if isinstance(value, str) and _DATE.match(value):
        moved = dt.date.fromisoformat(value[:10]) + dt.timedelta(days=days)
        return moved.isoformat() + value[10:]
    return value


def _sample_lines(path: Path, days: int) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.dumps(shift_dates(json.loads(line), days)) for line in lines if line.strip()]


def run_demo(
    *, keep_broker: bool = False, support: bool = False, disaster: bool = False, timeout: float = 120.0
) -> int:
    settings = demo_settings(Settings.from_env())
    install_masks(settings)  # made on a fresh machine's first demo; its workers read the same file
    started_broker = False
    with contextlib.ExitStack() as stack:
        settings = stack.enter_context(demo_idporten(settings))
        print(f"ID-porten stand-in at {settings.oidc_issuer} (keys in {DEMO_IDPORTEN_KEYS})")
        if not local_broker_answers(settings):
            # Maskinporten's stand-in first: the broker reads its JWKS when it starts.
            settings = stack.enter_context(_demo_maskinporten(settings))
            print(f"no broker at {settings.kafka_bootstrap}; starting the local one (deploy/kafka/kafka.sh)")
            broker = start_local_broker(
                {
                    "NIR_KAFKA_JWKS_URL": settings.maskinporten_issuer + "jwks",
                    "NIR_KAFKA_OAUTH_ISSUER": settings.maskinporten_issuer,
                    "NIR_KAFKA_OAUTH_AUDIENCE": settings.kafka_oauth_resource,
                }
            )
            print(f"broker at {broker.bootstrap}, Maskinporten stand-in at {settings.maskinporten_issuer}")
            started_broker = True
        try:
            return _run(settings, timeout, support, disaster)
        finally:
            if started_broker and not keep_broker:
                stop_local_broker()


@contextlib.contextmanager
def _demo_maskinporten(settings: Settings) -> Iterator[Settings]:
    """A Maskinporten stand-in (keys kept in var/demo/maskinporten) with the demo fagsystem's
    client registered for Kafka; yields `settings` with that client as NIR_MASKINPORTEN_*."""
    keys = Path("var/demo/maskinporten")
    private_file = key_files(keys, DEMO_CLIENT_ID)[0]
    if not private_file.exists():
        make_client_keys(keys, DEMO_CLIENT_ID)
    public = read_private_key(private_file).public_key()
    client = RegisteredClient(
        DEMO_CLIENT_ID,
        DEMO_ORG_NUMBER,
        {key_id(public): public},
        frozenset({settings.kafka_oauth_scope, settings.gateway_scope}),
        frozenset({settings.kafka_oauth_resource, settings.gateway_audience}),
    )
    stand_in = MaskinportenStandIn(signing_key(keys), {DEMO_CLIENT_ID: client})
    with serving(stand_in, port=DEMO_MASKINPORTEN_PORT) as issuer:
        yield dataclasses.replace(
            settings,
            maskinporten_token_url=issuer + "token",
            maskinporten_issuer=issuer,
            maskinporten_client_id=DEMO_CLIENT_ID,
            maskinporten_key_file=str(private_file),
            maskinporten_kid=key_id(public),
        )


@contextlib.contextmanager
def demo_idporten(
    settings: Settings, keys: Path = DEMO_IDPORTEN_KEYS, port: int = DEMO_IDPORTEN_PORT
) -> Iterator[Settings]:
    """An ID-porten stand-in (its key and the support page's client secret kept in `keys`) with
    the support page registered as its client; yields `settings` with NIR_OIDC_* pointing at it,
    whatever they said before: the demo's register knows no other provider."""
    key = signing_key(keys)  # makes `keys` (0700) on a fresh machine's first demo
    client = StandInClient(DEMO_OIDC_CLIENT_ID, secret=_demo_secret(keys))
    stand_in = IdportenStandIn(key, {DEMO_OIDC_CLIENT_ID: client})
    with contextlib.ExitStack() as stack:
        try:
            issuer = stack.enter_context(serving_idporten(stand_in, port=port))
        except ConfigurationError:
            # The port is taken (a `hub idporten stand-in` of one's own, another demo): any port
            # will do, as the demo links its user at this run's issuer, in this run's register.
            issuer = stack.enter_context(serving_idporten(stand_in, port=0))
        yield dataclasses.replace(
            settings,
            oidc_issuer=issuer,
            oidc_client_id=DEMO_OIDC_CLIENT_ID,
            oidc_client_secret_file=str(keys / "client-secret"),
            oidc_private_key_file="",
            oidc_key_id="",
            oidc_acr_values="idporten-loa-high",
            oidc_subject_claim="pid",
            oidc_redirect_url="",  # the support page's own address, as the browser reached it
            oidc_provider_name="ID-porten",
        )


def _demo_secret(keys: Path) -> str:
    """The support page's client secret at the demo's stand-in, made on first use and kept (0600)."""
    path = keys / "client-secret"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32) + "\n", encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


def link_demo_user(hub: Hub, username: str = DEMO_SUPPORT_USER) -> None:
    """Link the demo's support user to DEMO_SUPPORT_PERSON at the demo's ID-porten stand-in
    (audited as the OS user's doing, as `hub users link` is)."""
    from hub.register.access_log import os_user
    from hub.support.oidc import link_user

    with hub.unit_of_work() as uow:
        link_user(
            uow, username, hub.settings.oidc_issuer, DEMO_SUPPORT_PERSON.pid, os_user(), hub.clock()
        )
        uow.commit()


def _with_maskinporten_source(settings: Settings) -> Settings:
    """The demo's registry: the shipped one, with MASKINPORTEN_SOURCE signing in with the
    Maskinporten client of the settings (when they name one)."""
    if not settings.maskinporten_client_id:
        return settings
    registry = Path("var/demo/sources.toml")
    registry.parent.mkdir(parents=True, exist_ok=True)
    shipped = Path(settings.sources_file).read_text(encoding="utf-8")
    table = f"[sources.{MASKINPORTEN_SOURCE}]\n"
    registry.write_text(
        shipped.replace(
            table,
            f'{table}authentication = "maskinporten"\nprincipal = "{settings.maskinporten_client_id}"\n',
        ),
        encoding="utf-8",
    )
    return dataclasses.replace(settings, sources_file=str(registry))


def _run(settings: Settings, timeout: float, support: bool, disaster: bool = False) -> int:
    settings = _with_maskinporten_source(settings)
    hub = Hub.from_settings(settings)
    admin = local_admin(settings)
    database = Path("var/demo/register.sqlite3")
    for stale in database.parent.glob(database.name + "*"):
        stale.unlink()  # each demo starts from an empty register
    upgrade(make_engine(settings.database_url))
    names = hub.names
    watched = [names.dead_letters, *(names.receipts(s.id) for s in hub.registry)]
    days = (hub.today() - SAMPLE_TODAY).days

    async def prepare() -> dict[tuple[str, int], int]:
        # Each demo starts from empty topics, as from an empty register.
        await delete_topics_with_prefix(admin.kafka, settings.topic_prefix + ".")
        # As an operator would: topics, the services' and the sources' credentials and ACLs.
        await prepare_broker(admin, hub.registry)
        return await end_offsets(admin.kafka, watched)

    start = asyncio.run(prepare())
    worker = WorkerProcess(settings, Path("var/demo/worker.log"), log_level="warn").start()
    print(f"worker started (pid {worker.process.pid}, log var/demo/worker.log)")
    gateway = _start_gateway(settings) if _over_the_gateway(hub) else None
    try:
        sent = asyncio.run(_publish(settings, days, gateway))
        records = asyncio.run(
            read_from(
                admin.kafka,
                start,
                until=lambda rs: not worker.running or len(_receipts_for(hub, rs, sent)) == len(sent),
                timeout=timeout,
            )
        )
        if not worker.running:
            print("the worker stopped unexpectedly; see var/demo/worker.log")
            return 1
        _follow_folkeregister(settings, days, timeout)
        done = _summarise(hub, records, sent)
        if disaster and done == 0:
            from hub.dev.demo.disaster import run_disaster

            def publish(path: Path) -> set[tuple[str, int, int]]:
                return asyncio.run(_publish(settings, days, None, path))

            done = run_disaster(hub, worker, start, publish, _origin_of, timeout)
        if support and done == 0:
            _serve_support_page(hub, worker)
        return done
    finally:
        if gateway is not None:  # both asked at once, so their stops overlap
            gateway.terminate()
        worker.terminate()
        if gateway is not None:
            gateway.stop()
        worker.stop()


def _over_the_gateway(hub: Hub) -> bool:
    """Part of the sample goes through the HTTPS gateway when the Maskinporten source is one."""
    source = hub.registry.get(MASKINPORTEN_SOURCE)
    return source is not None and source.authentication == "maskinporten"


def _local_certificate(settings: Settings) -> Path:
    """The certificate the local broker's CA issued for this machine's web servers (127.0.0.1,
    localhost; key and chain in one file, deploy/kafka/kafka.sh), beside that CA."""
    web = Path(settings.kafka_ca_file).with_name("web.pem")
    # A broker started by an older kafka.sh, and still running, has only its own certificate;
    # its next start issues web.pem, so the broker's key is not lent out for long.
    return web if web.exists() else web.with_name("broker.pem")


def _gateway_settings(settings: Settings) -> Settings:
    """The demo's gateway: on a free local port, over TLS with the local certificate, trusting
    the Maskinporten the demo's source gets its tokens from."""
    certificate = str(_local_certificate(settings))
    return dataclasses.replace(
        settings,
        gateway_host="127.0.0.1",
        gateway_port=free_port(),
        gateway_metrics_port=0,
        gateway_jwks_url=settings.maskinporten_issuer + "jwks",
        gateway_tls_cert_file=certificate,
        gateway_tls_key_file=certificate,
    )


def _gateway_url(settings: Settings) -> str:
    return f"https://{settings.gateway_host}:{settings.gateway_port}"


def _trusting_the_local_ca(settings: Settings) -> ssl.SSLContext:
    """A client's TLS context that trusts the local broker's CA (which issued the gateway's)."""
    return ssl.create_default_context(cafile=settings.kafka_ca_file)


def _start_gateway(settings: Settings) -> WorkerProcess:
    settings = _gateway_settings(settings)
    gateway = WorkerProcess(settings, Path("var/demo/gateway.log"), command=("gateway",)).start()
    url = _gateway_url(settings)
    context = _trusting_the_local_ca(settings)
    _wait(lambda: not gateway.running or _answers(url + "/health/ready", context), 60, "the gateway")
    print(f"gateway started at {url} (pid {gateway.process.pid}, log var/demo/gateway.log)")
    return gateway


def _answers(url: str, context: ssl.SSLContext) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            return bool(response.status == 200)
    except OSError:
        return False


async def _post_through_gateway(
    settings: Settings, url: str, lines: list[tuple[int, str]]
) -> set[tuple[str, int, int]]:
    """POST the lines as one batch with a Maskinporten token for the gateway, as a fagsystem
    that does not speak Kafka would; returns where the accepted ones went."""
    client = client_from_settings(settings, settings.gateway_scope, settings.gateway_audience)
    async with MaskinportenTokens(client) as tokens:
        token = await tokens.token()
    body = json.dumps({"events": [json.loads(line) for _, line in lines]}).encode()
    request = urllib.request.Request(
        url + "/v1/events",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    answer = await asyncio.to_thread(_open, request, _trusting_the_local_ca(settings))
    sent = set()
    for result in answer.get("results", []):
        where = f"{result.get('topic')} [partition {result.get('partition')}, offset {result.get('offset')}]"
        print(f"  {result['eventId']}: {result['status']} by the gateway, sent to {where}")
        if result["status"] == "accepted":
            sent.add((result["topic"], result["partition"], result["offset"]))
    return sent


def _open(request: urllib.request.Request, context: ssl.SSLContext) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as error:
        return dict(json.loads(error.read()))


def _origin_of(hub: Hub, record: Any) -> tuple[str, int, int]:
    """Which published message a receipt or dead letter is about."""
    if record.topic == hub.names.dead_letters:
        headers = read_headers(record.headers)
        return headers[H_TOPIC], int(headers[H_PARTITION]), int(headers[H_OFFSET])
    receipt = decode_receipt(hub.catalog, record.value)
    return receipt.original_topic, receipt.original_partition, receipt.original_offset


def _receipts_for(hub: Hub, records: list[Any], sent: set[tuple[str, int, int]]) -> list[Any]:
    """The receipts among `records` that answer the messages this demo sent (an earlier,
    interrupted demo may have left messages that the worker answers too)."""
    return [r for r in records if r.topic != hub.names.dead_letters and _origin_of(hub, r) in sent]


async def _publish(
    settings: Settings, days: int, gateway: WorkerProcess | None, sample: Path = SAMPLE
) -> set[tuple[str, int, int]]:
    """Publish the sample; returns where each registration event was written. With a gateway,
    the Maskinporten source's training events go through it over HTTPS, the rest over Kafka."""
    registry = Hub.from_settings(settings).registry
    lines = _sample_lines(sample, days)
    numbered = list(enumerate(lines, start=1))
    over_http = [
        (n, line)
        for n, line in numbered
        if gateway is not None
        and json.loads(line).get("sourceSystem") == MASKINPORTEN_SOURCE
        and json.loads(line).get("eventType", "").startswith("TRAINING_")
    ]
    for source in registry:
        how = "a Maskinporten access token" if source.authentication == "maskinporten" else "SCRAM"
        print(f"  {source.id} signs in to Kafka as {source.user} with {how}")

    def producer_for(source_id: str) -> FagsystemProducer:
        # Each source sends as its own principal: it may write only its own topic.
        source = registry.sources[source_id]
        if source.authentication == "maskinporten":
            kafka = dataclasses.replace(settings, kafka_sasl_mechanism="OAUTHBEARER").kafka
        else:
            kafka = settings.as_kafka_user(source.user).kafka
        return FagsystemProducer(kafka, source_id, topic_prefix=settings.topic_prefix)

    over_kafka = [line for n, line in numbered if (n, line) not in over_http]
    if over_http:
        print(f"  over Kafka ({len(over_kafka)} lines of the sample):")
    report = await publish_lines(over_kafka, producer_for, on_line=lambda r: print("  " + r.describe()))
    sent = {(r.sent.topic, r.sent.partition, r.sent.offset) for r in report.lines if r.sent}
    if gateway is not None and over_http:
        url = _gateway_url(gateway.settings)
        print(
            f"  {MASKINPORTEN_SOURCE} posts {len(over_http)} events to the gateway with a Maskinporten token"
        )
        sent |= await _post_through_gateway(settings, url, over_http)
    return sent


def _follow_folkeregister(settings: Settings, days: int, timeout: float) -> None:
    """Run the connector against the stand-in: the known persons' addresses are looked up, then
    the live moves come through the feed."""
    moves = [json.loads(line) for line in _sample_lines(FOLKEREGISTER_SAMPLE, days)]
    stand_in = FolkeregisterStandIn()

    def move(m: dict[str, Any]) -> int:
        return stand_in.move(
            m["nationalId"],
            m["municipality"],
            dt.date.fromisoformat(m["movedOn"]),
            street=m["street"],
            postal_code=m["postalCode"],
            postal_place=m["postalPlace"],
        )

    for m in moves:
        if not m["live"]:
            move(m)
    with serving_feed(stand_in) as url:
        connector_settings = dataclasses.replace(
            settings.as_kafka_user(settings.kafka_connector_user),
            folkeregister_url=url,
            folkeregister_start="latest",
        )
        connector = WorkerProcess.connector(connector_settings, Path("var/demo/connector.log")).start()
        print(f"Folkeregister connector started (pid {connector.process.pid}, log var/demo/connector.log)")
        try:
            hub = Hub.from_settings(settings)
            _wait(lambda: _position_stored(settings), timeout, "the connector to start")
            for m in moves:
                if m["live"]:
                    print(f"  feed item {move(m)}: a person moved")
            # Two persons looked up, and one live move of a known person.
            _wait(lambda: _address_count(hub) >= 3, timeout, "the addresses")
        finally:
            connector.stop()


def _position_stored(settings: Settings) -> bool:
    names = Hub.from_settings(settings).names
    return asyncio.run(read_position(local_admin(settings).kafka, names.connector_position)) is not None


def _address_count(hub: Hub) -> int:
    with hub.unit_of_work() as uow:
        return uow.register.sizes()["addresses"]


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            print(f"timed out waiting for {what}")
            return
        time.sleep(0.2)


def _summarise(hub: Hub, records: list[Any], sent: set[tuple[str, int, int]]) -> int:
    outcomes: Counter[str] = Counter(
        decode_receipt(hub.catalog, r.value).outcome for r in _receipts_for(hub, records, sent)
    )
    dead_letters = sum(1 for r in records if r.topic == hub.names.dead_letters and _origin_of(hub, r) in sent)
    with hub.unit_of_work() as uow:
        counts = uow.register.sizes()
    print()
    print("summary")
    print(f"  accepted       {outcomes['ACCEPTED']}")
    print(f"  duplicates     {outcomes['DUPLICATE']}")
    print(f"  rejected       {outcomes['REJECTED']}")
    print(f"  dead-lettered  {dead_letters}")
    print(
        f"  register       {counts['persons']} persons, {counts['registrations']} registrations, "
        f"{counts['addresses']} addresses"
    )
    hub_command = hub_command_line()
    print()
    print(
        # The demo's person is made up; a real number goes on standard input from a file, never
        # in a command line that stays in the shell's history.
        f"Look at a person:   echo 201812345604 | NIR_DATABASE_URL={hub.settings.database_url} "
        f"{hub_command} person show --reason 'a look at the demo'"
    )
    print(f"The support page:   {hub_command} demo --support")
    received = sum(outcomes.values())
    if received < len(sent):
        print(f"only {received} of {len(sent)} receipts arrived in time; see var/demo/worker.log")
        return 1
    return 0


def hub_command_line() -> str:
    """How to run this `hub` from here: `hub` if the shell finds this one, else its path
    (relative to the working directory when under it, as `.venv/bin/hub` after `make demo`)."""
    script = Path(sys.executable).parent / "hub"
    if not script.exists():
        return f"{sys.executable} -m hub.cli"
    if shutil.which("hub") == str(script):
        return "hub"
    return str(script.relative_to(Path.cwd())) if script.is_relative_to(Path.cwd()) else str(script)


def _serve_support_page(hub: Hub, worker: WorkerProcess) -> None:
    """Keep the demo's worker serving the support page until Ctrl-C, for a support user made
    with a new password (the demo register is made anew each run)."""
    from hub.support.access import Role, create_user

    password = secrets.token_urlsafe(12)
    with hub.unit_of_work() as uow:
        create_user(uow, DEMO_SUPPORT_USER, password, Role.IMDI_SUPPORT, None, hub.clock())
        uow.commit()
    link_demo_user(hub)
    scheme = "https" if hub.settings.web_tls_cert_file else "http"
    print()
    print(f"Support page:  {scheme}://{hub.settings.web_host}:{hub.settings.web_port}/support/")
    print(f"  sign in as {DEMO_SUPPORT_USER}, password {password}; Ctrl-C ends the demo")
    # The person's name only: the stand-in's numbers are synthetic, but the demo prints none.
    print(
        f"  or sign in with {hub.settings.oidc_provider_name}: pick {DEMO_SUPPORT_PERSON.name} at the stand-in "
        f"({hub.settings.oidc_issuer}), linked to {DEMO_SUPPORT_USER}"
    )
    if scheme == "https":
        print(
            f"  its certificate is from the local CA {hub.settings.kafka_ca_file}: trust it, or accept it once"
        )
    # Ctrl-C must end the demo even when it was started with SIGINT ignored (a job started in
    # the background of a script inherits that, and Python then never raises KeyboardInterrupt).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        while worker.running:
            time.sleep(0.5)
        print("the worker stopped; see var/demo/worker.log")
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, previous)
