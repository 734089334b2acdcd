"""The hub's changes to faust-streaming: its worker (hub.worker), Prometheus sensor (hub.ops.monitor)
and transport (hub.kafka.transport)."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import inspect
import logging
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP
from prometheus_client import CollectorRegistry

from hub.agents.runner import messages_of
from hub.config import Settings
from hub.kafka.transport import HubConsumer, HubConsumerThread, HubTransport, RecordBatch
from hub.ops.monitor import HubPrometheusMonitor
from hub.worker import HubWorker


@pytest.fixture
def root_logger() -> logging.Logger:
    logger = logging.Logger("root-under-test", level=logging.WARNING)
    logger.addHandler(logging.StreamHandler())
    return logger


def test_faust_worker_would_send_every_debug_record_through_the_spinner(root_logger: logging.Logger) -> None:
    # What HubWorker exists to prevent: at WARN, Faust lowers the root logger to DEBUG.
    worker = faust.Worker(faust.App("streaming-test-faust"), loop=None)
    worker.on_setup_root_logger(root_logger, logging.WARNING)
    assert root_logger.level == logging.DEBUG
    assert len(root_logger.handlers) == 2


def test_hub_worker_leaves_the_root_logger_at_the_chosen_level(root_logger: logging.Logger) -> None:
    worker = HubWorker(faust.App("streaming-test-hub"), loop=None)
    worker.on_setup_root_logger(root_logger, logging.WARNING)
    assert root_logger.level == logging.WARNING
    assert len(root_logger.handlers) == 1
    assert worker.spinner is None
    assert not root_logger.isEnabledFor(logging.DEBUG)


def test_hub_worker_freezes_its_start_up_objects_once_started() -> None:
    # Python's full collections then leave them alone (they cost the p99 latency 100-150 ms).
    worker = HubWorker(faust.App("streaming-test-freeze"), loop=None)
    gc.unfreeze()
    try:
        assert gc.get_freeze_count() == 0
        asyncio.run(worker.on_startup_finished())
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_the_app_runs_the_hub_worker_on_its_settings() -> None:
    from hub.app import create_app

    settings = dataclasses.replace(Settings.from_env(), log_repeat_seconds=7.0, shutdown_seconds=3.0)
    app = create_app(settings).app
    assert app.conf.Worker is HubWorker
    worker = HubWorker(app, loop=None)
    assert (worker._setting("log_repeat_seconds"), worker._setting("shutdown_seconds")) == (7.0, 3.0)
    plain = HubWorker(faust.App("streaming-test-plain"), loop=None)  # an app without the hub's settings
    assert plain._setting("shutdown_seconds") == HubWorker.shutdown_seconds


class _Owner:
    """A task that owns a stream (the sensor keys weak references by it)."""


class _Stream:
    """What the sensors read of a stream."""

    def __init__(self, label: str) -> None:
        self.shortlabel = f"Stream: {label}"
        self.task_owner = _Owner()


_TIMINGS = ("faust_events_runtime_ms", "faust_producer_send_latency", "faust_producer_error_send_latency")


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample but creation times, and of the timing histograms only their counts."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created") and (not s.name.startswith(_TIMINGS) or s.name.endswith("_count"))
    }


def _drive(monitor: PrometheusMonitor, offsets: range, *, rebalance_at: int | None = None) -> None:
    streams = [_Stream("registrations"), _Stream("addresses")]
    for offset in offsets:
        if offset == rebalance_at:  # clears the partition series and the per-topic counts
            monitor.on_rebalance_start(SimpleNamespace(rebalancing_count=1))  # type: ignore[arg-type]
        tp = TP(f"topic-{offset % 3}", offset % 2)
        stream = streams[offset % 2]
        message = SimpleNamespace(time_in=None, time_out=None, time_total=None)
        monitor.track_tp_end_offset(tp, offset + 10)
        monitor.on_message_in(tp, offset, message)  # type: ignore[arg-type]
        state = monitor.on_stream_event_in(tp, offset, stream, None)  # type: ignore[arg-type]
        monitor.on_stream_event_out(tp, offset, stream, None, state)  # type: ignore[arg-type]
        if offset % 5:
            monitor.on_message_out(tp, offset, message)  # type: ignore[arg-type]
        if offset % 3 == 0:  # a receipt for it, confirmed (and every seventh refused)
            sent = monitor.on_send_initiated(None, f"receipts-{offset % 2}", None, 0, 10)  # type: ignore[arg-type]
            if offset % 7:
                monitor.on_send_completed(None, sent, None)  # type: ignore[arg-type]
            else:
                monitor.on_send_error(None, RuntimeError(), sent)  # type: ignore[arg-type]


def test_hub_prometheus_monitor_exports_what_fausts_sensor_exports() -> None:
    upstream, hub = CollectorRegistry(), CollectorRegistry()
    faust_monitor = PrometheusMonitor(metrics=FaustMetrics.create(upstream, "faust"))
    hub_monitor = HubPrometheusMonitor(metrics=FaustMetrics.create(hub, "faust"))
    for offsets, rebalance_at in ((range(50), None), (range(50, 80), 64)):  # scraped after each
        _drive(faust_monitor, offsets, rebalance_at=rebalance_at)
        _drive(hub_monitor, offsets, rebalance_at=rebalance_at)
        hub_monitor.publish()  # as the /metrics view does before each scrape
        assert _samples(hub) == _samples(upstream)
    expected = _samples(upstream)
    assert expected[("faust_messages_received_total", ())] == 80
    assert expected[("faust_messages_received_per_topic_total", (("topic", "topic-2"),))] == 5  # since 64
    assert (
        expected[("faust_topic_partition_end_offset", (("partition", "1"), ("topic", "topic-2")))]
        == 77 + 10  # the last offset of that partition, 77
    )
    assert expected[("faust_messages_received_per_topic_total", (("topic", "topic-0"),))] == 5  # not 27
    assert expected[("faust_total_sent_messages_total", ())] == 27 - 4  # 0, 21, 42, 63 refused
    assert expected[("faust_topic_messages_sent_total", (("topic", "topic.receipts-1"),))] == 2  # 69, 75


def test_hub_prometheus_monitor_writes_the_metrics_when_published() -> None:
    registry = CollectorRegistry()
    monitor = HubPrometheusMonitor(metrics=FaustMetrics.create(registry, "faust"))
    _drive(monitor, range(10))
    assert _samples(registry)[("faust_messages_received_total", ())] == 0
    monitor.publish()
    assert _samples(registry)[("faust_messages_received_total", ())] == 10
    monitor.publish()  # counts are published once
    assert _samples(registry)[("faust_messages_received_total", ())] == 10


def test_the_nirkafka_scheme_selects_the_hub_transport_and_consumer() -> None:
    app = faust.App("streaming-test-transport", broker="nirkafka://127.0.0.1:9")
    assert isinstance(app.transport, HubTransport)
    assert isinstance(app.consumer, HubConsumer)


def test_the_broker_gathers_records_for_the_hub_consumers_fetches(monkeypatch: pytest.MonkeyPatch) -> None:
    # Faust's consumer asks for a fetch's answer as soon as there is one record.
    monkeypatch.setattr(HubConsumerThread, "fetch_wait_seconds", 0.03)
    monkeypatch.setattr(HubConsumerThread, "fetch_min_bytes", 4096)
    app = faust.App("streaming-test-fetch", broker="nirkafka://127.0.0.1:9")
    thread = app.consumer._thread  # type: ignore[attr-defined]
    assert isinstance(thread, HubConsumerThread)

    async def made() -> Any:  # aiokafka makes its consumer in a running loop; made, not started
        return thread._create_worker_consumer(app.transport)

    consumer = asyncio.run(made())
    assert (consumer._fetch_max_wait_ms, consumer._fetch_min_bytes) == (30, 4096)


def test_the_workers_producer_is_idempotent_and_waits_for_every_in_sync_replica() -> None:
    """Faust makes its producer idempotent only in its exactly-once mode; the hub's always is,
    so a receipt or dead letter sent again after a broker's loss is written once."""
    app = faust.App("streaming-test-producer", broker="nirkafka://127.0.0.1:9")

    async def made() -> tuple[bool, int]:  # aiokafka makes its producer in a running loop; not started
        producer = app.producer._new_producer()  # type: ignore[attr-defined]
        try:
            return producer._txn_manager is not None, producer._sender._acks  # sequence numbers: idempotent
        finally:
            await producer.stop()

    assert asyncio.run(made()) == (True, -1)


def test_the_app_takes_the_fetch_settings() -> None:
    from hub.app import create_app

    settings = dataclasses.replace(Settings.from_env(), fetch_wait_seconds=0.04, fetch_min_bytes=1234)
    app = create_app(settings).app
    thread = app.consumer._thread  # type: ignore[attr-defined]

    async def made() -> Any:  # aiokafka makes its consumer in a running loop; made, not started
        return thread._create_worker_consumer(app.transport)

    consumer = asyncio.run(made())
    assert (consumer._fetch_max_wait_ms, consumer._fetch_min_bytes) == (40, 1234)


def _consumer() -> HubConsumer:
    consumer = faust.App("streaming-test-consumer", broker="nirkafka://127.0.0.1:9").consumer
    assert isinstance(consumer, HubConsumer)
    return consumer


def test_a_delivery_while_the_flow_runs_is_awaited_in_the_drain_loops_own_task() -> None:
    async def run() -> None:
        consumer = _consumer()
        drain_task = asyncio.current_task()

        async def deliver() -> str:
            assert asyncio.current_task() is drain_task  # not wrapped in a task of its own
            return "delivered"

        flow_wait = consumer.suspend_flow.wait()
        result = await consumer.wait_first(deliver(), flow_wait)
        assert (result.results, result.stopped) == (["delivered"], False)
        assert inspect.getcoroutinestate(flow_wait) == inspect.CORO_CLOSED  # closed, never awaited

    asyncio.run(run())


def test_a_suspended_flow_takes_fausts_own_path_and_abandons_the_delivery() -> None:
    async def run() -> None:
        consumer = _consumer()
        consumer.suspend_flow.set()  # a rebalance is under way
        started = asyncio.Event()

        async def stuck_delivery() -> None:  # e.g. waiting for room in a full stream buffer
            started.set()
            await asyncio.sleep(3600)

        flow_wait = consumer.suspend_flow.wait()
        result = await asyncio.wait_for(consumer.wait_first(stuck_delivery(), flow_wait), timeout=5)
        assert result.done == [flow_wait]  # the suspension won; the delivery was abandoned

    asyncio.run(run())


def _records(topic: str, partition: int, offsets: range) -> list[SimpleNamespace]:
    """aiokafka `ConsumerRecord`s as the consumer fetches them (the broker's append time)."""
    return [
        SimpleNamespace(
            topic=topic,
            partition=partition,
            offset=offset,
            key=f"k{offset}".encode(),
            value=f"v{offset}".encode(),
            headers=[("h", b"x")],
            timestamp=1_700_000_000_000 + offset,
            timestamp_type=1,
        )
        for offset in offsets
    ]


def test_a_record_batch_stands_at_its_last_offset_and_carries_every_record() -> None:
    records = _records("topic-1", 3, range(40, 45))
    batch = RecordBatch(TP("topic-1", 3), records, generation_id=7)
    assert (batch.topic, batch.partition, batch.offset) == ("topic-1", 3, 44)
    assert batch.records == records
    assert batch.generation_id == 7


def test_the_agents_take_a_record_batchs_records_as_their_messages() -> None:
    batch = RecordBatch(TP("topic-1", 3), _records("topic-1", 3, range(40, 43)), generation_id=1)
    messages = messages_of(SimpleNamespace(message=batch))
    assert [(m.origin.topic, m.origin.partition, m.origin.offset) for m in messages] == [
        ("topic-1", 3, 40),
        ("topic-1", 3, 41),
        ("topic-1", 3, 42),
    ]
    assert [m.value for m in messages] == [b"v40", b"v41", b"v42"]
    assert messages[0].headers == (("h", b"x"),)
    assert messages[2].received_at is not None and messages[2].received_at.timestamp() == 1_700_000_000.042


def test_the_monitor_counts_a_record_batchs_records_as_messages_received() -> None:
    registry = CollectorRegistry()
    monitor = HubPrometheusMonitor(metrics=FaustMetrics.create(registry, "faust"))
    tp = TP("topic-1", 0)
    monitor.on_message_in(tp, 9, RecordBatch(tp, _records("topic-1", 0, range(10)), generation_id=1))
    monitor.publish()
    assert _samples(registry)[("faust_messages_received_total", ())] == 10
    assert _samples(registry)[("faust_messages_received_per_topic_total", (("topic", "topic-1"),))] == 10
