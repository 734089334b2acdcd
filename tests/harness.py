"""A hub under test: its topics, worker subprocesses, a producer, and what came out."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select

from hub.bootstrap import Hub
from hub.config import Settings
from hub.connectors.fagsystem import FagsystemProducer, SentEvent
from hub.dev.localrun import WorkerProcess, local_admin
from hub.kafka.admin import end_offsets, read_from
from hub.kafka.connection import KafkaConnection
from hub.kafka.principals import prepare_broker
from hub.pipeline.deadletter import read_headers
from hub.register.database import make_session_factory
from hub.register.models import AddressRecord, RegistrationRecord
from hub.schemas.codec import ADDRESS_CHANGE
from hub.schemas.contract import from_json
from tests.conftest import free_port


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@dataclass(frozen=True)
class DeadLetter:
    key: bytes | None
    value: bytes
    headers: dict[str, str]


class HubHarness:
    def __init__(self, settings: Settings, tmp_path: Path) -> None:
        self.settings = settings
        self.hub = Hub.from_settings(settings)
        self.tmp_path = tmp_path
        self.workers: list[WorkerProcess] = []
        # The broker as an operator prepares it: topics, the services' and sources' ACLs.
        self.admin = local_admin(settings)
        asyncio.run(prepare_broker(self.admin, self.hub.registry))
        self.outputs = [
            self.hub.names.dead_letters,
            *(self.hub.names.receipts(s.id) for s in self.hub.registry),
        ]
        self.start_offsets = asyncio.run(end_offsets(self.admin.kafka, self.outputs))

    def __enter__(self) -> HubHarness:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_all()

    # --- processes -------------------------------------------------------------------------

    def start_worker(
        self, *, log_level: str = "info", environment: dict[str, str] | None = None, same_port: bool = False
    ) -> WorkerProcess:
        """Start another `hub worker` in the group (each with its own web port, unless it takes
        the place of one that ended)."""
        log = self.tmp_path / f"worker-{len(self.workers) + 1}.log"
        settings = self.settings
        if self.workers and not same_port:
            settings = dataclasses.replace(settings, web_port=free_port())
        worker = WorkerProcess(settings, log, log_level=log_level, environment=environment or {}).start()
        self.workers.append(worker)
        return worker

    def stop_all(self) -> None:
        for worker in self.workers:
            if worker.running:
                worker.stop()

    def wait_until(self, condition: Callable[[], bool], *, timeout: float, what: str) -> None:
        """`wait_until`, with the end of the worker logs in the failure message."""
        try:
            wait_until(condition, timeout=timeout, what=what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nworker logs (end):\n{self.worker_logs()[-4000:]}") from None

    def worker_logs(self) -> str:
        return "\n".join(w.log_path.read_text(errors="replace") for w in self.workers if w.log_path.exists())

    # --- input -----------------------------------------------------------------------------

    def publish(self, events: list[dict[str, Any]], *, schema_version: int | None = None) -> list[SentEvent]:
        """Send events through the fagsystem producer API; returns where each was written, in order."""

        async def send() -> list[SentEvent]:
            by_source: dict[str, list[int]] = {}
            for index, e in enumerate(events):
                by_source.setdefault(e["sourceSystem"], []).append(index)
            sent: dict[int, SentEvent] = {}
            for source, indexes in by_source.items():
                async with FagsystemProducer(
                    self.source_kafka(source),
                    source,
                    topic_prefix=self.settings.topic_prefix,
                    schema_version=schema_version,
                ) as producer:
                    results = await producer.send_many_json([events[i] for i in indexes])
                sent.update(zip(indexes, results, strict=True))
            return [sent[i] for i in range(len(events))]

        return asyncio.run(send())

    def source_kafka(self, source_id: str) -> KafkaConnection:
        """How a source connects: as its own principal."""
        source = self.hub.registry.get(source_id)
        return self.settings.as_kafka_user(source.user if source else source_id).kafka

    def publish_raw(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        *,
        timestamp_ms: int | None = None,
        kafka: KafkaConnection | None = None,
    ) -> None:
        """Send bytes as they are, as the admin principal unless `kafka` says who, with the
        producer's own timestamp if given."""

        async def send() -> None:
            producer = AIOKafkaProducer(**(kafka or self.admin.kafka).aiokafka(), acks="all")
            await producer.start()
            try:
                await producer.send_and_wait(topic, value, key=key, timestamp_ms=timestamp_ms)
            finally:
                await producer.stop()

        asyncio.run(send())

    def publish_address_change(self, change: dict[str, Any]) -> None:
        version = self.hub.catalog.current(ADDRESS_CHANGE)
        value = self.hub.catalog.encode(ADDRESS_CHANGE, from_json(change, version))
        self.publish_raw(self.hub.names.address_changes, value, change["nationalId"].encode())

    # --- output ----------------------------------------------------------------------------

    def registrations(self) -> list[RegistrationRecord]:
        with make_session_factory(self.hub.engine)() as session:
            return list(session.scalars(select(RegistrationRecord)).all())

    def registration_count(self) -> int:
        with make_session_factory(self.hub.engine)() as session:
            return session.scalar(select(func.count()).select_from(RegistrationRecord)) or 0

    def address_count(self) -> int:
        with make_session_factory(self.hub.engine)() as session:
            return session.scalar(select(func.count()).select_from(AddressRecord)) or 0

    def read_outputs(self, *, until: Callable[[list[Any]], bool], timeout: float = 60.0) -> list[Any]:
        return asyncio.run(read_from(self.admin.kafka, self.start_offsets, until=until, timeout=timeout))

    def receipts(self, records: list[Any]) -> list[dict[str, Any]]:
        return [
            self.hub.catalog.decode(r.value).datum for r in records if r.topic != self.hub.names.dead_letters
        ]

    def dead_letters(self, records: list[Any]) -> list[DeadLetter]:
        return [
            DeadLetter(r.key, r.value, read_headers(r.headers))
            for r in records
            if r.topic == self.hub.names.dead_letters
        ]

    def wait_for_receipts(
        self, count: int, timeout: float = 90.0
    ) -> tuple[list[dict[str, Any]], list[DeadLetter]]:
        """Receipts and dead letters once at least `count` receipts have arrived."""
        records = self.read_outputs(until=lambda rs: len(self.receipts(rs)) >= count, timeout=timeout)
        receipts = self.receipts(records)
        assert len(receipts) >= count, (
            f"only {len(receipts)} of {count} receipts arrived; worker log:\n{self.worker_logs()[-4000:]}"
        )
        return receipts, self.dead_letters(records)


def hub_command(settings: Settings, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `hub ARGS` in a subprocess configured by `settings`, with `stdin` as its input."""
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args],
        env={**os.environ, **settings.to_env()},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def jsonl(events: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)
