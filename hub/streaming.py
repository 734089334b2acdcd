"""What the hub changes in faust-streaming, and why. Each change is a documented subclass wired
in through Faust's own configuration (`hub.app`, `hub.observability`), never a patch of Faust's
modules.

- `HubWorker` never runs Faust's terminal progress spinner. With a log level of WARN or higher,
  Faust's worker sets the root logger to DEBUG so that every log record turns the spinner; every
  library's debug record (aiokafka logs one for each message it sends) is then built and handled,
  which cost the registrations path about a quarter of its rate. A service logs to files; it has
  no terminal to spin.
- `HubPrometheusMonitor` is Faust's Prometheus sensor with the same series and values, cheaper
  per message: the sensor looks up a labelled child (`metric.labels(topic=..., partition=...)`)
  several times for every message, and prometheus_client validates the labels and takes a lock
  on each look-up; here each label set is looked up once and the child kept. The stream's label,
  which Faust derives with a regular expression for every event, is likewise kept per stream.
- `HubConsumer` (through `HubTransport`, the `nirkafka://` broker scheme, registered in Faust's
  `faust.transports` entry-point group by pyproject.toml) hands each fetched message to the
  streams without building four futures for it. Faust's drain loop delivers every message with
  `wait_first(deliver(message), suspend_flow.wait())`, so that a rebalance, which suspends the
  flow, can abandon a delivery stuck on a full stream buffer; `wait_first` wraps each of its
  arguments and the worker's stop and crash events in a task. While the flow is running, the
  delivery is awaited directly instead. A suspended flow, any other call, and any call of a
  later Faust whose drain loop has another shape go to Faust's own `wait_first`.
  What changes: a delivery that began before a rebalance finishes instead of being abandoned, so
  its message can reach the agent after its partition was revoked. Delivery is at least once
  either way; the register answers a second copy as already registered.
- `HubProducer` (the same transport's producer) adds `send_batches`: a batch's receipts and dead
  letters are appended to aiokafka record batches, one run per partition, and handed over a
  batch at a time (aiokafka's public `create_batch`/`send_batch`). Faust's `send` hands over one
  message at a time, each with its own future and accumulator look-up, which cost the
  registrations path a third of its receipt time.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Sequence
from typing import Any
from weakref import WeakKeyDictionary

import faust
from aiokafka.structs import RecordMetadata
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.transport.drivers import aiokafka as kafka_driver
from faust.types import StreamT
from mode.services import WaitArgT, WaitResults
from mode.utils.times import Seconds

from hub.pipeline.ports import Outgoing


class HubWorker(faust.Worker):
    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None  # before Faust's handler, which only spins when there is a spinner
        super().on_setup_root_logger(logger, level)


class HubPrometheusMonitor(PrometheusMonitor):
    def __init__(self, metrics: FaustMetrics, **kwargs: Any) -> None:
        labelled: dict[str, Any] = {
            name: _LabelledOnce(m) for name, m in metrics._asdict().items() if m._labelnames
        }
        super().__init__(metrics=metrics._replace(**labelled), **kwargs)
        self._stream_labels: WeakKeyDictionary[StreamT, str] = WeakKeyDictionary()

    def _stream_label(self, stream: StreamT) -> str:
        label = self._stream_labels.get(stream)
        if label is None:
            label = self._stream_labels[stream] = super()._stream_label(stream)
        return label


class _LabelledOnce:
    """A labelled prometheus_client metric whose children are looked up once per label set."""

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._children: dict[tuple[tuple[str, Any], ...], Any] = {}

    def labels(self, **labels: Any) -> Any:
        key = tuple(labels.items())
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._metric.labels(**labels)
        return child

    def __getattr__(self, name: str) -> Any:
        return getattr(self._metric, name)


class HubConsumer(kafka_driver.Consumer):
    async def wait_first(self, *coros: WaitArgT, timeout: Seconds | None = None) -> WaitResults:
        if timeout is None and len(coros) == 2 and self._is_delivery(coros[1]):
            delivery, flow_suspended = coros
            flow_suspended.close()  # type: ignore[union-attr]  # a coroutine never started
            return WaitResults([delivery], [await delivery], False)  # type: ignore[misc]
        return await super().wait_first(*coros, timeout=timeout)  # type: ignore[arg-type]  # mode's default is None

    def _is_delivery(self, second: WaitArgT) -> bool:
        """Whether this is the drain loop's call (its second argument is a fresh coroutine of
        `self.suspend_flow.wait()`) and the flow is running."""
        return (
            inspect.iscoroutine(second)
            and inspect.getcoroutinestate(second) == inspect.CORO_CREATED
            and second.cr_frame is not None
            and second.cr_frame.f_locals.get("self") is self.suspend_flow
            and not self.suspend_flow.is_set()
            and not self.should_stop
        )


class HubProducer(kafka_driver.Producer):
    async def send_batches(self, messages: Sequence[Outgoing]) -> list[Awaitable[RecordMetadata]]:
        """Queue `messages` as record batches, each partition's in their order; returns one
        future per batch, done when the broker has confirmed it."""
        producer = self._ensure_producer()
        for topic in {m.topic for m in messages}:
            await producer.partitions_for(topic)  # the metadata `key_partition` reads
        by_partition: dict[tuple[str, int], list[Outgoing]] = {}
        for m in messages:
            # aiokafka's default partitioner, as `send` uses it (a message without key: at random).
            partition = self.key_partition(m.topic, m.key).partition  # type: ignore[arg-type]
            by_partition.setdefault((m.topic, partition), []).append(m)
        confirmations: list[Awaitable[RecordMetadata]] = []
        for (topic, partition), run in by_partition.items():
            batch = producer.create_batch()
            for m in run:
                self._send_on_produce_message(
                    key=m.key, value=m.value, partition=partition, timestamp=None, headers=m.headers
                )
                if batch.append(key=m.key, value=m.value, timestamp=None, headers=m.headers) is None:
                    confirmations.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()  # a batch's first record always fits
                    batch.append(key=m.key, value=m.value, timestamp=None, headers=m.headers)
            confirmations.append(await producer.send_batch(batch, topic, partition=partition))
        return confirmations


class HubTransport(kafka_driver.Transport):
    Consumer = HubConsumer
    Producer = HubProducer
