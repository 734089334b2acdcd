"""The Faust app, built from the settings; agents are discovered from `hub.agents`.

Before the worker starts consuming, `prepare_worker` checks the register's migrations, creates
the topics the source registry needs, and subscribes the registrations agent to every source
topic on the broker that matches the source-topic pattern (faust-streaming's Kafka driver
subscribes by explicit names only, so the pattern is resolved here, at start-up).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Sequence

import faust
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError

from hub.bootstrap import Hub
from hub.config import Settings
from hub.errors import BrokerUnavailable, MessageTooLarge
from hub.kafka.admin import ensure_topics, list_topics
from hub.kafka.topics import TopicNames, required_topics
from hub.kafka.transport import HubConsumerThread, HubProducer
from hub.ops.observability import register_observability
from hub.ops.webserver import FAUST_APP_OPTIONS, secure_web_server, security_headers
from hub.pipeline.ports import Outgoing
from hub.register.migrate import require_current
from hub.support.web import STYLE_HASHES, register_support_page
from hub.worker import HubWorker

log = logging.getLogger(__name__)

settings = Settings.from_env()
hub = Hub.from_settings(settings)
HubWorker.log_repeat_seconds = settings.log_repeat_seconds
HubWorker.shutdown_seconds = settings.shutdown_seconds
HubConsumerThread.fetch_wait_seconds = settings.fetch_wait_seconds
HubConsumerThread.fetch_min_bytes = settings.fetch_min_bytes
names = TopicNames(settings.topic_prefix)

app = faust.App(
    settings.app_id,
    broker=settings.kafka_url,
    autodiscover=["hub.agents"],
    origin="hub.app",
    store="memory://",
    datadir=settings.data_dir,
    key_serializer="raw",
    value_serializer="raw",
    # At-least-once delivery: offsets of events the agents have finished are committed this
    # often; the register's unique keys turn redelivery into "already there".
    broker_commit_interval=settings.commit_interval_seconds,
    broker_session_timeout=settings.session_timeout_seconds,
    consumer_auto_offset_reset="earliest",
    producer_acks=-1,
    # The hub creates its topics itself, with explicit partition counts.
    topic_allow_declare=False,
    topic_disable_leader=True,
    web_bind=settings.web_host,
    web_host=settings.web_host,
    web_port=settings.web_port,
    web_ssl_context=settings.web_ssl_context(),
    **FAUST_APP_OPTIONS,
    Worker=HubWorker,
    # Faust would log whatever is written to stdout and stderr one write() at a time: a traceback
    # printed there became a hundred records. Logging goes through `hub.ops.logs` instead.
    worker_redirect_stdouts=False,
)


def serve_web(faust_app: faust.App, on: Hub) -> None:
    """What the worker's web server serves, and the headers on every answer: support staff's
    case-ticket page at /support/, metrics and health."""
    headers = security_headers(over_tls=on.settings.served_over_tls, style_hashes=STYLE_HASHES)
    secure_web_server(faust_app, headers)
    register_support_page(faust_app, on)
    register_observability(faust_app, on, headers)


serve_web(app, hub)

registrations_topic = app.topic(
    *[names.registrations(source.id) for source in hub.registry],
    key_type=bytes,
    value_type=bytes,
)
address_changes_topic = app.topic(names.address_changes, key_type=bytes, value_type=bytes)
dead_letters_topic = app.topic(names.dead_letters, key_type=bytes, value_type=bytes)


class FaustPublisher:
    """Sends through the worker's own producer and waits for the broker's acknowledgement."""

    def __init__(self, faust_app: faust.App) -> None:
        self.app = faust_app

    async def send_many(self, messages: Sequence[Outgoing]) -> None:
        # In record batches, confirmed together: each partition keeps the messages' order.
        producer = self.app.producer
        if not isinstance(producer, HubProducer):
            raise TypeError(
                f"the hub needs its own Kafka transport (nirkafka://), not {type(producer).__name__}"
            )
        try:
            await asyncio.gather(*await producer.send_batches(messages))
        except (MessageSizeTooLargeError, RecordTooLargeError) as exc:
            # The same message would be refused again: no outage, and never retried.
            raise MessageTooLarge(f"the broker refused a message as too large: {type(exc).__name__}") from exc
        except (TimeoutError, KafkaError, OSError) as exc:
            topics = ", ".join(sorted({m.topic for m in messages}))
            raise BrokerUnavailable(f"send to {topics} not confirmed: {type(exc).__name__}") from exc


async def _prepare(current: Settings) -> list[str]:
    require_current(hub.engine)
    created = await ensure_topics(
        current.kafka, required_topics(current, hub.registry), current.replication_factor
    )
    for name in created:
        log.info("created topic %s", name)
    existing = await list_topics(current.kafka)
    return names.matching_registrations(existing)


def prepare_worker() -> None:
    """Runs in `hub worker` before Faust starts (see the module docstring).

    Not a Faust `on_worker_init` handler: Faust sends that signal for every CLI command.
    """
    # Set here, not when the app is made: every CLI command makes the app, and most of them have
    # no business with the worker's Kafka password.
    app.conf.broker_credentials = settings.kafka.faust_credentials()
    # The worker's event loop is not running yet and must not be replaced: use a thread.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        matching = pool.submit(asyncio.run, _prepare(settings)).result()
    subscribed = list(registrations_topic.topics)
    extra = [t for t in matching if t not in subscribed]
    if extra:
        log.warning(
            "subscribing to %d source topic(s) not in the source registry; their events will "
            "be rejected (NIR-SOURCE-001): %s",
            len(extra),
            ", ".join(extra),
        )
        registrations_topic.topics = [*subscribed, *extra]
    log.info("registrations from %d source topic(s)", len(registrations_topic.topics))
