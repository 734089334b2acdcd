"""Fixtures for the real services: one Kafka broker per test session (deploy/kafka/kafka.sh), one
throwaway PostgreSQL cluster per session (deploy/postgres/postgres.sh), SQLite files per test,
and a Maskinporten stand-in per test that asks for one.

A service that cannot start fails the tests that need it; nothing is skipped. Set
NIR_TEST_KAFKA_BOOTSTRAP to use a broker that is already running instead.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from hub.bootstrap import Hub, install_masks
from hub.config import Settings
from hub.dev.localrun import (
    LocalBroker,
    WorkerProcess,
    free_port,
    isolated_settings,
    local_admin,
    start_local_broker,
    stop_local_broker,
)
from hub.dev.maskinporten_standin import MaskinportenStandIn
from hub.dev.maskinporten_standin import serving as maskinporten_serving
from hub.errors import ConfigurationError
from hub.kafka.connection import KafkaConnection
from hub.register.database import make_engine
from hub.register.migrate import upgrade
from hub.schemas.codec import catalog
from hub.sources import SourceRegistry
from tests.maskinporten import KAFKA_AUDIENCE, KeyedClient, keyed_client, rsa_key

# The Maskinporten client id of the fagsystem the Kafka tests authenticate with tokens (a UUID,
# as Maskinporten's are).
FAGSYSTEM_CLIENT_ID = "5f1c9a52-7d0e-4c1b-9b6e-2f4f3a1d8e07"

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_SCRIPT = ROOT / "deploy" / "postgres" / "postgres.sh"


@pytest.fixture(autouse=True, scope="session")
def _masks_are_keyed() -> None:
    """The tests' processes mask as the hub's do: with this machine's mask key, made on the first
    start (`hub.bootstrap.install_masks`), as the workers the tests start read it."""
    install_masks(Settings())


@pytest.fixture(autouse=True)
def _no_process_outlives_its_test(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every worker or connector a test starts is stopped when the test ends, however it ends:
    a process left behind would work on against a vanished broker, and log, for ever."""
    started: list[WorkerProcess] = []
    start = WorkerProcess.start

    def tracked(process: WorkerProcess) -> WorkerProcess:
        started.append(process)
        return start(process)

    monkeypatch.setattr(WorkerProcess, "start", tracked)
    yield
    for process in started:
        if process.running:
            process.stop(timeout=15)


@pytest.fixture(scope="session")
def broker_maskinporten(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MaskinportenService]:
    """The Maskinporten stand-in whose tokens the test broker accepts (it reads the stand-in's
    JWKS when it starts), with one fagsystem client registered for Kafka."""
    client = keyed_client(tmp_path_factory.mktemp("maskinporten"), client_id=FAGSYSTEM_CLIENT_ID)
    stand_in = MaskinportenStandIn(rsa_key(8), {client.client_id: client.registration()})
    with maskinporten_serving(stand_in) as issuer:
        yield MaskinportenService(stand_in, issuer, client)


@pytest.fixture(scope="session")
def kafka_broker(broker_maskinporten: MaskinportenService) -> Iterator[LocalBroker]:
    """The secured test broker (TLS, SASL with SCRAM and Maskinporten tokens, ACLs), as
    deploy/kafka/kafka.sh starts it."""
    existing = os.environ.get("NIR_TEST_KAFKA_BOOTSTRAP")
    if existing:
        yield LocalBroker(existing, Path(os.environ["NIR_TEST_KAFKA_DATA_DIR"]))
        return
    data_dir = tempfile.mkdtemp(prefix="nir-kafka-")
    env = {
        "NIR_KAFKA_PORT": str(free_port(pair=True)),
        "NIR_KAFKA_DATA_DIR": data_dir,
        "NIR_KAFKA_JWKS_URL": broker_maskinporten.issuer + "jwks",
        "NIR_KAFKA_OAUTH_ISSUER": broker_maskinporten.issuer,
        "NIR_KAFKA_OAUTH_AUDIENCE": KAFKA_AUDIENCE,
    }
    try:
        broker = start_local_broker(env)
    except ConfigurationError as exc:
        pytest.fail(f"the test broker did not start: {exc}")
    yield broker
    stop_local_broker(env)
    shutil.rmtree(data_dir, ignore_errors=True)


@dataclasses.dataclass(frozen=True)
class PostgresServer:
    url: str
    directory: str
    port: int

    def create_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=nir dbname=postgres", autocommit=True
        ) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def run(self, command: str) -> None:
        args = [str(self.directory)] + ([str(self.port)] if command == "start" else [])
        subprocess.run(["bash", str(POSTGRES_SCRIPT), command, *args], check=True, capture_output=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    directory = tempfile.mkdtemp(prefix="nir-pg-")
    port = free_port()
    result = subprocess.run(
        ["bash", str(POSTGRES_SCRIPT), "start", directory, str(port)], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.fail(f"the test PostgreSQL did not start:\n{result.stderr}")
    server = PostgresServer(result.stdout.strip(), directory, port)
    yield server
    server.run("stop")
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated register on each database the hub supports."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/register.sqlite3"
    else:
        url = request.getfixturevalue("postgres_server").create_database()
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/register.sqlite3"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


def pipeline_hub(database_url: str) -> Hub:
    """A hub for running flows in the test's own process: no broker, quick retries."""
    settings = dataclasses.replace(
        Settings(),
        database_url=database_url,
        allow_synthetic_identifiers=True,
        retry_initial_seconds=0.01,
        retry_max_seconds=0.05,
    )
    return Hub(settings=settings, registry=SourceRegistry.load(settings.sources_file), catalog=catalog())


def admin_kafka(settings: Settings) -> KafkaConnection:
    """The local broker's admin (a super user): for tests that look at or prepare topics."""
    return local_admin(settings).kafka


def make_settings(kafka_broker: LocalBroker, database_url: str, tmp_path: Path) -> Settings:
    """Settings isolated from every other test: own topics, consumer group and web port; the
    worker's principal."""
    return isolated_settings(
        kafka_broker,
        database_url,
        tmp_path,
        label="t",
        registration_partitions=3,
        address_partitions=2,
        retry_initial_seconds=0.1,
        retry_max_seconds=1.0,
        commit_interval_seconds=0.5,
        session_timeout_seconds=10.0,
    )


@pytest.fixture(scope="session")
def kafka_admin(kafka_broker: LocalBroker) -> KafkaConnection:
    """The test broker's admin connection (a super user)."""
    return admin_kafka(kafka_broker.settings())


@dataclasses.dataclass(frozen=True)
class MaskinportenService:
    """A Maskinporten stand-in served on a free port, with one registered client."""

    stand_in: MaskinportenStandIn
    issuer: str
    client: KeyedClient

    @property
    def token_url(self) -> str:
        return self.issuer + "token"

    def client_settings(self, base: Settings, **changes: Any) -> Settings:
        """`base` with this stand-in's client as the hub's Maskinporten client (NIR_MASKINPORTEN_*)."""
        return dataclasses.replace(
            base,
            maskinporten_token_url=self.token_url,
            maskinporten_issuer=self.issuer,
            maskinporten_client_id=self.client.client_id,
            maskinporten_key_file=str(self.client.key_file),
            maskinporten_kid=self.client.kid,
            **changes,
        )


@pytest.fixture
def maskinporten(tmp_path: Path) -> Iterator[MaskinportenService]:
    client = keyed_client(tmp_path / "maskinporten-client")
    stand_in = MaskinportenStandIn(rsa_key(9), {client.client_id: client.registration()})
    with maskinporten_serving(stand_in) as issuer:
        yield MaskinportenService(stand_in, issuer, client)
