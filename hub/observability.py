"""What operations see of a worker: Prometheus metrics at `/metrics` (Faust's sensor, named
`faust_*`, and the hub's own from `hub.metrics`), liveness at `/health/live`, readiness at
`/health/ready`, and the gauges that are read off the register and the consumer on a timer.

`/metrics` is served by the worker's web server, or, when NIR_METRICS_PORT is set, only by a
server of its own on NIR_METRICS_HOST (an interface Prometheus reaches and users do not).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any

import faust
from aiohttp import web
from faust.sensors.prometheus import FaustMetrics
from faust.web import Request, Response, View
from mode import Service
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy import text

from hub import metrics
from hub.bootstrap import Hub
from hub.broker import broker_answers
from hub.errors import safe_traceback
from hub.streaming import HubPrometheusMonitor
from hub.support.tickets import ACTIVE, TicketFilter, counts_by_error_code
from hub.webserver import add_security_headers

log = logging.getLogger(__name__)

GAUGE_INTERVAL_SECONDS = 10.0
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

    @app.timer(interval=GAUGE_INTERVAL_SECONDS)
    async def update_gauges() -> None:
        _consumer_lag(app)
        try:
            counts = await asyncio.to_thread(_open_ticket_counts, hub)
        except Exception as exc:  # the next tick tries again
            log.warning("could not count open tickets: %s", safe_traceback(exc))
            return
        metrics.OPEN_TICKETS.clear()
        for code, count in counts.items():
            metrics.OPEN_TICKETS.labels(code).set(count)


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
            with self.hub.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
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


def _open_ticket_counts(hub: Hub) -> dict[str, int]:
    counts: dict[str, int] = {}
    with hub.session_factory() as session:
        for status in ACTIVE:
            for code, count in counts_by_error_code(session, TicketFilter(status=status)):
                counts[code] = counts.get(code, 0) + count
    return counts
