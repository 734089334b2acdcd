"""The three-broker variant of the compose stack (deploy/compose.cluster.yml, issue 31), checked
as compose would run it, and its brokers run for real on this machine.

No Docker engine runs here. `merged()` merges the override into docker-compose.yml by the rules
of the Compose specification's merge ("Merge and override"), those these two files use:
mappings merge key by key, the later file winning a scalar; `command`, `entrypoint` and
`healthcheck.test` are replaced, not appended; `volumes` and `secrets` merge by their target
in the container (so the override's `kafka-1-data:/var/lib/kafka/data` replaces the base's
`kafka-data` there); other sequences are appended. When written, its result was compared with
what compose-go v2.9.0 (the loader `docker compose` itself uses) made of the same two files:
the same commands, environments, healthchecks, depends_on, volumes and secrets.

The static checks: every broker a distinct node of one cluster with the same voters, the hub's
services bootstrapping from all of them with replication factor 3, and only the brokers holding
their passwords and key, the CA's key held by the one-shot kafka-pki alone. The run: `kafka.sh
pki` and three `kafka.sh run --node I`, each with its compose service's environment (the hosts
made 127.0.0.1 with a port each, the volumes directories of a temporary one), form one cluster
that takes a topic on three replicas.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from hub.config import Settings
from hub.dev.localrun import KAFKA_SCRIPT, free_port
from tests.integration.test_deployment import COMPOSE, OPERATOR, ROOT, interpolated

OVERRIDE_FILE = ROOT / "deploy" / "compose.cluster.yml"
OVERRIDE: dict[str, Any] = yaml.safe_load(OVERRIDE_FILE.read_text())

# Compose's merge: these are replaced whole; these sequences are merged by their target.
REPLACED = {("command",), ("entrypoint",), ("healthcheck", "test")}
BY_TARGET = {"volumes", "secrets"}


def _target(entry: Any, key: str) -> str:
    if isinstance(entry, dict):
        return str(entry.get("target") or entry["source"])
    if key == "secrets":  # the short syntax: the secret's name, mounted at /run/secrets/<name>
        return f"/run/secrets/{entry}"
    return str(entry).split(":")[1]


def _merge(base: Any, override: Any, path: tuple[str, ...]) -> Any:
    within_service = path[2:] if path[:1] == ("services",) else ()
    if within_service in REPLACED:
        return override
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _merge(base[key], value, (*path, key)) if key in base else value
        return merged
    if isinstance(base, list) and isinstance(override, list):
        if len(within_service) == 1 and within_service[0] in BY_TARGET:
            by_target = {_target(entry, path[-1]): entry for entry in base}
            by_target |= {_target(entry, path[-1]): entry for entry in override}
            return list(by_target.values())
        return base + [entry for entry in override if entry not in base]
    return override


def merged() -> dict[str, Any]:
    """docker-compose.yml with deploy/compose.cluster.yml over it, as `docker compose -f
    docker-compose.yml -f deploy/compose.cluster.yml` reads them."""
    result: dict[str, Any] = _merge(COMPOSE, OVERRIDE, ())
    return result


CLUSTER = merged()
SERVICES: dict[str, Any] = CLUSTER["services"]


def _broker_command(service: str) -> list[str] | None:
    command = SERVICES[service].get("command") or []
    return command if command[:3] == ["bash", "/opt/nir/kafka.sh", "run"] else None


BROKERS = [name for name in SERVICES if _broker_command(name)]
HUB_SERVICES = [name for name, s in SERVICES.items() if s.get("image") == "nir-hub:local"]
KAFKA_CLIENTS = [
    name for name in HUB_SERVICES if "NIR_KAFKA_BOOTSTRAP" in (SERVICES[name].get("environment") or {})
]


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def _node(service: str) -> int:
    command = _broker_command(service)
    assert command is not None
    return int(_option(command, "--node"))


def _environment(service: str) -> dict[str, str]:
    return {k: interpolated(str(v)) for k, v in (SERVICES[service].get("environment") or {}).items()}


def _mounts(service: str) -> dict[str, str]:
    """Named volume → how it is mounted (`volume:target[:ro]`)."""
    return {
        str(v).split(":")[0]: str(v)
        for v in SERVICES[service].get("volumes", [])
        if str(v).split(":")[0] in CLUSTER["volumes"]
    }


def _holders(thing: str) -> set[str]:
    """The services that mount the named volume or compose secret `thing`."""
    return {
        name
        for name, service in SERVICES.items()
        if thing in _mounts(name) or thing in {s["source"] for s in service.get("secrets", [])}
    }


def test_the_cluster_has_three_brokers_each_a_distinct_node_of_the_same_three() -> None:
    assert BROKERS == ["kafka", "kafka-2", "kafka-3"]
    assert sorted(_node(name) for name in BROKERS) == [1, 2, 3]
    for name in BROKERS:
        command = _broker_command(name)
        assert command is not None and _option(command, "--brokers") == "3"
    # Every other service of the base is still there, as the base has it where the cluster
    # changes nothing.
    assert set(COMPOSE["services"]) < set(SERVICES)
    assert SERVICES["postgres"] == COMPOSE["services"]["postgres"]


def test_every_broker_names_the_same_nodes_and_node_i_is_the_service_at_the_ith_address() -> None:
    """The voters (controller.quorum.voters) and advertised listeners are made from
    NIR_KAFKA_NODES: the same list on every broker, and on the one-shot that names them in the
    certificate, or the nodes would not find each other or their names would not be trusted."""
    lists = {name: _environment(name)["NIR_KAFKA_NODES"] for name in [*BROKERS, "kafka-pki"]}
    assert len(set(lists.values())) == 1, lists
    addresses = lists["kafka"].split(",")
    assert len(addresses) == 3
    for name in BROKERS:
        # Node I advertises the I-th address: it must be this service's host name on the
        # compose network, on the port it listens on.
        host, port = addresses[_node(name) - 1].split(":")
        assert (host, port) == (name, _environment(name)["NIR_KAFKA_PORT"])
        assert _environment(name)["NIR_KAFKA_PKI_DIR"] == _environment("kafka-pki")["NIR_KAFKA_PKI_DIR"]
        # The single broker's data is a cluster of one: each node has a volume of its own.
        data = _environment(name)["NIR_KAFKA_DATA_DIR"]
        [volume] = [v for v, mount in _mounts(name).items() if mount.split(":")[1] == data]
        assert _holders(volume) == {name} and volume != "kafka-data"


@pytest.mark.parametrize("service", KAFKA_CLIENTS)
def test_every_hub_service_bootstraps_from_every_broker_and_makes_three_replicas(service: str) -> None:
    settings = Settings.from_env(_environment(service))
    brokers = {f"{name}:{_environment(name)['NIR_KAFKA_PORT']}" for name in BROKERS}
    assert set(settings.kafka_bootstrap.split(",")) == brokers
    assert settings.replication_factor == 3
    assert settings.kafka_ca_file == f"{_environment('kafka')['NIR_KAFKA_CREDENTIALS_DIR']}/tls/ca.pem"


def test_every_service_that_talks_to_kafka_is_told_of_the_cluster() -> None:
    # The stand-ins talk to no broker; every other hub service does.
    assert set(HUB_SERVICES) - set(KAFKA_CLIENTS) == {"maskinporten-stand-in", "folkeregister-stand-in"}


def test_only_the_brokers_hold_the_brokers_password_and_key_and_only_kafka_pki_the_cas_key() -> None:
    assert _holders("nir-broker") == set(BROKERS)
    assert _holders("nir-admin") == {*BROKERS, "kafka-access"}
    # The brokers' certificate and key, the CA certificate, the cluster id: brokers (read-only)
    # and the one-shot that made them.
    assert _holders("kafka-cluster-pki") == {*BROKERS, "kafka-pki"}
    for name in BROKERS:
        assert _mounts(name)["kafka-cluster-pki"].endswith(":ro")
        assert _mounts(name)["kafka-cluster-pki"].split(":")[1] == _environment(name)["NIR_KAFKA_PKI_DIR"]
    # The CA's key: kafka-pki's data directory, mounted by it alone; it is given no password.
    assert _holders("kafka-cluster-ca") == {"kafka-pki"}
    assert (
        _mounts("kafka-pki")["kafka-cluster-ca"].split(":")[1]
        == _environment("kafka-pki")["NIR_KAFKA_DATA_DIR"]
    )
    assert not SERVICES["kafka-pki"].get("secrets")
    # The hub's services see the CA certificate, read-only, and nothing else of the brokers'.
    for name in HUB_SERVICES:
        assert not set(_mounts(name)) & {
            "kafka-cluster-pki",
            "kafka-cluster-ca",
            "kafka-1-data",
            "kafka-2-data",
            "kafka-3-data",
        }
        if "kafka-ca" in _mounts(name):
            assert _mounts(name)["kafka-ca"].endswith(":ro"), name


def test_the_brokers_start_after_kafka_pki_and_the_hub_after_every_broker_is_healthy() -> None:
    assert SERVICES["kafka-pki"]["command"] == ["bash", "/opt/nir/kafka.sh", "pki", "--brokers", "3"]
    for name in BROKERS:
        assert SERVICES[name]["depends_on"] == {"kafka-pki": {"condition": "service_completed_successfully"}}
        # Each broker's healthcheck asks about its own node.
        [kind, script] = SERVICES[name]["healthcheck"]["test"]
        assert kind == "CMD-SHELL" and shlex.split(script) == [
            "bash",
            "/opt/nir/kafka.sh",
            "status",
            "--node",
            str(_node(name)),
        ]
    assert SERVICES["kafka-access"]["depends_on"] == {
        name: {"condition": "service_healthy"} for name in BROKERS
    }
    # The rest wait for kafka-access, as in the base.
    for name in KAFKA_CLIENTS:
        if name not in ("kafka-access", "migrate"):
            assert SERVICES[name]["depends_on"]["kafka-access"] == {
                "condition": "service_completed_successfully"
            }


def test_the_brokers_image_has_the_pki_mount_point_for_its_user() -> None:
    """Docker gives a new named volume the owner of the directory it is mounted on: the one-shot,
    run as the image's user, must be able to write there."""
    dockerfile = (ROOT / "deploy" / "kafka" / "Dockerfile").read_text()
    pki = _environment("kafka-pki")["NIR_KAFKA_PKI_DIR"]
    assert re.search(rf"mkdir -p [^&]*{re.escape(pki)}[^&]*&& chown -R appuser /run/nir/kafka", dockerfile)


# The run: the compose services' environments on this machine.


def _local(service: str, root: Path, addresses: list[str]) -> dict[str, str]:
    """Service `service`'s environment with the hosts made 127.0.0.1 (a port each) and each
    named volume or secrets directory a directory under `root`."""
    environment = _environment(service)
    mounted = {str(v).split(":")[1]: str(v).split(":")[0] for v in SERVICES[service].get("volumes", [])}
    env = {**os.environ}
    env.pop("NIR_KAFKA_JWKS_URL", None)
    env.pop("NIR_KAFKA_HOME", None)  # the official image's Kafka; here, Maven's
    for key, value in environment.items():
        if key == "NIR_KAFKA_HOME":
            continue
        if value in mounted:
            value = str(root / mounted[value])
        elif key == "NIR_KAFKA_CREDENTIALS_DIR":  # the compose secrets' directory and kafka-ca
            value = str(root / f"{service}-credentials")
        elif key == "NIR_KAFKA_NODES":
            value = ",".join(addresses)
        env[key] = value
    return env


@pytest.fixture
def nodes(
    tmp_path: Path,
) -> Iterator[tuple[list[str], dict[str, dict[str, str]], dict[str, subprocess.Popen[bytes]]]]:
    port = free_port(run=6)
    addresses = [f"127.0.0.1:{port + 2 * i}" for i in range(3)]
    secrets = tmp_path / "secrets"
    subprocess.run(
        ["bash", str(KAFKA_SCRIPT), "compose-secrets", str(secrets)], check=True, capture_output=True
    )
    made = subprocess.run(
        ["bash", str(KAFKA_SCRIPT), *SERVICES["kafka-pki"]["command"][2:]],
        env=_local("kafka-pki", tmp_path, addresses),
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    environments, running = {}, {}
    for name in BROKERS:
        env = environments[name] = _local(name, tmp_path, addresses)
        # Its compose secrets, as compose mounts them.
        own = Path(env["NIR_KAFKA_CREDENTIALS_DIR"]) / "secrets"
        own.mkdir(parents=True)
        for secret in SERVICES[name]["secrets"]:
            file = interpolated(
                CLUSTER["secrets"][secret["source"]]["file"], OPERATOR | {"NIR_SECRETS_DIR": str(secrets)}
            )
            (own / Path(secret["target"]).name).write_bytes(Path(file).read_bytes())
        command = _broker_command(name)
        assert command is not None
        log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - the process writes it until killed
        running[name] = subprocess.Popen(
            ["bash", str(KAFKA_SCRIPT), *command[2:]], env=env, stdout=log, stderr=log
        )
    try:
        yield addresses, environments, running
    finally:
        for process in running.values():
            process.send_signal(signal.SIGTERM)
        for process in running.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()  # the last node of a quorum waits for the others to shut down
                process.wait()


def _healthy(name: str, env: dict[str, str]) -> bool:
    [_, script] = SERVICES[name]["healthcheck"]["test"]
    return (
        subprocess.run(
            ["bash", str(KAFKA_SCRIPT), *shlex.split(script)[2:]], env=env, capture_output=True
        ).returncode
        == 0
    )


def test_kafka_pki_and_three_brokers_run_with_their_compose_environments_form_one_cluster(
    nodes: tuple[list[str], dict[str, dict[str, str]], dict[str, subprocess.Popen[bytes]]],
) -> None:
    addresses, environments, running = nodes
    deadline = time.monotonic() + 150
    while not all(_healthy(name, env) for name, env in environments.items()):
        assert all(p.poll() is None for p in running.values()), "a broker exited"
        assert time.monotonic() < deadline, "the brokers' healthchecks did not pass"
        time.sleep(1)
    properties = {}
    for name, env in environments.items():
        text = (Path(env["NIR_KAFKA_DATA_DIR"]) / f"node-{_node(name)}" / "server.properties").read_text()
        properties[name] = dict(
            line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")
        )
    assert sorted(p["node.id"] for p in properties.values()) == ["1", "2", "3"]
    assert len({p["controller.quorum.voters"] for p in properties.values()}) == 1
    pki = Path(environments["kafka"]["NIR_KAFKA_PKI_DIR"])
    for name, p in properties.items():
        assert p["advertised.listeners"] == f"CLIENT://{addresses[_node(name) - 1]}"
        assert p["ssl.keystore.location"] == str(pki / "broker.pem")
    # What the hub's services read: the CA certificate in kafka-ca, the cluster's.
    ca = Path(environments["kafka"]["NIR_KAFKA_CREDENTIALS_DIR"]) / "tls" / "ca.pem"
    assert ca.read_text() == (pki / "ca.pem").read_text()
    # No broker made a CA of its own: the CA's key is in kafka-pki's data directory only.
    assert not [
        path for env in environments.values() for path in Path(env["NIR_KAFKA_DATA_DIR"]).rglob("ca.key")
    ]

    # kafka-access's own settings (nir-admin, three replicas), its files where this run put them.
    admin_env = {
        k: v
        for k, v in _environment("kafka-access").items()
        if k.startswith(("NIR_KAFKA_", "NIR_REPLICATION"))
    }
    settings = Settings.from_env(
        admin_env
        | {
            "NIR_KAFKA_BOOTSTRAP": ",".join(addresses),
            "NIR_KAFKA_CA_FILE": str(ca),
            "NIR_KAFKA_SECRETS_DIR": str(
                Path(environments["kafka"]["NIR_KAFKA_CREDENTIALS_DIR"]) / "secrets"
            ),
        }
    )

    async def described() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        admin = AIOKafkaAdminClient(**settings.kafka.aiokafka())
        await admin.start()
        try:
            cluster = await admin.describe_cluster()
            await admin.create_topics([NewTopic("nir.cluster-check", 3, settings.replication_factor)])
            for _ in range(40):
                [topic] = await admin.describe_topics(["nir.cluster-check"])
                if topic["error_code"] == 0 and all(len(p["isr"]) == 3 for p in topic["partitions"]):
                    break
                await asyncio.sleep(0.5)
            return cluster, topic["partitions"]
        finally:
            await admin.close()

    cluster, partitions = asyncio.run(described())
    assert sorted(b["node_id"] for b in cluster["brokers"]) == [1, 2, 3]
    assert cluster["cluster_id"] == (pki / "cluster.id").read_text().strip()
    assert len(partitions) == 3
    for partition in partitions:
        assert sorted(partition["replicas"]) == sorted(partition["isr"]) == [1, 2, 3]
