"""Faust's Prometheus sensor, cheaper per message (`hub.ops.observability` installs it).

- `HubPrometheusMonitor` is Faust's Prometheus sensor with the same series and values, cheaper
  per message. Faust's sensor updates several Prometheus metrics in each per-message hook, and
  prometheus_client validates the labels and takes a lock on every update. Here those hooks only
  count, in plain Python, and `publish` writes the counts into the same metrics: the `/metrics`
  view calls it before each scrape (`hub.ops.observability`), and a rebalance, which clears the
  partition series, calls it before clearing them, as Faust's order of events would have it. The
  event-runtime and send-latency histograms are still observed per event and message. Labelled
  children are looked up once per label set, and the stream's label (a regular expression in
  Faust) once per stream.
"""

from __future__ import annotations

from collections import Counter
from typing import Any
from weakref import WeakKeyDictionary

from aiokafka.structs import RecordMetadata
from faust.sensors.monitor import Monitor
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP, EventT, Message, PendingMessage, ProducerT, StreamT

from hub.kafka.transport import records_in


class HubPrometheusMonitor(PrometheusMonitor):
    def __init__(self, metrics: FaustMetrics, **kwargs: Any) -> None:
        labelled: dict[str, Any] = {
            name: _LabelledOnce(m) for name, m in metrics._asdict().items() if m._labelnames
        }
        super().__init__(metrics=metrics._replace(**labelled), **kwargs)
        self._stream_labels: WeakKeyDictionary[StreamT, str] = WeakKeyDictionary()
        # What the per-message hooks counted since the last `publish`.
        self._new_messages = 0
        self._new_messages_by_topic: Counter[str] = Counter()
        self._new_events = 0
        self._new_events_by_stream: Counter[str] = Counter()
        self._new_sent_by_topic: Counter[str] = Counter()
        self._new_sent = 0
        # Faust's gauge of active events falls on every event out; Monitor's `events_active` only
        # on those with a state. Active messages and the offsets are Monitor's own.
        self._active_events = 0

    def publish(self) -> None:
        """Write what the per-message hooks counted into the Prometheus metrics (before a scrape)."""
        m = self._metrics
        m.messages_received.inc(self._new_messages)
        m.active_messages.set(self.messages_active)
        for topic, count in self._new_messages_by_topic.items():
            m.messages_received_per_topics.labels(topic=topic).inc(count)
        for tp, offset in self.tp_read_offsets.items():
            m.messages_received_per_topics_partition.labels(topic=tp.topic, partition=tp.partition).set(
                offset
            )
        for tp, offset in self.tp_end_offsets.items():
            m.topic_partition_end_offset.labels(topic=tp.topic, partition=tp.partition).set(offset)
        m.total_events.inc(self._new_events)
        m.total_active_events.set(self._active_events)
        for stream, count in self._new_events_by_stream.items():
            m.total_events_per_stream.labels(stream=stream).inc(count)
        for topic, count in self._new_sent_by_topic.items():
            m.topic_messages_sent.labels(topic=f"topic.{topic}").inc(count)
        m.total_sent_messages.inc(self._new_sent)
        self._new_messages = self._new_events = self._new_sent = 0
        self._new_messages_by_topic.clear()
        self._new_events_by_stream.clear()
        self._new_sent_by_topic.clear()

    # The per-message hooks: Faust's Monitor's bookkeeping, and counts for `publish`.

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        Monitor.on_message_in(self, tp, offset, message)
        received = records_in(message)  # a record batch is one Faust message of several records
        self._new_messages += received
        self._new_messages_by_topic[tp.topic] += received

    def on_stream_event_in(
        self, tp: TP, offset: int, stream: StreamT, event: EventT
    ) -> dict[str, Any] | None:
        state = Monitor.on_stream_event_in(self, tp, offset, stream, event)
        self._new_events += 1
        self._active_events += 1
        self._new_events_by_stream[self._events_label(stream)] += 1
        return state

    def on_stream_event_out(
        self, tp: TP, offset: int, stream: StreamT, event: EventT, state: dict[str, Any] | None = None
    ) -> None:
        Monitor.on_stream_event_out(self, tp, offset, stream, event, state)
        self._active_events -= 1
        if state is not None:
            self._metrics.events_runtime_latency.observe(self.secs_to_ms(self.events_runtime[-1]))

    def on_message_out(self, tp: TP, offset: int, message: Message) -> None:
        Monitor.on_message_out(self, tp, offset, message)

    def track_tp_end_offset(self, tp: TP, offset: int) -> None:
        Monitor.track_tp_end_offset(self, tp, offset)

    def on_send_initiated(
        self, producer: ProducerT, topic: str, message: PendingMessage, keysize: int, valsize: int
    ) -> Any:
        self._new_sent_by_topic[topic] += 1
        return Monitor.on_send_initiated(self, producer, topic, message, keysize, valsize)

    def on_send_completed(self, producer: ProducerT, state: Any, metadata: RecordMetadata) -> None:
        Monitor.on_send_completed(self, producer, state, metadata)
        self._new_sent += 1
        self._metrics.producer_send_latency.observe(self.ms_since(state))

    def _clear_partition_related_metrics(self) -> None:
        self.publish()  # what was counted before the rebalance is cleared with the rest, as in Faust
        super()._clear_partition_related_metrics()
        for metric in self._metrics:
            if isinstance(metric, _LabelledOnce):
                metric.forget()  # the children Faust removed would no longer be exported

    def _events_label(self, stream: StreamT) -> str:
        label = self._stream_labels.get(stream)
        if label is None:
            label = self._stream_labels[stream] = f"stream.{self._stream_label(stream)}.events"
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

    def forget(self) -> None:
        self._children.clear()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._metric, name)
