"""The hub's own Prometheus metrics, in one place, named by Prometheus's conventions.

The worker serves them at `/metrics` beside Faust's sensor (`faust_*`, which includes each
partition's end offset and committed offset); the Folkeregister connector serves its own on
`NIR_CONNECTOR_METRICS_PORT`; `hub lag-exporter` serves only `LAG_EXPORTER_REGISTRY`'s.

Register-wide figures (open tickets, the oldest open ticket, replays) are read from the register
by every worker, so each exports the same value: dashboards and alerts aggregate them with `max`,
never `sum`. `deploy/grafana/` and `deploy/prometheus/` use exactly these names;
a test checks every dashboard query and alert against a real Prometheus scraping a real worker.

Labels never carry a person identifier.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

# A `*_created` series beside every counter and histogram doubles what is stored and is read by
# nothing here (the collector is global: this also covers Faust's sensor).
disable_created_metrics()

# Seconds: a single event takes milliseconds; a register that is down makes it take seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

EVENTS = Counter(
    "nir_events_total",
    "Registration events processed, by event type and receipt outcome (DUPLICATE: already registered)",
    ["event_type", "outcome"],
)
RULE_FAILURES = Counter(
    "nir_rule_failures_total",
    "Rule violations reported on receipts, by rule code and severity",
    ["code", "severity"],
)
ACCEPTED_BY_MUNICIPALITY = Counter(
    "nir_accepted_registrations_total",
    "Registrations written to the register, by municipality",
    ["municipality"],
)
LATE_REGISTRATIONS = Counter(
    "nir_late_registrations_total",
    "Registrations written more than two months after the fact (rule NIR-DEADLINE-001), by municipality",
    ["municipality"],
)
# The late share's denominator: a permit, a correction or an annulment can never be late, so
# dividing by every accepted registration would dilute the share (issue 28, point 3).
DEADLINE_REGISTRATIONS = Counter(
    "nir_deadline_registrations_total",
    "Registrations written that the two-month deadline applies to (a municipality's own first "
    "registrations: no permits, corrections or annulments), by municipality",
    ["municipality"],
)
DEAD_LETTERS = Counter(
    "nir_dead_letters_total", "Messages dead-lettered, by error class and code", ["error_class", "code"]
)
SET_ASIDE = Counter(
    "nir_set_aside_messages_total",
    "Messages set aside unprocessed because the worker stopped on them again and again, by flow",
    ["flow"],
)
UNSENDABLE = Counter(
    "nir_unsendable_messages_total",
    "Receipts or dead letters the broker refused as too large even in their smallest form, by topic kind",
    ["kind"],
)
OPEN_TICKETS = Gauge(
    "nir_open_tickets", "Case tickets open or replayed, by error code (register-wide: max, not sum)", ["code"]
)
OLDEST_OPEN_TICKET_AGE = Gauge(
    "nir_oldest_open_ticket_age_seconds",
    "Time since the first failure of the oldest open or replayed case ticket; 0 with none (register-wide)",
)
TICKET_OVERDUE_AFTER = Gauge(
    "nir_ticket_overdue_after_seconds",
    "NIR_TICKET_OVERDUE_DAYS in seconds: an open ticket older than this is overdue",
)
# The incidents exported: the INCIDENTS_EXPORTED with the most tickets and the INCIDENTS_EXPORTED
# that failed last (a growing one is among those), so at most twice as many series at a time.
INCIDENTS_EXPORTED = 10
INCIDENT_TICKETS = Gauge(
    "nir_incident_tickets",
    "Active case tickets of an incident, by its cause; only the incidents with the most tickets "
    "and those that failed last (register-wide: max, not sum)",
    ["source", "error_code", "event_type", "fagsystem_version"],
)
READY = Gauge("nir_ready", "Whether each of the worker's readiness checks passes (1) or not (0)", ["check"])
PROCESSING_SECONDS = Histogram(
    "nir_processing_seconds",
    "Time from a message reaching a flow to its outcome being confirmed (register, receipt, dead letter)",
    ["flow"],
    buckets=LATENCY_BUCKETS,
)
REGISTER_WRITE_SECONDS = Histogram(
    "nir_register_write_seconds",
    "Time of one register transaction, retries included, by what it does",
    ["work"],
    buckets=LATENCY_BUCKETS,
)
CONSUMER_LAG = Gauge(
    "nir_consumer_lag",
    "Messages on a partition after the worker's last committed offset",
    ["topic", "partition"],
)


class _RegisterCounters(Collector):
    """Counters the register keeps, as the worker last read them: a replay is counted where it is
    recorded, so one sent by `hub cases replay` (outside every worker) counts too. Nothing is
    exported before the first read, so a worker's start does not look like an increase."""

    DOC = "Ticket replays, by result: sent (the tickets' replay counts), failed (the audit log)"

    def __init__(self) -> None:
        self.replays: dict[str, int] | None = None

    def describe(self) -> Iterable[Metric]:
        return [CounterMetricFamily("nir_replays", self.DOC, labels=["result"])]

    def collect(self) -> Iterator[Metric]:
        if self.replays is not None:
            family = CounterMetricFamily("nir_replays", self.DOC, labels=["result"])
            for result in ("sent", "failed"):
                family.add_metric([result], self.replays.get(result, 0))
            yield family


REPLAYS = _RegisterCounters()
REGISTRY.register(REPLAYS)

# `hub lag-exporter` (its own process and registry): the consumer group as the broker sees it,
# so lag stays visible when no worker runs.
LAG_EXPORTER_REGISTRY = CollectorRegistry()
GROUP_LAG = Gauge(
    "nir_consumer_group_lag",
    "Messages on a partition after the consumer group's committed offset, read from the broker",
    ["group", "topic", "partition"],
    registry=LAG_EXPORTER_REGISTRY,
)
GROUP_LAG_READ = Gauge(
    "nir_consumer_group_lag_read_timestamp_seconds",
    "When the lag exporter last read the group's offsets from the broker",
    registry=LAG_EXPORTER_REGISTRY,
)

# The Folkeregister connector (its own process).
FOLKEREGISTER_POSITION = Gauge(
    "nir_folkeregister_position", "The next sequence number the connector reads from the feed"
)
FOLKEREGISTER_DELAY_SECONDS = Gauge(
    "nir_folkeregister_delay_seconds", "How old the newest feed item was when the connector read it"
)
FOLKEREGISTER_ITEMS = Counter(
    "nir_folkeregister_items_total",
    "Feed items and look-ups, by what became of them (published, passed_over, looked_up, malformed)",
    ["result"],
)
FOLKEREGISTER_LAST_READ = Gauge(
    "nir_folkeregister_last_read_timestamp_seconds", "When the connector last read the feed successfully"
)


@dataclass(frozen=True)
class RegistrationOutcome:
    event_type: str
    municipality: str | None
    outcome: str
    violations: tuple[tuple[str, str], ...]  # (code, severity)
    late: bool = False  # written more than two months after the fact
    deadline_applies: bool = False  # the two-month deadline applies (`hub.domain.deadlines.may_be_late`)


def observe_registrations(outcomes: Iterable[RegistrationOutcome]) -> None:
    """Count registrations' outcomes, a batch at a time: each series is incremented once."""
    events: collections.Counter[tuple[str, str]] = collections.Counter()
    failures: collections.Counter[tuple[str, str]] = collections.Counter()
    accepted: collections.Counter[str] = collections.Counter()
    late: collections.Counter[str] = collections.Counter()
    deadline: collections.Counter[str] = collections.Counter()
    for o in outcomes:
        events[o.event_type, o.outcome] += 1
        failures.update(o.violations)
        if o.outcome in ("ACCEPTED", "ACCEPTED_WITH_WARNINGS") and o.municipality:
            accepted[o.municipality] += 1
            if o.deadline_applies:
                deadline[o.municipality] += 1
            if o.late:
                late[o.municipality] += 1
    for (event_type, outcome), n in events.items():
        EVENTS.labels(event_type, outcome).inc(n)
    for (code, severity), n in failures.items():
        RULE_FAILURES.labels(code, severity).inc(n)
    for municipality, n in accepted.items():
        ACCEPTED_BY_MUNICIPALITY.labels(municipality).inc(n)
    for municipality, n in late.items():
        LATE_REGISTRATIONS.labels(municipality).inc(n)
    for municipality, n in deadline.items():
        DEADLINE_REGISTRATIONS.labels(municipality).inc(n)


# Series with known label values exist from the start (at 0), so a rate over them is defined.
for _result in ("published", "passed_over", "looked_up", "malformed"):
    FOLKEREGISTER_ITEMS.labels(_result)
for _flow in ("transfer_registrations", "record_address_changes", "open_case_tickets"):
    SET_ASIDE.labels(_flow)
for _kind in ("receipt", "dead_letter"):
    UNSENDABLE.labels(_kind)

# `hub gateway` (its own process): the HTTPS ingestion API.
GATEWAY_REQUESTS = Counter(
    "nir_gateway_requests_total",
    "Requests to the gateway, by route, method and status",
    ["route", "method", "status"],
)
GATEWAY_REQUEST_SECONDS = Histogram(
    "nir_gateway_request_duration_seconds",
    "Time from a request's arrival to its answer, by route (a long-poll counts its wait)",
    ["route"],
    buckets=LATENCY_BUCKETS,
)
GATEWAY_REFUSALS = Counter(
    "nir_gateway_refusals_total",
    "Requests and events the gateway refused, by reason (the problem type's last part)",
    ["reason"],
)
GATEWAY_EVENTS = Counter(
    "nir_gateway_events_total",
    "Events posted to the gateway, by result (accepted, already_received, refused, not_sent)",
    ["result"],
)
for _result in ("accepted", "already_received", "refused", "not_sent"):
    GATEWAY_EVENTS.labels(_result)
