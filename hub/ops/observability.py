"""What operations see of a worker: Prometheus metrics at `/metrics` (Faust's sensor, named
`faust_*`, and the hub's own from `hub.ops.metrics`), liveness at `/health/live`, readiness at
`/health/ready`, and the gauges that are read off the register and the consumer on a timer.

The register's figures (open tickets, the oldest one, replays, the top incidents) are the same for
every worker: each exports them, and dashboards and alerts take their `max`. The incidents are
read less often (`INCIDENT_INTERVAL_SECONDS`): grouping them reads every active ticket. The group's lag as the broker sees
it, when no worker runs too, is `hub lag-exporter`'s (`hub.ops.lag_exporter`); a worker's own
`nir_consumer_lag` covers only the partitions it holds.

`/metrics` is served by the worker's web server, or, when NIR_METRICS_PORT is set, only by a
server of its own on NIR_METRICS_HOST (an interface Prometheus reaches and users do not).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import time
from dataclasses import dataclass
from typing import Any

import faust
from aiohttp import web
from faust.sensors.prometheus import FaustMetrics
from faust.web import Request, Response, View
from mode import Service
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from hub.bootstrap import Hub
from hub.domain.calendar import as_utc
from hub.domain.redaction import clean
from hub.errors import safe_traceback
from hub.kafka.admin import broker_answers
from hub.ops import metrics
from hub.ops.monitor import HubPrometheusMonitor
from hub.ops.webserver import add_security_headers
from hub.register.database import answers
from hub.support.incidents import Incident
from hub.support.replay import replay_counts
from hub.support.tickets import ACTIVE, TicketFilter

log = logging.getLogger(__name__)

GAUGE_INTERVAL_SECONDS = 10.0
# The incidents' grouping reads every active ticket: once a minute is enough for an alert that
# looks at ten minutes, and keeps a flood's 100,000 tickets from being grouped every 10 s.
INCIDENT_INTERVAL_SECONDS = 60.0
LABEL_LIMIT = 64  # a fagsystemVersion is the vendor's free text
READY_CACHE_SECONDS = 5.0  # a scrape every few seconds must not become a broker call each


@functools.cache
def _faust_metrics() -> FaustMetrics:
    # Faust's sensor, with its metric names prefixed `faust` whatever the app id, so dashboards
    # fit every hub; all metrics are in prometheus_client's default registry (once per process).
    return FaustMetrics.create(REGISTRY, "faust")


def register_observability(app: faust.App, hub: Hub, headers: dict[str, str]) -> None:
    """Metrics, health and gauges for `app`; `headers` go on the answers of a metrics server of
    its own (the worker's web server adds them itself)."""
    monitor = app.monitor = HubPrometheusMonitor(metrics=_faust_metrics())

    def exposition() -> bytes:
        monitor.publish()  # the sensor's per-message counts, up to now
        return generate_latest(REGISTRY)

    settings = hub.settings
    if settings.metrics_port:

        async def serve_metrics(request: web.Request) -> web.Response:
            return web.Response(body=exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

        metrics_app = web.Application()
        metrics_app.router.add_get("/metrics", serve_metrics)
        add_security_headers(metrics_app, headers)

        @app.service
        class MetricsServer(Service):
            """/metrics on its own interface and port, for as long as the worker runs."""

            runner: web.AppRunner | None = None

            async def on_start(self) -> None:
                self.runner = web.AppRunner(metrics_app, access_log=None)
                await self.runner.setup()
                await web.TCPSite(self.runner, settings.metrics_host, settings.metrics_port).start()

            async def on_stop(self) -> None:
                if self.runner is not None:
                    await self.runner.cleanup()

    else:

        @app.page("/metrics")
        class Metrics(View):
            async def get(self, request: Request) -> Response:
                return self.bytes(exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    readiness = _Readiness(hub)

    @app.page("/health/live")
    class Live(View):
        """The worker's event loop answers."""

        async def get(self, request: Request) -> Response:
            return self.json({"status": "live"})

    @app.page("/health/ready")
    class Ready(View):
        """The broker and the register both answer: the worker can do its work."""

        async def get(self, request: Request) -> Response:
            checks = await readiness.checks()
            ok = all(value == "ok" for value in checks.values())
            return self.json({"status": "ready" if ok else "not ready", **checks}, status=200 if ok else 503)

    metrics.TICKET_OVERDUE_AFTER.set(settings.ticket_overdue_days * 86400)
    incidents_read = [-INCIDENT_INTERVAL_SECONDS]  # monotonic time of the last read

    @app.timer(interval=GAUGE_INTERVAL_SECONDS)
    async def update_gauges() -> None:
        _consumer_lag(app)
        for check, value in (await readiness.checks()).items():
            metrics.READY.labels(check).set(value == "ok")
        try:
            figures = await asyncio.to_thread(_register_figures, hub)
        except Exception as exc:  # the next tick tries again
            log.warning("could not read the register's figures: %s", safe_traceback(exc))
            return
        metrics.OPEN_TICKETS.clear()
        for code, count in figures.open_tickets.items():
            metrics.OPEN_TICKETS.labels(code).set(count)
        metrics.OLDEST_OPEN_TICKET_AGE.set(figures.oldest_open_ticket_age)
        metrics.REPLAYS.replays = figures.replays
        if time.monotonic() - incidents_read[0] >= INCIDENT_INTERVAL_SECONDS:
            incidents_read[0] = time.monotonic()
            try:
                found = await asyncio.to_thread(_incidents, hub)
            except Exception as exc:  # the next minute tries again; the last figures stay
                log.warning("could not read the incidents: %s", safe_traceback(exc))
                return
            metrics.INCIDENT_TICKETS.clear()
            for labels, tickets in incident_series(found, metrics.INCIDENTS_EXPORTED).items():
                metrics.INCIDENT_TICKETS.labels(*labels).set(tickets)


class _Readiness:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._checked_at = 0.0
        self._last: dict[str, str] = {}

    async def checks(self) -> dict[str, str]:
        if time.monotonic() - self._checked_at > READY_CACHE_SECONDS:
            broker, register = await asyncio.gather(self._broker(), asyncio.to_thread(self._register))
            self._last = {"broker": broker, "register": register}
            self._checked_at = time.monotonic()
        return self._last

    async def _broker(self) -> str:
        return "ok" if await broker_answers(self.hub.settings.kafka, timeout=3.0) else "unavailable"

    def _register(self) -> str:
        try:
            answers(self.hub.engine)
        except Exception as exc:
            return f"unavailable ({type(exc).__name__})"
        return "ok"


def _consumer_lag(app: faust.App) -> None:
    """End offset minus committed offset of every partition this worker has been assigned."""
    monitor: Any = app.monitor
    ends, committed = monitor.tp_end_offsets or {}, monitor.tp_committed_offsets or {}
    assigned = app.consumer.assignment() if app.consumer is not None else set()
    metrics.CONSUMER_LAG.clear()
    for tp in assigned:
        end, done = ends.get(tp), committed.get(tp)
        if end is not None and done is not None:  # known once this worker has fetched and committed
            metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, end - done))


@dataclass(frozen=True)
class _RegisterFigures:
    open_tickets: dict[str, int]  # by error code
    oldest_open_ticket_age: float  # seconds; 0 with none open
    replays: dict[str, int]  # by result


def _register_figures(hub: Hub) -> _RegisterFigures:
    open_tickets: dict[str, int] = {}
    with hub.unit_of_work() as uow:
        for status in ACTIVE:
            for code, count in uow.tickets.counts_by_error_code(TicketFilter(status=status)):
                open_tickets[code] = open_tickets.get(code, 0) + count
        oldest = uow.tickets.oldest_active_failure()
        replays = replay_counts(uow)
    age = 0.0 if oldest is None else max(0.0, (hub.clock() - as_utc(oldest)).total_seconds())
    return _RegisterFigures(open_tickets, age, replays)


def _incidents(hub: Hub) -> list[Incident]:
    window = dt.timedelta(hours=hub.settings.incident_window_hours)
    with hub.unit_of_work() as uow:
        return uow.incidents.find(window=window)


def incident_series(incidents: list[Incident], top: int) -> dict[tuple[str, str, str, str], int]:
    """The labels (source, error code, event type, fagsystemVersion; "" for a part the cause
    lacks) and ticket counts of the `top` incidents with the most tickets and the `top` that
    failed last (`incidents` is newest first, as `uow.incidents.find` gives them). Two incidents of
    one cause (a quiet of a whole window between them) have the same labels: the newer is shown,
    as it is the one that may grow."""
    largest = sorted(incidents, key=lambda i: i.tickets, reverse=True)[:top]
    chosen = {id(i) for i in [*incidents[:top], *largest]}
    series: dict[tuple[str, str, str, str], int] = {}
    for incident in incidents:  # newest first: the newer of a cause is set first and kept
        if id(incident) not in chosen:
            continue
        source, code, kind, version = (clean(part or "", LABEL_LIMIT) for part in incident.cause.as_tuple())
        series.setdefault((source, code, kind, version), incident.tickets)
    return series
