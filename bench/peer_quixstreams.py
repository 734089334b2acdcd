"""The peer: what a competent engineer would build with quixstreams instead of this hub, doing
the same work on the same stream, so that `bench/throughput.py` can put the two side by side.

A quixstreams application reads a source's registrations topic as raw bytes and hands every
message to one sink (`RegisterSink`). At each checkpoint quixstreams flushes the sink before it
commits the offsets (`quixstreams.checkpointing.Checkpoint.commit`, step 1), and the sink's
flush does the hub's work on everything the checkpoint holds, in one batch: decode (Avro parsed
once per message, fastavro), snapshot the persons' register, decide each event by the hub's own
rules (`hub.pipeline.registrations.RegistrationFlow`, the same decision core and repository the
hub's worker runs), commit the register, and send one receipt per event (and a dead letter per
rejection), waiting until the broker has confirmed every one. Only then does the flush return
and quixstreams commit the offsets: the same checkpoint order as the hub's, so a crash loses
nothing and a second copy is answered from the register.

What the peer leaves out, being a benchmark's peer rather than a service: the crash guard (a
message that kills the process stops its partition), the hold expiry timer, metrics and the
support desk.

Run by `bench/throughput.py` as a process of its own, configured like `hub worker` by the
`NIR_*` environment (its broker, principal, topics, consumer group and register):

    NIR_... python bench/peer_quixstreams.py [--checkpoint-events 500] [--checkpoint-seconds 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Producer
from confluent_kafka import Message as KafkaMessage
from quixstreams import Application
from quixstreams.kafka.configuration import ConnectionConfig
from quixstreams.sinks import BaseSink

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub.bootstrap import Hub
from hub.config import Settings
from hub.domain.events import Origin
from hub.domain.transfer import Message
from hub.errors import BrokerUnavailable
from hub.pipeline.ports import Outgoing
from hub.pipeline.registrations import RegistrationFlow
from hub.wiring import registration_flow

log = logging.getLogger("peer")


class ConfirmedProducer:
    """The hub's `Publisher` port over a confluent-kafka producer: sends in order and returns
    once the broker confirmed every message (idempotent, acks=all, like the hub's producer)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._producer = Producer(
            {**config, "enable.idempotence": True, "acks": "all", "linger.ms": 5, "compression.type": "none"}
        )

    async def send_many(self, messages: Sequence[Outgoing]) -> None:
        failed: list[KafkaError] = []

        def delivered(error: KafkaError | None, _: KafkaMessage) -> None:
            if error is not None:
                failed.append(error)

        for message in messages:
            while True:
                try:
                    self._producer.produce(
                        message.topic,
                        message.value,
                        message.key,
                        headers=message.headers,
                        on_delivery=delivered,
                    )
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    self._producer.poll(0.1)
        if self._producer.flush(60) or failed:
            raise BrokerUnavailable(f"{len(failed)} message(s) not confirmed: {failed[:1]}")

    def close(self) -> None:
        self._producer.flush(30)


class RegisterSink(BaseSink):
    """Collects a checkpoint's messages (all partitions) and, on flush, runs them through the
    hub's registration flow as one batch: register committed, receipts confirmed."""

    def __init__(self, flow: RegistrationFlow) -> None:
        super().__init__()
        self._flow = flow
        self._messages: list[Message] = []
        self._loop = asyncio.new_event_loop()  # the flow's steps are coroutines
        self.flushes = self.events = 0

    def add(
        self,
        value: Any,
        key: Any,
        timestamp: int,
        headers: Any,
        topic: str,
        partition: int,
        offset: int,
    ) -> None:
        # The registrations topics keep the broker's append time: when the hub received the event.
        received_at = dt.datetime.fromtimestamp(timestamp / 1000, dt.UTC)
        self._messages.append(
            Message(Origin(topic, partition, offset), key, value, tuple(headers or ()), received_at)
        )

    def flush(self) -> None:
        messages, self._messages = self._messages, []
        if messages:
            self._loop.run_until_complete(self._flow.process_batch(messages))
            self.flushes += 1
            self.events += len(messages)

    def on_paused(self) -> None:
        self._messages = []  # quixstreams seeks back to the last committed offsets


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--checkpoint-events",
        type=int,
        default=0,
        help="a checkpoint after this many events (default: NIR_BATCH_SIZE)",
    )
    parser.add_argument(
        "--checkpoint-seconds",
        type=float,
        default=0.0,
        help="and at least this often (default: NIR_FETCH_WAIT_SECONDS + NIR_BATCH_WINDOW_SECONDS, "
        "the longest the hub holds an event before deciding it)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    settings = Settings.from_env()
    hub = Hub.from_settings(settings)
    kafka = settings.kafka.librdkafka()
    publisher = ConfirmedProducer(kafka)
    sink = RegisterSink(registration_flow(hub, publisher))
    app = Application(
        broker_address=ConnectionConfig.from_librdkafka_dict(kafka),
        consumer_group=settings.app_id,
        auto_offset_reset="earliest",
        commit_every=args.checkpoint_events or settings.batch_size,
        commit_interval=args.checkpoint_seconds
        or settings.fetch_wait_seconds + settings.batch_window_seconds,
        auto_create_topics=False,  # the admin made them, as for the hub
        use_changelog_topics=False,  # stateless: the register is the state
        state_dir=str(Path(settings.data_dir) / "peer-state"),
        loglevel="WARNING",
        consumer_extra_config={
            "fetch.max.bytes": 4 << 20,
            "max.partition.fetch.bytes": 4 << 20,
            # As the hub's fetches (hub.kafka.transport.HubConsumerThread).
            "fetch.wait.max.ms": round(settings.fetch_wait_seconds * 1000),
            "fetch.min.bytes": settings.fetch_min_bytes,
        },
    )
    topics = [
        app.topic(hub.names.registrations(source.id), key_deserializer="bytes", value_deserializer="bytes")
        for source in hub.registry
    ]
    for topic in topics:
        app.dataframe(topic).sink(sink)
    signal.signal(signal.SIGTERM, lambda *_: app.stop())
    try:
        app.run()
    finally:
        publisher.close()
        if sink.flushes:
            log.warning(
                "%d events in %d checkpoints, %.0f a checkpoint",
                sink.events,
                sink.flushes,
                sink.events / sink.flushes,
            )


if __name__ == "__main__":
    main()
