"""docker-compose.yml and the Dockerfile, checked against the hub itself: no Docker engine runs
here, so every service's command, port and environment is checked for what it claims."""

from __future__ import annotations

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


def settings_of(service: str) -> Settings:
    environment = {k: str(v) for k, v in (SERVICES[service].get("environment") or {}).items()}
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
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:")  # the official image
    assert SERVICES["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
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
    postgres = SERVICES["postgres"]["environment"]
    for service in ("worker", "support", "folkeregister-connector", "migrate"):
        settings = settings_of(service)
        assert f"PLAINTEXT://{settings.kafka_bootstrap}" == kafka["KAFKA_ADVERTISED_LISTENERS"]
        url = urlsplit(settings.database_url)
        assert url.scheme == "postgresql+psycopg" and url.hostname == "postgres"
        assert (url.username, url.password, url.path.lstrip("/")) == (
            postgres["POSTGRES_USER"],
            postgres["POSTGRES_PASSWORD"],
            postgres["POSTGRES_DB"],
        )
        assert service == "migrate" or SERVICES[service]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )


def test_ports_match_between_the_services_prometheus_and_the_hub() -> None:
    worker = settings_of("worker")
    assert worker.web_host == "0.0.0.0" and str(worker.web_port) in SERVICES["worker"]["expose"]
    assert SERVICES["support"]["ports"] == [f"8080:{settings_of('support').web_port}"]
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
