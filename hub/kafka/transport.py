"""The hub's Kafka transport for Faust: what it changes in faust-streaming's aiokafka driver, and
why. Each change is a documented subclass, chosen by the broker URL's scheme (`nirkafka://`,
registered in Faust's `faust.transports` entry-point group by pyproject.toml), never a patch of
Faust's modules. `tests/unit/test_upstream_private_names.py` lists every private name of Faust
and aiokafka it relies on.

- `HubConsumer` (through `HubTransport`, the `nirkafka://` broker scheme, registered in Faust's
  `faust.transports` entry-point group by pyproject.toml) delivers each partition's records of a
  fetch as one Faust message, a `RecordBatch`, instead of one Faust message per record: Faust's
  per-message path (a `ConsumerMessage`, the conductor, a channel event, the stream's iteration
  and acknowledgement, with their sensors) cost more worker CPU per event than deciding the
  event. Faust's commit semantics stay: acknowledging the batch (after its outcomes are
  committed and confirmed) acknowledges each of its records' offsets in Faust's own bookkeeping
  (`HubConsumer.ack`), so Faust commits them all then, and nothing of it before; offsets without
  a record (transaction markers, compaction) become Faust gaps, as Faust's drain loop makes them.
  The agents take the records out (`hub.agents.runner.messages_of`); Faust's event counters
  count batches, its messages-received counters records.
  It also hands each delivery to the streams without building four futures for it. Faust's
  drain loop delivers every message with `wait_first(deliver(message), suspend_flow.wait())`,
  so that a rebalance, which suspends the flow, can abandon a delivery stuck on a full stream
  buffer; `wait_first` wraps each of its arguments and the worker's stop and crash events in a
  task. While the flow is running, the delivery is awaited directly instead. A suspended flow,
  any other call, and any call of a later Faust whose drain loop has another shape go to
  Faust's own `wait_first`.
  What changes: a delivery that began before a rebalance finishes instead of being abandoned, so
  its message can reach the agent after its partition was revoked. Delivery is at least once
  either way; the register answers a second copy as already registered.
- `HubConsumerThread` (the thread in which `HubConsumer` runs aiokafka's consumer) lets the
  broker gather records for a fetch: it answers once it has `NIR_FETCH_MIN_BYTES` of them, or
  after `NIR_FETCH_WAIT_SECONDS`. Faust's consumer asks for an answer as soon as there is one
  record. At 1,000 events/s from producers that send every few milliseconds, nearly every fetch
  then carried one record per partition, and parsing each fetch (aiokafka's protocol is Python)
  and delivering each partition's records through Faust took the cores the decisions needed. In
  three paired runs at 1,000 events/s, gathering for 25 ms took the worker from 754-760 to
  658-666 µs of CPU per event, the broker from 286-310 to 220-238, and the p99 latency from
  244-274 to 128-157 ms. The wait is the most a fetch adds to an event's latency; it replaces
  most of the batch window, which now only gathers the partitions of one fetch into one batch
  (5 ms).
- `HubProducer` (the same transport's producer) adds `send_batches`: a batch's receipts and dead
  letters are appended to aiokafka record batches, one run per partition, and handed over a
  batch at a time (aiokafka's public `create_batch`/`send_batch`). Faust's `send` hands over one
  message at a time, each with its own future and accumulator look-up: 7 % of the worker's time
  on the registrations path, against 2 % now. It tells Faust's sensors of every message, as
  Faust's `send` does: without that, `faust_total_sent_messages_total` stayed at 0.

"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import RecordMetadata
from faust.transport.drivers import aiokafka as kafka_driver
from faust.types import TP, Message
from faust.types.tuples import ConsumerMessage, ack_lock
from mode.services import WaitArgT, WaitResults
from mode.utils.times import Seconds

from hub.pipeline.ports import Outgoing

log = logging.getLogger(__name__)


class RecordBatch(ConsumerMessage):
    """One partition's records of one fetch, delivered to the agents as one Faust message.

    It stands at the offset of its last record. Acknowledging it acknowledges every record's
    offset (`HubConsumer.ack`), so Faust commits them all once it is acknowledged, and nothing of
    it before. `records` are aiokafka's `ConsumerRecord`s, in offset order."""

    __slots__ = ("records",)

    def __init__(self, tp: TP, records: list[Any], generation_id: int | None) -> None:
        last = records[-1]
        super().__init__(
            tp.topic,
            tp.partition,
            last.offset,
            last.timestamp / 1000.0 if last.timestamp is not None else None,  # type: ignore[arg-type]
            last.timestamp_type,
            None,
            None,
            b"",  # the records are in `records`; nothing to decode here
            None,
            0,
            sum(len(r.value or b"") for r in records),
            tp,
            generation_id=generation_id,
        )
        self.records = records


def records_in(message: Message) -> int:
    """How many Kafka records a Faust message carries: a `RecordBatch`'s, or one."""
    return len(message.records) if isinstance(message, RecordBatch) else 1


class HubConsumerThread(kafka_driver.AIOKafkaConsumerThread):
    # Faust has no setting for either: the app's hub settings (`hub.app.create_app`), these for
    # an app without them.
    fetch_wait_seconds: float = 0.025
    fetch_min_bytes: int = 65536

    def _create_worker_consumer(self, transport: Any) -> AIOKafkaConsumer:
        """Faust's consumer, with the broker gathering records for a fetch (see the module's
        notes). aiokafka hands these two to its fetcher when the consumer starts; Faust passes
        neither, so they are set on the consumer it made, which has not started yet."""
        consumer = super()._create_worker_consumer(transport)
        for attribute in ("_fetch_max_wait_ms", "_fetch_min_bytes"):
            if not hasattr(consumer, attribute):  # a later aiokafka: fail at start, not silently
                raise RuntimeError(f"aiokafka's consumer has no {attribute} to set")
        settings = getattr(self.app, "hub_settings", None)
        wait, least = (
            (settings.fetch_wait_seconds, settings.fetch_min_bytes)
            if settings is not None
            else (self.fetch_wait_seconds, self.fetch_min_bytes)
        )
        consumer._fetch_max_wait_ms = round(wait * 1000)
        consumer._fetch_min_bytes = least
        return consumer


class HubConsumer(kafka_driver.Consumer):
    def _new_consumer_thread(self) -> HubConsumerThread:
        return HubConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def ack(self, message: Message) -> bool:
        """Faust's acknowledgement, and for a `RecordBatch` that of each of its records' offsets
        too, in Faust's own bookkeeping (under its lock), so that Faust's commit finds them all
        consecutive."""
        with ack_lock:
            acked = super().ack(message)
            if acked and isinstance(message, RecordBatch):
                tp, committed = message.tp, self._committed_offset[message.tp]
                index, offsets = self._acked_index[tp], self._acked[tp]
                for record in message.records[:-1]:
                    if (committed is None or record.offset >= committed) and record.offset not in index:
                        index.add(record.offset)
                        offsets.append(record.offset)
                        self._n_acked += 1
            return acked

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:  # type: ignore[override]
        """Each partition's records of a fetch as one `RecordBatch`, instead of one Faust message
        per record: Faust's per-message delivery (a `ConsumerMessage`, the conductor, a channel
        event, the stream's iteration and acknowledgement, each with its sensors) cost more
        worker CPU per event than the hub's own decision of it. This is Faust's `getmany`
        with the records taken a partition at a time; the rest of Faust's drain loop (offsets
        read, flow suspended on a rebalance, commits) is unchanged."""
        records, active_partitions = await self._wait_next_records(timeout)
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return
        if not self.flow_active:
            try:  # as Faust: a fetch while the flow is suspended goes back to the committed offsets
                await self.perform_seek()
            except Exception as exc:
                log.warning("seeking back while the flow is suspended failed: %s", type(exc).__name__)
            return
        for tp, fetched in records.items():
            if not fetched:
                continue
            if not self.flow_active or self.app.consumer_generation_id != generation_id:
                break  # a rebalance began: Faust seeks back to the committed offsets
            if active_partitions is None or tp in active_partitions or tp in self._buffered_partitions:
                self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                await self._note_holes(tp, fetched)
                yield tp, RecordBatch(tp, fetched, generation_id)

    async def _note_holes(self, tp: TP, fetched: list[Any]) -> None:
        """Offsets without a record (a transaction's markers, a compacted topic) between the
        records read before and these, or among these, become Faust gaps, as Faust's drain loop
        makes them between two messages, so that Faust's commit passes over them. Then the
        partition counts as read up to the record before the last, so the drain loop, which
        compares the batch's offset (its last record's) with it, sees no gap of its own."""
        previous = self._read_offset[tp]
        if self.app.topics.acks_enabled_for(tp.topic):
            for record in fetched:
                if previous is not None and record.offset - previous > 1:
                    await self._add_gap(tp, previous + 1, record.offset - 1)
                previous = record.offset
        if len(fetched) > 1:
            self._read_offset[tp] = fetched[-2].offset

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
    def _settings_extra(self) -> Mapping[str, Any]:
        # Idempotent always, not only in Faust's exactly-once mode: when a broker is lost and a
        # partition's leader moves, the producer sends again what it had no answer for, and
        # without idempotence a receipt or dead letter the old leader did write is written twice.
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}

    async def send_batches(self, messages: Sequence[Outgoing]) -> list[Awaitable[RecordMetadata]]:
        """Queue `messages` as record batches, each partition's in their order; returns one
        future per batch, done when the broker has confirmed it. Faust's sensors hear of each
        message as Faust's own `send` would tell them (sent, confirmed or failed)."""
        producer = self._ensure_producer()
        sensors = self.app.sensors
        for topic in {m.topic for m in messages}:
            await producer.partitions_for(topic)  # the metadata `key_partition` reads
        by_partition: dict[tuple[str, int], list[Outgoing]] = {}
        partitions: dict[tuple[str, bytes], int] = {}  # a source's receipts all have its key
        for m in messages:
            # aiokafka's default partitioner, as `send` uses it (a message without key: at random).
            if m.key is None:
                partition = self.key_partition(m.topic, m.key).partition  # type: ignore[arg-type]
            else:
                if (m.topic, m.key) not in partitions:
                    partitions[m.topic, m.key] = self.key_partition(m.topic, m.key).partition
                partition = partitions[m.topic, m.key]
            by_partition.setdefault((m.topic, partition), []).append(m)
        confirmations: list[Awaitable[RecordMetadata]] = []
        for (topic, partition), run in by_partition.items():
            batch = producer.create_batch()
            states: list[Any] = []  # the sensors' state of each message in `batch`
            for m in run:
                self._send_on_produce_message(
                    key=m.key, value=m.value, partition=partition, timestamp=None, headers=m.headers
                )
                # Full: hand it over and append to the next (a batch's first record always fits).
                while batch.append(key=m.key, value=m.value, timestamp=None, headers=m.headers) is None:
                    sent = await producer.send_batch(batch, topic, partition=partition)
                    confirmations.append(self._report(sent, states))
                    batch, states = producer.create_batch(), []
                states.append(
                    sensors.on_send_initiated(
                        self,
                        topic,
                        message=None,  # type: ignore[arg-type]  # no PendingMessage: no sensor reads it
                        keysize=len(m.key or b""),
                        valsize=len(m.value),
                    )
                )
            confirmations.append(
                self._report(await producer.send_batch(batch, topic, partition=partition), states)
            )
        return confirmations

    def _report(
        self, sent: asyncio.Future[RecordMetadata], states: list[Any]
    ) -> asyncio.Future[RecordMetadata]:
        """Tell the sensors how each message of a record batch ended, once the broker answers."""
        sensors = self.app.sensors

        def done(future: asyncio.Future[RecordMetadata]) -> None:
            error = asyncio.CancelledError() if future.cancelled() else future.exception()
            for state in states:
                if error is None:
                    sensors.on_send_completed(self, state, future.result())
                else:
                    sensors.on_send_error(self, error, state)

        sent.add_done_callback(done)
        return sent


class HubTransport(kafka_driver.Transport):
    Consumer = HubConsumer
    Producer = HubProducer
