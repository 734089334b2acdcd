"""`hub lag-exporter`: the consumer group's lag as the broker sees it, as kafka-exporter and
Burrow measure it, so that lag is visible when every worker is down.

Every NIR_LAG_EXPORTER_INTERVAL_SECONDS it reads the group's committed offsets (the admin API)
and the end offsets of the topics the workers consume, as the monitoring principal
(NIR_KAFKA_MONITOR_USER, which may describe the hub's topics and group and nothing else; see
`hub.kafka.principals`), and serves `nir_consumer_group_lag` at /metrics on
NIR_METRICS_HOST:NIR_LAG_EXPORTER_PORT. /health/ready answers 200 while its last read is recent.
A worker's own `nir_consumer_lag` stays for per-worker detail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hub.config import Settings
from hub.errors import safe_traceback
from hub.kafka.admin import OffsetReader
from hub.kafka.topics import TopicNames
from hub.ops import metrics
from hub.ops.webserver import add_security_headers, security_headers
from hub.sources import SourceRegistry

log = logging.getLogger(__name__)

Partition = tuple[str, int]


def group_lag(
    ends: dict[Partition, int], committed: dict[Partition, int], beginnings: dict[Partition, int]
) -> dict[Partition, int]:
    """End offset minus committed offset of every partition; a partition the group never
    committed is behind by every message on it (the workers start at the earliest offset)."""
    return {tp: max(0, end - committed.get(tp, beginnings.get(tp, 0))) for tp, end in ends.items()}


def consumed_topics(settings: Settings, registry: SourceRegistry) -> list[str]:
    """The topics the workers consume: every source's registrations, address changes, dead letters."""
    names = TopicNames(settings.topic_prefix)
    return [*(names.registrations(s.id) for s in registry), names.address_changes, names.dead_letters]


async def read_group_lag(reader: OffsetReader, group: str, topics: list[str]) -> dict[Partition, int]:
    committed = await reader.committed(group)
    # Topics the group committed on count too (a source's topic the registry no longer names);
    # a topic not created yet is left out.
    partitions = await reader.partitions(sorted({*topics, *(t for t, _ in committed)}), wait=False)
    ends = await reader.end_offsets(partitions)
    never = [tp for tp in partitions if (tp.topic, tp.partition) not in committed]
    beginnings = await reader.beginning_offsets(never) if never else {}
    return group_lag(ends, committed, beginnings)


def _publish(group: str, lag: dict[Partition, int]) -> None:
    metrics.GROUP_LAG.clear()  # a partition that is gone is not reported at its last value
    for (topic, partition), behind in lag.items():
        metrics.GROUP_LAG.labels(group, topic, str(partition)).set(behind)
    metrics.GROUP_LAG_READ.set_to_current_time()


class LagExporter:
    def __init__(self, settings: Settings, registry: SourceRegistry) -> None:
        self.settings = settings
        self.topics = consumed_topics(settings, registry)
        self.last_read = 0.0  # time.monotonic() of the last successful read

    def ready(self) -> bool:
        return time.monotonic() - self.last_read < 3 * self.settings.lag_exporter_interval_seconds

    async def run(self, stop: asyncio.Event) -> None:
        """Read and publish every interval until `stop` is set; a failed read is logged and
        tried again at the next (the clients are opened again: the broker may have moved)."""
        reader = OffsetReader(self.settings.kafka)
        try:
            while not stop.is_set():
                try:
                    lag = await read_group_lag(reader, self.settings.app_id, self.topics)
                except Exception as exc:
                    log.warning("could not read the group's offsets: %s", safe_traceback(exc))
                    await reader.close()
                else:
                    _publish(self.settings.app_id, lag)
                    self.last_read = time.monotonic()
                with contextlib.suppress(TimeoutError):  # the interval passed without a stop
                    await asyncio.wait_for(stop.wait(), self.settings.lag_exporter_interval_seconds)
        finally:
            await reader.close()

    def web_app(self) -> web.Application:
        async def serve_metrics(request: web.Request) -> web.Response:
            body = generate_latest(metrics.LAG_EXPORTER_REGISTRY)
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

        async def live(request: web.Request) -> web.Response:
            return web.json_response({"status": "live"})

        async def ready(request: web.Request) -> web.Response:
            if self.ready():
                return web.json_response({"status": "ready", "broker": "ok"})
            return web.json_response({"status": "not ready", "broker": "no recent read"}, status=503)

        app = web.Application()
        app.router.add_get("/metrics", serve_metrics)
        app.router.add_get("/health/live", live)
        app.router.add_get("/health/ready", ready)
        add_security_headers(app, security_headers(over_tls=False))
        return app


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Serve the lag at /metrics until `stop` is set (`hub lag-exporter`: on SIGTERM or SIGINT)."""
    exporter = LagExporter(settings, SourceRegistry.load(settings.sources_file, settings.service_principals))
    runner = web.AppRunner(exporter.web_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.metrics_host, settings.lag_exporter_port).start()
    try:
        await exporter.run(stop)
    finally:
        await runner.cleanup()
