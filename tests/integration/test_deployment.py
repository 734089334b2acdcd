"""docker-compose.yml and the Dockerfile, checked against the hub itself: no Docker engine runs
here, so every service's command, port and environment is checked for what it claims."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from hub.config import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
HUB_SERVICES = [name for name, s in SERVICES.items() if s.get("image") == "nir-hub:local"]
PROMETHEUS: dict[str, Any] = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())


# What an operator exports before `docker compose up` (the file demands these).
OPERATOR = {
    "NIR_POSTGRES_PASSWORD": "a-password",
    "NIR_GRAFANA_ADMIN_PASSWORD": "another",
    "NIR_SUPPORT_TLS_DIR": "/etc/nir/support-tls",
}
_REFERENCE = re.compile(r"\$\{(\w+)(?::([?-])([^}]*))?\}")


def interpolated(value: str, environment: dict[str, str] = OPERATOR) -> str:
    """A value as compose interpolates it: ${VAR:?message} must be set, ${VAR:-default} may be."""

    def resolve(match: re.Match[str]) -> str:
        name, kind, rest = match.groups()
        if name in environment:
            return environment[name]
        if kind == "-":
            return rest
        raise KeyError(f"{name} must be set")

    return _REFERENCE.sub(resolve, value)


def settings_of(service: str) -> Settings:
    environment = {k: interpolated(str(v)) for k, v in (SERVICES[service].get("environment") or {}).items()}
    return Settings.from_env(environment)


def test_the_stack_has_every_part_the_operations_need() -> None:
    assert {
        "kafka",
        "postgres",
        "migrate",
        "worker",
        "support",
        "folkeregister-connector",
        "folkeregister-stand-in",
        "prometheus",
        "grafana",
    } <= set(SERVICES)
    # The official image, run and secured by the local broker's own script (KRaft, TLS, SASL, ACLs).
    kafka_image = (ROOT / SERVICES["kafka"]["build"] / "Dockerfile").read_text()
    assert "FROM apache/kafka:4.1.1" in kafka_image
    assert SERVICES["kafka"]["command"] == ["bash", "/opt/nir/kafka.sh", "run"]
    assert "COPY kafka.sh" in kafka_image
    assert "ports" not in SERVICES["worker"], "a fixed host port would stop `--scale worker=N`"
    assert all(SERVICES[name].get("build") == "." for name in HUB_SERVICES)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install --no-cache-dir ." in dockerfile and 'CMD ["hub", "worker"' in dockerfile


@pytest.mark.parametrize("service", HUB_SERVICES)
def test_every_hub_service_runs_a_real_command_with_settings_the_hub_accepts(service: str) -> None:
    command = SERVICES[service]["command"]
    assert command[0] == "hub"
    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", *command[1:], "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    environment = SERVICES[service].get("environment") or {}
    known = {f.metadata["env"] for f in Settings.__dataclass_fields__.values()}
    assert set(environment) <= known, set(environment) - known
    settings_of(service)  # every value parses


def test_hub_services_reach_kafka_and_postgres_as_those_services_are_configured() -> None:
    kafka = SERVICES["kafka"]["environment"]
    postgres = {k: interpolated(v) for k, v in SERVICES["postgres"]["environment"].items()}
    credentials = kafka["NIR_KAFKA_CREDENTIALS_DIR"]
    principals = {"worker": "nir-worker", "support": "nir-worker", "folkeregister-connector": "nir-connector"}
    principals |= {"kafka-access": "nir-admin", "migrate": "nir-worker"}
    for service, principal in principals.items():
        settings = settings_of(service)
        assert settings.kafka_bootstrap == f"{kafka['NIR_KAFKA_HOST']}:{kafka['NIR_KAFKA_PORT']}"
        assert settings.kafka_username == principal
        assert settings.kafka_ca_file == f"{credentials}/tls/ca.pem"
        assert settings.kafka_secrets_dir == f"{credentials}/secrets"
        if service != "migrate":
            mounts = {v.split(":")[1]: v for v in SERVICES[service]["volumes"]}
            assert mounts[credentials].startswith("kafka-credentials:")
            # Only the admin's one-shot service writes there (the passwords it makes).
            assert mounts[credentials].endswith(":ro") == (service != "kafka-access")
        url = urlsplit(settings.database_url)
        assert url.scheme == "postgresql+psycopg" and url.hostname == "postgres"
        assert (url.username, url.password, url.path.lstrip("/")) == (
            postgres["POSTGRES_USER"],
            postgres["POSTGRES_PASSWORD"],
            postgres["POSTGRES_DB"],
        )
        assert service in ("migrate", "kafka-access") or SERVICES[service]["depends_on"]["migrate"][
            "condition"
        ] == ("service_completed_successfully")


def test_ports_match_between_the_services_prometheus_and_the_hub() -> None:
    worker = settings_of("worker")
    assert worker.web_host == "0.0.0.0" and str(worker.web_port) in SERVICES["worker"]["expose"]
    support = settings_of("support")
    assert SERVICES["support"]["ports"] == [f"${{NIR_PUBLISH_ADDRESS:-127.0.0.1}}:8443:{support.web_port}"]
    assert support.web_tls_cert_file and support.web_tls_key_file  # the support page is served over TLS
    jobs = {job["job_name"]: job for job in PROMETHEUS["scrape_configs"]}
    [worker_sd] = jobs["nir-hub-worker"]["dns_sd_configs"]
    assert worker_sd["names"] == ["worker"] and worker_sd["port"] == worker.web_port
    connector = settings_of("folkeregister-connector")
    [target] = jobs["nir-folkeregister-connector"]["static_configs"][0]["targets"]
    assert target == f"folkeregister-connector:{connector.connector_metrics_port}"
    stand_in = SERVICES["folkeregister-stand-in"]["command"]
    feed = urlsplit(connector.folkeregister_url)
    assert feed.hostname == "folkeregister-stand-in"
    assert str(feed.port) == stand_in[stand_in.index("--port") + 1]
    assert feed.path == "/folkeregisteret/offentlig-med-hjemmel/api/v1"


def test_prometheus_and_grafana_mount_the_shipped_configuration() -> None:
    for service in ("prometheus", "grafana"):
        for volume in SERVICES[service]["volumes"]:
            source = volume.split(":")[0]
            assert (ROOT / source).is_dir(), volume
    assert "./deploy/prometheus:/etc/prometheus:ro" in SERVICES["prometheus"]["volumes"]
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/nir-hub.yml").read_text())
    mounted = {v.split(":")[1]: v.split(":")[0] for v in SERVICES["grafana"]["volumes"]}
    dashboards = ROOT / mounted[provider["providers"][0]["options"]["path"]]
    assert (dashboards / "nir-hub.json").is_file()
    datasource = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert urlsplit(datasource["datasources"][0]["url"]).hostname == "prometheus"


def test_the_compose_file_is_safe_to_copy() -> None:
    """No password written in it, nothing published beyond this host unless asked, Grafana
    without its default administrator password."""
    text = (ROOT / "docker-compose.yml").read_text()
    for name, service in SERVICES.items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD$|SECRET$|TOKEN$", key) or "@" in str(value):
                assert "${" in str(value), f"{name}: {key} is written into the file"
        for port in service.get("ports", []):
            assert port.startswith("${NIR_PUBLISH_ADDRESS:-127.0.0.1}:"), f"{name} publishes {port}"
    assert "admin/admin" not in text
    with pytest.raises(KeyError):  # compose refuses to start without the passwords
        interpolated(SERVICES["postgres"]["environment"]["POSTGRES_PASSWORD"], {})
    assert interpolated(SERVICES["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]) == "another"
