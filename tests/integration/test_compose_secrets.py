"""Who can read which secret in docker-compose.yml: one secret per service.

A container can read what is mounted into it and nothing else: the compose secrets it names and
the volumes it mounts. This reads both from the compose file and proves that the broker's and the
super user's passwords reach only the broker and the one-shot kafka-access, and that each hub
service reaches its own principal's password and no other's, at the path the hub reads it from.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from hub.config import Settings
from tests.integration.test_deployment import (
    COMPOSE,
    HUB_SERVICES,
    OPERATOR,
    ROOT,
    SERVICES,
    interpolated,
    settings_of,
)

SECRETS: dict[str, Any] = COMPOSE["secrets"]
BROKER, ADMIN = "nir-broker", "nir-admin"
GATEWAY_DB = "nir-gateway-db"  # the password of the register's role nir_gateway
WORKER_PASSWORDS = {"nir-worker", "nir-replay"}  # every worker serves the support page, which replays

# Named volumes that hold a secret, and what: the broker's data (its CA's and certificate's keys,
# server.properties with its own password) and the passwords kafka-access makes for sources.
SECRET_VOLUMES = {"kafka-data": {BROKER}, "kafka-source-secrets": {"the sources' passwords"}}

# The table the security model states (docs/operations/security.md, "Who can read which secret"):
# service → the principals' passwords it can read.
EXPECTED_PASSWORDS: dict[str, set[str]] = {
    "kafka": {BROKER, ADMIN},
    "kafka-access": {ADMIN, "nir-worker", "nir-replay", "nir-connector", "nir-gateway", "nir-monitor"},
    "worker": WORKER_PASSWORDS,
    "support": WORKER_PASSWORDS,
    # Its Kafka principal's, and the register's role nir_gateway's: never nir's.
    "gateway": {"nir-gateway", GATEWAY_DB},
    "register-roles": {GATEWAY_DB},  # sets that role's password (deploy/postgres/roles.sh)
    "lag-exporter": {"nir-monitor"},
    "backup": {"nir-monitor"},  # reads the group's committed offsets for the manifest
    "folkeregister-connector": {"nir-connector"},
}


def _secret_files() -> dict[str, str]:
    """Each compose secret's file name in NIR_SECRETS_DIR."""
    return {name: PurePosixPath(interpolated(spec["file"])).name for name, spec in SECRETS.items()}


def _passwords_of(service: str) -> dict[str, str]:
    """The principals whose password files the service has, and where it has each."""
    files = _secret_files()
    found = {}
    for secret in SERVICES[service].get("secrets", []):
        name = files[secret["source"]]
        if name.endswith(".password"):
            found[name.removesuffix(".password")] = secret["target"]
    return found


def _named_volumes(service: str) -> set[str]:
    return {
        str(volume).split(":")[0]
        for volume in SERVICES[service].get("volumes", [])
        if str(volume).split(":")[0] in COMPOSE["volumes"]
    }


def reach() -> dict[str, set[str]]:
    """The table: every service → the compose secrets and named volumes it mounts."""
    return {
        name: {s["source"] for s in service.get("secrets", [])} | _named_volumes(name)
        for name, service in SERVICES.items()
    }


def test_every_secret_file_is_one_principals_password_or_the_workers_certificate() -> None:
    files = _secret_files()
    for name, file in files.items():
        assert file in (f"{name}.password", "worker.crt", "worker.key", "nir-mask.key"), (name, file)
    assert {f"{p}.password" for p in set().union(*EXPECTED_PASSWORDS.values())} <= set(files.values())
    # The CA that issued the workers' certificate stays on the host: no service is given its key.
    assert not [file for file in files.values() if file.startswith("web-ca")]


def test_the_broker_and_super_user_passwords_reach_only_the_broker_and_kafka_access() -> None:
    table = reach()
    holders = {
        secret: {service for service, things in table.items() if secret in things} for secret in SECRETS
    }
    assert holders[BROKER] == {"kafka"}
    assert holders[ADMIN] == {"kafka", "kafka-access"}
    for volume in SECRET_VOLUMES:
        holders[volume] = {service for service, things in table.items() if volume in things}
    assert holders["kafka-data"] == {"kafka"}
    assert holders["kafka-source-secrets"] == {"kafka-access"}
    # The internet-facing gateway in particular reaches nothing of theirs.
    assert not table["gateway"] & {BROKER, ADMIN, *SECRET_VOLUMES}


def test_each_service_reads_exactly_the_passwords_of_the_table() -> None:
    actual = {service: set(_passwords_of(service)) for service in SERVICES}
    expected = {service: EXPECTED_PASSWORDS.get(service, set()) for service in SERVICES}
    assert actual == expected


# The development stand-ins (Maskinporten's, Folkeregisteret's) run the hub's image but are not
# the hub: they hold no key of the installation, and mask with one of their own.
STAND_INS = {"maskinporten-stand-in", "folkeregister-stand-in"}
MASKING = [s for s in HUB_SERVICES if s not in STAND_INS]


@pytest.mark.parametrize("service", MASKING)
def test_each_hub_service_masks_with_the_installations_one_key_where_the_hub_looks_for_it(service: str) -> None:
    """One key for all (a mask in one service's log is the same in another's), read from the path
    NIR_MASK_KEY_FILE names; without it a service would make a key of its own in its container."""
    mounted = {s["source"]: s["target"] for s in SERVICES[service].get("secrets", [])}
    assert mounted.get("nir-mask-key") == settings_of(service).mask_key_file


def test_only_hub_services_hold_the_mask_key() -> None:
    holders = {service for service, things in reach().items() if "nir-mask-key" in things}
    assert holders == set(MASKING)


@pytest.mark.parametrize("service", [s for s in HUB_SERVICES if s in EXPECTED_PASSWORDS])
def test_each_hub_service_finds_its_own_password_where_the_hub_looks_for_it(service: str) -> None:
    settings = settings_of(service)
    passwords = _passwords_of(service)
    assert passwords[settings.kafka_username] == settings.password_file(settings.kafka_username)
    if service in ("worker", "support"):
        assert passwords[settings.kafka_replay_user] == settings.password_file(settings.kafka_replay_user)
    # And none from the environment, where `docker inspect` and every child process would see it.
    assert "NIR_KAFKA_PASSWORD" not in (SERVICES[service].get("environment") or {})


def test_only_the_worker_holds_the_key_of_its_compose_network_certificate() -> None:
    table = reach()
    assert {service for service, things in table.items() if "worker-tls-key" in things} == {"worker"}
    worker = settings_of("worker")
    targets = {s["source"]: s["target"] for s in SERVICES["worker"]["secrets"]}
    assert (targets["worker-tls-cert"], targets["worker-tls-key"]) == (
        worker.web_tls_cert_file,
        worker.web_tls_key_file,
    )


def test_kafka_access_writes_source_passwords_into_its_own_volume_beside_the_services_files() -> None:
    settings = settings_of("kafka-access")
    mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in SERVICES["kafka-access"]["volumes"]}
    # `hub sources grant` makes a source's password in the secrets directory: that directory is
    # kafka-access's own volume, writable, and the services' files are mounted into it.
    assert mounts[settings.kafka_secrets_dir] == "kafka-source-secrets"
    assert not str(
        next(v for v in SERVICES["kafka-access"]["volumes"] if str(v).startswith("kafka-source-secrets"))
    ).endswith(":ro")
    for target in _passwords_of("kafka-access").values():
        assert PurePosixPath(target).parent == PurePosixPath(settings.kafka_secrets_dir)


def test_the_gateway_reaches_the_register_only_as_nir_gateway_with_that_roles_password_alone() -> None:
    """The internet-facing gateway reads its incidents as nir_gateway (SELECT on one view), with
    the password from its own secret, and has nothing of the hub's own role nir."""
    gateway = settings_of("gateway")
    url = make_url(gateway.gateway_database_url)
    assert (url.username, url.password, url.host, url.database) == ("nir_gateway", None, "postgres", "nir")
    assert _passwords_of("gateway")[GATEWAY_DB] == gateway.gateway_database_password_file
    environment = SERVICES["gateway"]["environment"]
    assert "NIR_DATABASE_URL" not in environment
    assert not [k for k, v in environment.items() if "NIR_POSTGRES_PASSWORD" in str(v)]
    # It starts once the view exists and the role may read it.
    for step in ("migrate", "register-roles"):
        assert SERVICES["gateway"]["depends_on"][step] == {"condition": "service_completed_successfully"}
    assert SERVICES["register-roles"]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    roles = SERVICES["register-roles"]
    assert roles["environment"]["NIR_GATEWAY_DATABASE_PASSWORD_FILE"] == _passwords_of("register-roles")[GATEWAY_DB]
    assert "./deploy/postgres/roles.sh:/opt/nir/roles.sh:ro" in roles["volumes"]


def test_the_gateway_trusts_the_local_maskinporten_stand_in_unless_told_otherwise() -> None:
    gateway = settings_of("gateway")
    command = SERVICES["maskinporten-stand-in"]["command"]
    issuer = command[command.index("--issuer") + 1]
    assert gateway.maskinporten_issuer == issuer
    assert gateway.gateway_jwks_url == issuer + "jwks"
    assert "maskinporten.no" not in gateway.maskinporten_issuer + gateway.gateway_jwks_url
    assert SERVICES["gateway"]["depends_on"]["maskinporten-stand-in"] == {"condition": "service_healthy"}
    # The real Maskinporten is an explicit choice: both variables set by the operator.
    chosen = {
        "NIR_MASKINPORTEN_ISSUER": "https://test.maskinporten.no/",
        "NIR_GATEWAY_JWKS_URL": "https://test.maskinporten.no/jwk",
    }
    environment = SERVICES["gateway"]["environment"]
    settings = Settings.from_env({k: interpolated(str(v), OPERATOR | chosen) for k, v in environment.items()})
    assert (settings.maskinporten_issuer, settings.gateway_jwks_url) == tuple(chosen.values())


def test_the_security_pages_table_of_who_reads_which_password_is_this_one() -> None:
    page = (ROOT / "docs" / "operations" / "security.md").read_text()
    section = page[page.index("### Who can read which secret") :]
    section = section[: section.index("\n### ")]
    stated: dict[str, set[str]] = {}
    for row in section.splitlines():
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        if not row.startswith("| `nir-") or "password" not in cells[0]:
            continue
        services = set(re.findall(r"`([a-z-]+)`", cells[-1])) & set(SERVICES)
        for principal in re.findall(r"`(nir-[a-z-]+)`", cells[0]):
            stated[principal] = services
    for principal, services in stated.items():
        assert services == {s for s, passwords in EXPECTED_PASSWORDS.items() if principal in passwords}, (
            principal
        )
    assert set(stated) == set().union(*EXPECTED_PASSWORDS.values())
