"""The worker's Faust app, built from the settings by `create_app`, with the agents of `hub.agents`.

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
from dataclasses import dataclass

import faust
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError

from hub.bootstrap import Hub
from hub.config import Settings
from hub.errors import BrokerUnavailable, MessageTooLarge
from hub.kafka.admin import ensure_topics, list_topics
from hub.kafka.topics import required_topics
from hub.kafka.transport import HubProducer
from hub.ops.observability import register_observability
from hub.ops.webserver import FAUST_APP_OPTIONS, secure_web_server, security_headers
from hub.pipeline.ports import Outgoing
from hub.register.migrate import require_current
from hub.support.web import STYLE_HASHES, register_support_page
from hub.worker import HubWorker

log = logging.getLogger(__name__)


class HubFaustApp(faust.App):
    """Faust's app, holding the hub's settings for the classes Faust makes from it (the worker,
    the consumer thread), which have no Faust setting of their own to read."""

    hub_settings: Settings
    # A logger of its own. Left unset, mode names a service's logger after its class's module,
    # this one, and gives it a handler that discards: this module's warnings before the worker
    # sets up logging (`prepare_worker`'s) would then go nowhere.
    logger = logging.getLogger("hub.faust_app")


@dataclass
class HubApp:
    """The worker's app as `create_app` wired it: the Faust app, the hub it works on, and the
    topics its agents read."""

    app: HubFaustApp
    hub: Hub
    registrations_topic: faust.types.TopicT
    address_changes_topic: faust.types.TopicT
    dead_letters_topic: faust.types.TopicT

    @property
    def settings(self) -> Settings:
        return self.hub.settings

    def prepare_worker(self) -> None:
        """Runs in `hub worker` before Faust starts (see the module docstring).

        Not a Faust `on_worker_init` handler: Faust sends that signal for every CLI command.
        """
        # Set here, not when the app is made: `hub faust` makes the app for every Faust command,
        # and most of them have no business with the worker's Kafka password.
        self.app.conf.broker_credentials = self.settings.kafka.faust_credentials()
        # The worker's event loop is not running yet and must not be replaced: use a thread.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            matching = pool.submit(asyncio.run, self._prepare()).result()
        subscribed = list(self.registrations_topic.topics)
        extra = [t for t in matching if t not in subscribed]
        if extra:
            log.warning(
                "subscribing to %d source topic(s) not in the source registry; their events will "
                "be rejected (NIR-SOURCE-001): %s",
                len(extra),
                ", ".join(extra),
            )
            self.registrations_topic.topics = [*subscribed, *extra]
        log.info("registrations from %d source topic(s)", len(self.registrations_topic.topics))

    async def _prepare(self) -> list[str]:
        settings = self.settings
        require_current(self.hub.engine)
        created = await ensure_topics(
            settings.kafka, required_topics(settings, self.hub.registry), settings.replication_factor
        )
        for name in created:
            log.info("created topic %s", name)
        existing = await list_topics(settings.kafka)
        return self.hub.names.matching_registrations(existing)


def create_app(settings: Settings) -> HubApp:
    """The worker's Faust app on `settings`, with its web server, topics and agents; nothing
    happens at import, and nothing here reads the environment or touches the broker."""
    hub = Hub.from_settings(settings)
    names = hub.names
    app = HubFaustApp(
        settings.app_id,
        broker=settings.kafka_url,
        autodiscover=False,  # the agents are installed below, from this app's settings
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
        # Faust would log whatever is written to stdout and stderr one write() at a time: a
        # traceback printed there became a hundred records. Logging goes through `hub.ops.logs`.
        worker_redirect_stdouts=False,
    )
    app.hub_settings = settings
    serve_web(app, hub)
    wired = HubApp(
        app,
        hub,
        registrations_topic=app.topic(
            *[names.registrations(source.id) for source in hub.registry], key_type=bytes, value_type=bytes
        ),
        address_changes_topic=app.topic(names.address_changes, key_type=bytes, value_type=bytes),
        dead_letters_topic=app.topic(names.dead_letters, key_type=bytes, value_type=bytes),
    )
    from hub.agents import install_agents  # the agents name this module's types

    install_agents(wired)
    return wired


def serve_web(faust_app: faust.App, on: Hub) -> None:
    """What the worker's web server serves, and the headers on every answer: support staff's
    case-ticket page at /support/, metrics and health."""
    headers = security_headers(over_tls=on.settings.served_over_tls, style_hashes=STYLE_HASHES)
    secure_web_server(faust_app, headers)
    register_support_page(faust_app, on)
    register_observability(faust_app, on, headers)


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
