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
    "NIR_SECRETS_DIR": "/etc/nir/secrets",
    "NIR_MASKINPORTEN_CLIENTS_DIR": "/etc/nir/maskinporten",
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
        "lag-exporter",
        "gateway",
        "maskinporten-stand-in",
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
    principals |= {"kafka-access": "nir-admin", "migrate": "nir-worker", "lag-exporter": "nir-monitor"}
    principals |= {"gateway": "nir-gateway"}
    for service, principal in principals.items():
        settings = settings_of(service)
        assert settings.kafka_bootstrap == f"{kafka['NIR_KAFKA_HOST']}:{kafka['NIR_KAFKA_PORT']}"
        assert settings.kafka_username == principal
        assert settings.kafka_ca_file == f"{credentials}/tls/ca.pem"
        assert settings.kafka_secrets_dir == f"{credentials}/secrets"
        mounts = {interpolated(v).split(":")[1]: v for v in SERVICES[service]["volumes"]}
        # Every hub service reads the operator's source registry (its topics and principals).
        assert mounts[settings.sources_file].endswith(":ro")
        if service != "migrate":
            # The broker's CA certificate, which the broker alone writes; the passwords come as
            # compose secrets (tests/integration/test_compose_secrets.py).
            assert mounts[f"{credentials}/tls"] == f"kafka-ca:{credentials}/tls:ro"
            own = f"{settings.kafka_secrets_dir}/{principal}.password"
            assert own in {secret["target"] for secret in SERVICES[service]["secrets"]}
        if service in ("lag-exporter", "gateway"):  # never the register as nir (the gateway: as nir_gateway)
            assert "NIR_DATABASE_URL" not in SERVICES[service]["environment"]
            # The gateway also waits for the Maskinporten stand-in whose tokens it takes, and for the
            # register's view and role its incidents are read through (test_compose_secrets.py).
            gateway = {"kafka-access", "maskinporten-stand-in", "migrate", "register-roles"}
            expected = gateway if service == "gateway" else {"kafka-access"}
            assert set(SERVICES[service]["depends_on"]) == expected
            continue
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
    # The support page is served over TLS on the compose network too; /metrics on its own port.
    assert worker.web_tls_cert_file and worker.web_tls_key_file
    assert worker.metrics_host == "0.0.0.0" and str(worker.metrics_port) in SERVICES["worker"]["expose"]
    support = settings_of("support")
    assert SERVICES["support"]["ports"] == [f"${{NIR_PUBLISH_ADDRESS:-127.0.0.1}}:8443:{support.web_port}"]
    assert support.web_tls_cert_file and support.web_tls_key_file  # the support page is served over TLS
    jobs = {job["job_name"]: job for job in PROMETHEUS["scrape_configs"]}
    [worker_sd] = jobs["nir-hub-worker"]["dns_sd_configs"]
    assert worker_sd["names"] == ["worker"] and worker_sd["port"] == worker.metrics_port
    # The support service's worker is scraped on its own /metrics port, off the published page.
    [support_target] = jobs["nir-hub-worker"]["static_configs"]
    assert support_target["targets"] == [f"support:{support.metrics_port}"]
    assert support.metrics_host == "0.0.0.0" and str(support.metrics_port) in SERVICES["support"]["expose"]
    exporter = settings_of("lag-exporter")
    [target] = jobs["nir-lag-exporter"]["static_configs"][0]["targets"]
    assert target == f"lag-exporter:{exporter.lag_exporter_port}" and exporter.metrics_host == "0.0.0.0"
    gateway = settings_of("gateway")
    [target] = jobs["nir-gateway"]["static_configs"][0]["targets"]
    assert target == f"gateway:{gateway.gateway_metrics_port}" and gateway.metrics_host == "0.0.0.0"
    assert SERVICES["gateway"]["ports"] == [
        f"${{NIR_PUBLISH_ADDRESS:-127.0.0.1}}:9443:{gateway.gateway_port}"
    ]
    assert gateway.gateway_tls_cert_file and gateway.gateway_tls_key_file  # the API is served over TLS
    connector = settings_of("folkeregister-connector")
    [target] = jobs["nir-folkeregister-connector"]["static_configs"][0]["targets"]
    assert target == f"folkeregister-connector:{connector.connector_metrics_port}"
    stand_in = SERVICES["folkeregister-stand-in"]["command"]
    feed = urlsplit(connector.folkeregister_url)
    assert feed.hostname == "folkeregister-stand-in"
    assert str(feed.port) == stand_in[stand_in.index("--port") + 1]
    assert feed.path == "/folkeregisteret/offentlig-med-hjemmel/api/v1"


def test_prometheus_and_grafana_mount_the_shipped_configuration_and_keep_their_data() -> None:
    for service in ("prometheus", "grafana"):
        binds = [v for v in SERVICES[service]["volumes"] if v.startswith("./")]
        assert binds and all((ROOT / v.split(":")[0]).is_dir() for v in binds)
        [data] = [v.split(":")[0] for v in SERVICES[service]["volumes"] if not v.startswith("./")]
        assert data in COMPOSE["volumes"]  # a named volume: series and users survive a restart
    assert "prometheus-data:/prometheus" in SERVICES["prometheus"]["volumes"]
    assert "grafana-data:/var/lib/grafana" in SERVICES["grafana"]["volumes"]
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
            # A URL may name its user (the gateway's: its password comes from a secret file).
            if re.search(r"PASSWORD$|SECRET$|TOKEN$", key) or re.search(r"://[^/@]*:[^/@]*@", str(value)):
                assert "${" in str(value), f"{name}: {key} is written into the file"
        for port in service.get("ports", []):
            assert port.startswith("${NIR_PUBLISH_ADDRESS:-127.0.0.1}:"), f"{name} publishes {port}"
    assert "admin/admin" not in text
    with pytest.raises(KeyError):  # compose refuses to start without the passwords
        interpolated(SERVICES["postgres"]["environment"]["POSTGRES_PASSWORD"], {})
    assert interpolated(SERVICES["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]) == "another"


def _probed_url(service: str) -> str:
    test = SERVICES[service]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"], test
    return str(test[4])


@pytest.mark.parametrize(
    "service", [name for name in HUB_SERVICES if name not in ("kafka-access", "migrate", "backup")]
)
def test_every_long_running_hub_service_has_a_healthcheck_on_its_own_port(service: str) -> None:
    url = urlsplit(_probed_url(service))
    assert url.hostname == "127.0.0.1"
    command = SERVICES[service]["command"]
    if command[:2] == ["hub", "worker"]:
        settings = settings_of(service)
        assert url.port == settings.web_port and url.path == "/health/ready"
        assert url.scheme == ("https" if settings.web_tls_cert_file else "http")
    elif command[:2] == ["hub", "lag-exporter"]:
        assert (url.port, url.path) == (settings_of(service).lag_exporter_port, "/health/ready")
    elif command[:2] == ["hub", "gateway"]:
        assert (url.port, url.path) == (settings_of(service).gateway_metrics_port, "/health/ready")
    elif command[:3] == ["hub", "maskinporten", "stand-in"]:
        assert (str(url.port), url.path) == (command[command.index("--port") + 1], "/jwks")
    elif command[:3] == ["hub", "folkeregister", "connect"]:
        assert (url.port, url.path) == (settings_of(service).connector_metrics_port, "/metrics")
    else:
        assert command[:3] == ["hub", "folkeregister", "stand-in"]
        assert str(url.port) == command[command.index("--port") + 1]


def test_the_scheduled_backup_is_healthy_while_its_newest_backup_is_younger_than_two_intervals(
    tmp_path: Path,
) -> None:
    import os
    import time

    service = SERVICES["backup"]
    command = service["command"]
    directory = command[command.index("--into") + 1]
    assert command[:2] == ["hub", "backup"] and "--repeat" in command
    assert f"backups:{directory}" in service["volumes"]
    assert settings_of("backup").backup_interval_hours == 24
    check = service["healthcheck"]["test"]
    assert check[:3] == ["CMD", "python", "-c"] and directory in check[3]
    script = check[3].replace(directory, str(tmp_path))

    def healthy() -> bool:
        environment = {**os.environ, "NIR_BACKUP_INTERVAL_HOURS": "24"}
        return subprocess.run([sys.executable, "-c", script], env=environment, check=False).returncode == 0

    assert not healthy()  # none yet
    newest = tmp_path / "register-20261207T030000.000000Z.backup"
    newest.write_bytes(b"a backup")
    assert healthy()
    three_days_ago = time.time() - 3 * 24 * 3600
    os.utime(newest, (three_days_ago, three_days_ago))
    assert not healthy()  # the backups stopped


def test_the_healthcheck_probe_fails_on_a_503_and_passes_on_a_200() -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/ok" else 503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, daemon=True).start()
    probe = SERVICES["worker"]["healthcheck"]["test"][3]
    try:
        for path, code in (("/ok", 0), ("/health/ready", 1)):
            url = f"http://127.0.0.1:{server.server_port}{path}"
            result = subprocess.run([sys.executable, "-c", probe, url], capture_output=True, timeout=30)
            assert result.returncode == code, result.stderr
    finally:
        server.shutdown()


def test_the_connector_starts_after_its_stand_in_answers() -> None:
    depends = SERVICES["folkeregister-connector"]["depends_on"]
    assert depends["folkeregister-stand-in"] == {"condition": "service_healthy"}
    assert depends["migrate"]["condition"] == "service_completed_successfully"


def test_every_image_is_pinned_to_an_exact_version() -> None:
    exact = re.compile(r"[\w./-]+:v?\d+\.\d+(\.\d+)?(-[\w.-]+)?")
    for name, service in SERVICES.items():
        image = service["image"]
        if service.get("build"):  # built here, from base images pinned below
            assert image.endswith(":local"), name
        else:
            assert exact.fullmatch(image), f"{name}: {image}"
    for dockerfile in (ROOT / "Dockerfile", ROOT / "deploy" / "kafka" / "Dockerfile"):
        for line in dockerfile.read_text().splitlines():
            if line.startswith("FROM "):
                assert exact.fullmatch(line.split()[1]), line
