"""Metrics, health, and the Grafana dashboard and alert rules, checked by a real Prometheus
(Debian's `prometheus` package) scraping a real worker, lag exporter and connector on the real
broker."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hub.dev.folkeregister_standin import FolkeregisterStandIn, serving
from hub.dev.localrun import LocalBroker, WorkerProcess
from tests.conftest import free_port, make_settings
from tests.factories import event, synthetic_person
from tests.harness import HubHarness, wait_until

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "nir-hub.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
METRIC = re.compile(r"\b((?:nir|faust)_[a-z_]+|up)\b")


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def exported(url: str) -> set[str]:
    """Every sample name a /metrics page exports."""
    _, body = get(url)
    return {sample.name for family in text_string_to_metric_families(body) for sample in family.samples}


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def alert_expressions() -> list[str]:
    return [line.split("expr:", 1)[1].strip() for line in ALERTS.read_text().splitlines() if "expr:" in line]


@dataclasses.dataclass(frozen=True)
class Running:
    harness: HubHarness
    connector_port: int
    exporter_port: int

    def metrics_urls(self) -> list[str]:
        ports = (self.harness.settings.web_port, self.connector_port, self.exporter_port)
        return [f"http://127.0.0.1:{port}/metrics" for port in ports]


@pytest.fixture
def running(kafka_broker: LocalBroker, sqlite_url: str, tmp_path: Path) -> Iterator[Running]:
    """A worker that has accepted, rejected and dead-lettered events, the lag exporter, and a
    connector that has read a feed."""
    harness = HubHarness(make_settings(kafka_broker, sqlite_url, tmp_path), tmp_path)
    stand_in = FolkeregisterStandIn()
    person = synthetic_person()
    with serving(stand_in) as url:
        settings = dataclasses.replace(
            harness.settings, folkeregister_url=url, folkeregister_poll_seconds=0.2
        )
        connector = WorkerProcess.connector(settings, tmp_path / "connector.log").start()
        exporter_settings = dataclasses.replace(
            settings.as_kafka_user(settings.kafka_monitor_user),
            lag_exporter_port=free_port(),
            lag_exporter_interval_seconds=1.0,
        )
        exporter = WorkerProcess(exporter_settings, tmp_path / "lag-exporter.log", command=("lag-exporter",))
        exporter.start()
        harness.start_worker()
        try:
            late = event(synthetic_person(), fact_date=dt.date.today() - dt.timedelta(days=100))
            bad = event(synthetic_person(), municipality="9999")
            accepted = event(person)
            harness.publish([accepted, late, accepted, bad])
            harness.wait_for_receipts(4)
            assert person.national_id
            stand_in.move(person.national_id, "0301", dt.date.today())
            yield Running(harness, settings.connector_metrics_port, exporter_settings.lag_exporter_port)
        finally:
            connector.stop()
            exporter.stop()
            harness.stop_all()


@pytest.fixture
def prometheus(running: Running, tmp_path: Path) -> Iterator[str]:
    if shutil.which("prometheus") is None:
        pytest.fail("Prometheus is needed (Debian package 'prometheus'; .ci/run installs it)")
    harness, connector_port = running.harness, running.connector_port
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": ["alerts.yml"],
                "scrape_configs": [
                    {
                        "job_name": "nir-hub-worker",
                        "static_configs": [{"targets": [f"127.0.0.1:{harness.settings.web_port}"]}],
                    },
                    {
                        "job_name": "nir-folkeregister-connector",
                        "static_configs": [{"targets": [f"127.0.0.1:{connector_port}"]}],
                    },
                    {
                        "job_name": "nir-lag-exporter",
                        "static_configs": [{"targets": [f"127.0.0.1:{running.exporter_port}"]}],
                    },
                ],
            }
        )
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def query(prometheus: str, expr: str) -> dict[str, Any]:
    status, body = get(f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    answer: dict[str, Any] = json.loads(body)
    answer["http_status"] = status
    return answer


def targets_up(prometheus: str) -> int:
    """How many targets Prometheus scrapes successfully (0 while it is starting)."""
    try:
        return len(query(prometheus, "up == 1")["data"]["result"])
    except urllib.error.URLError:
        return 0


def test_the_worker_and_the_lag_exporter_answer_liveness_and_readiness(running: Running) -> None:
    base = f"http://127.0.0.1:{running.harness.settings.web_port}"
    status, body = get(base + "/health/live")
    assert status == 200 and json.loads(body) == {"status": "live"}
    status, body = get(base + "/health/ready")
    assert status == 200 and json.loads(body) == {"status": "ready", "broker": "ok", "register": "ok"}
    exporter = f"http://127.0.0.1:{running.exporter_port}/health/ready"
    wait_until(lambda: get(exporter)[0] == 200, timeout=60, what="the lag exporter's first read")


def test_every_dashboard_query_and_alert_is_valid_and_uses_only_exported_metrics(
    running: Running, prometheus: str
) -> None:
    worker_url, connector_url, exporter_url = running.metrics_urls()
    # The consumer-lag, readiness and register gauges are set on a 10-second timer.
    for name in ("nir_consumer_lag", "nir_replays_total", "nir_ready"):
        wait_until(lambda name=name: name in exported(worker_url), timeout=60, what=name)
    # The incidents once a minute: the dead-lettered event's ticket is one.
    wait_until(lambda: "nir_incident_tickets" in exported(worker_url), timeout=90, what="the incidents")
    wait_until(
        lambda: "nir_folkeregister_delay_seconds" in exported(connector_url),
        timeout=60,
        what="the connector's first page",
    )
    wait_until(lambda: "nir_consumer_group_lag" in exported(exporter_url), timeout=60, what="the group's lag")
    names = exported(worker_url) | exported(connector_url) | exported(exporter_url) | {"up"}
    assert not {name for name in names if name.endswith("_created")}
    wait_until(lambda: targets_up(prometheus) == 3, timeout=60, what="the three targets scraped")

    expressions = dashboard_queries() + alert_expressions()
    assert len(expressions) >= 20
    for expr in expressions:
        answer = query(prometheus, expr)
        assert answer["status"] == "success", f"{expr}: {answer.get('error')}"
        for name in METRIC.findall(expr):
            assert name in names or f"{name}_total" in names, (
                f"{expr} uses {name}, which the hub does not export"
            )
            scraped = f'count({{__name__=~"{name}(_total)?"}})'
            wait_until(
                lambda scraped=scraped: bool(query(prometheus, scraped)["data"]["result"]),
                timeout=30,
                what=f"Prometheus to have scraped {name}",
            )
    # The hub's own series that the dashboard's key panels need carry the labels they group by.
    outcomes = {r["metric"]["outcome"] for r in query(prometheus, "nir_events_total")["data"]["result"]}
    assert {"ACCEPTED", "ACCEPTED_WITH_WARNINGS", "DUPLICATE", "REJECTED"} <= outcomes
    assert query(prometheus, 'nir_late_registrations_total{municipality="0301"}')["data"]["result"]
    assert query(prometheus, 'nir_dead_letters_total{error_class="rule"} == 1')["data"]["result"]
    # The worker's producer is counted: four receipts and a dead letter at least.
    assert query(prometheus, "faust_total_sent_messages_total >= 5")["data"]["result"]
    ready = query(prometheus, "nir_ready")["data"]["result"]
    assert {(r["metric"]["check"], r["value"][1]) for r in ready} == {("broker", "1"), ("register", "1")}

    wait_until(
        lambda: all(
            r["health"] == "ok"
            for g in json.loads(get(prometheus + "/api/v1/rules")[1])["data"]["groups"]
            for r in g["rules"]
        ),
        timeout=30,
        what="every alert rule evaluated",
    )


def test_the_lag_exporter_still_shows_the_lag_when_every_worker_is_down(
    running: Running, prometheus: str
) -> None:
    harness = running.harness

    def lag() -> float:  # of the registrations topics: what the sources sent and no worker read
        try:
            answer = query(prometheus, 'sum(nir_consumer_group_lag{topic=~".*[.]registrations"})')
        except (ValueError, urllib.error.URLError):  # a busy Prometheus answers 503 in plain text: not yet
            return -1.0
        result = answer["data"]["result"]
        return float(result[0]["value"][1]) if result else -1.0

    wait_until(lambda: targets_up(prometheus) == 3, timeout=60, what="the three targets scraped")
    wait_until(lambda: lag() == 0, timeout=60, what="the worker to have caught up, as the exporter sees it")
    harness.stop_all()
    wait_until(
        lambda: not query(prometheus, 'up{job="nir-hub-worker"} == 1')["data"]["result"],
        timeout=60,
        what="no worker scraped",
    )
    harness.publish([event(synthetic_person()) for _ in range(3)])
    wait_until(lambda: lag() == 3, timeout=60, what="the lag of three unread events")


def test_the_shipped_prometheus_configuration_and_alert_rules_pass_promtool() -> None:
    if shutil.which("promtool") is None:
        pytest.fail("promtool is needed (Debian package 'prometheus'; .ci/run installs it)")
    result = subprocess.run(
        ["promtool", "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(alert_expressions())} rules found" in result.stdout  # every alert was read


def test_the_incident_alert_fires_on_an_incident_growing_fast_and_not_on_a_steady_one_or_a_cold_start(
    tmp_path: Path,
) -> None:
    """The shipped NirIncidentGrowing rule, run by `promtool test rules` over made-up series of
    two workers (each exports the same register-wide figures), a minute apart."""
    if shutil.which("promtool") is None:
        pytest.fail("promtool is needed (Debian package 'prometheus'; .ci/run installs it)")

    def series(labels: str, worker: str, values: str) -> dict[str, str]:
        return {
            "series": f'nir_incident_tickets{{{labels},instance="{worker}",job="nir-hub-worker"}}',
            "values": values,
        }

    flood = 'source="a",error_code="NIR-DECODE-001",event_type="",fagsystem_version=""'
    steady = 'source="a",error_code="NIR-SOURCE-002",event_type="TRAINING_CLAIM",fagsystem_version="5.1.0"'
    new = 'source="b",error_code="NIR-REF-001",event_type="TRAINING_CLAIM",fagsystem_version="2.0"'
    overdue = [
        {
            "series": f'nir_ticket_overdue_after_seconds{{instance="{w}",job="nir-hub-worker"}}',
            "values": "604800x30",
        }
        for w in ("w1", "w2")
    ]
    both = (
        [
            series(flood, w, "100+100x30")
            for w in ("w1", "w2")  # 1,000 in 10 minutes
        ]
        + [
            series(steady, w, "5000+40x30")
            for w in ("w1", "w2")  # 400 in 10 minutes (800 if summed)
        ]
        + [
            series(new, w, "_x14 2000x15")
            for w in ("w1", "w2")  # none, then 2,000 at once
        ]
    )

    def fired(source: str, code: str, event_type: str, version: str) -> dict[str, Any]:
        labels = {"severity": "warning", "source": source, "error_code": code}
        labels |= {"event_type": event_type} if event_type else {}
        labels |= {"fagsystem_version": version} if version else {}
        return {
            "exp_labels": labels,
            "exp_annotations": {
                "summary": f"An incident of {source} ({code}, release {version}) gained more than 500 "
                "tickets in 10 minutes",
                "description": "A fagsystem release is failing every event the same way: tell the vendor, "
                "who sees it too (GET /v1/incidents). The desk and `hub cases incidents` handle the "
                "incident as one. docs/operations/runbook.md.",
            },
        }

    def at(minutes: int, *alerts: dict[str, Any]) -> dict[str, Any]:
        return {"eval_time": f"{minutes}m", "alertname": "NirIncidentGrowing", "exp_alerts": list(alerts)}

    flooding = fired("a", "NIR-DECODE-001", "", "")
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    tests = tmp_path / "alerts_test.yml"
    tests.write_text(
        json.dumps(  # JSON is YAML
            {
                "rule_files": ["alerts.yml"],
                "evaluation_interval": "1m",
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": overdue + both,
                        "alert_rule_test": [
                            at(5),  # Prometheus has no figures of 10 minutes ago yet: nothing
                            at(10, flooding),  # the steady incident is not summed over the workers
                            at(16, flooding, fired("b", "NIR-REF-001", "TRAINING_CLAIM", "2.0")),
                            at(26, flooding),  # the new one no longer grows
                        ],
                    }
                ],
            }
        )
    )
    result = subprocess.run(["promtool", "test", "rules", str(tests)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
