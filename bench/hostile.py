"""Hostile input at volume: how fast a worker works through a large fuzz run (`tests/hostile.py`:
random bytes, garbage behind known fingerprints, absurd but schema-valid events, hostile address
changes and dead letters), against the same number of valid claims in the same run.

For each database: the hostile messages are preloaded on both sources' registrations topics, the
address changes and the dead letters; one worker works through them, and is timed from its start
until every input partition is committed to its end. Then the same for valid claims. It prints
messages/s, the ratio hostile/valid, the CPU per message of the worker, PostgreSQL and the broker,
the worker's peak RSS and log lines, and whether it stayed up.

Then the dead-letter flow alone, in this process (issue 32): a flood's dead letters (eight in
ten undecodable, one in ten an event a rule refused, one in ten that event failing again) made
into tickets in the worker's batches, with the ticket table empty, then filled by the database
itself to each size of --filled: tickets/s at each, and the rate at the largest against the rate
on the empty table. On the table so filled, what the desk's incidents cost: the time to list
every incident, and to resolve the largest (all its tickets, 1,000 per transaction).

    python bench/hostile.py [--messages 50000] [--databases sqlite,postgresql]
        [--parts worker,tickets] [--letters 20000] [--filled 100000,500000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import itertools
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    SOURCE,
    CpuShares,
    admin,
    bench_settings,
    broker,
    claim_values,
    fresh_register,
    machine,
    peak_rss_mib,
    postgres,
    prepare_topics,
    run_benchmark,
)
from hub.bootstrap import Hub
from hub.config import Settings
from hub.dev.localrun import WorkerProcess
from hub.kafka.admin import committed_offsets, end_offsets
from hub.kafka.connection import KafkaConnection
from hub.register.database import make_engine
from hub.schemas.codec import catalog
from hub.sources import SourceRegistry
from hub.support.incidents import resolve_incident
from hub.wiring import dead_letter_flow
from tests.fakes import RecordingPublisher
from tests.hostile import hostile_messages, routed
from tests.ticket_table import fill_tickets, flood

SOURCES = ["oslo-fagsystem", "vestland-fagsystem"]


async def _produce(kafka: KafkaConnection, messages: list[tuple[str, bytes | None, bytes | None]]) -> None:
    producer = AIOKafkaProducer(**kafka.aiokafka(), acks="all", linger_ms=20, max_request_size=2_000_000)
    await producer.start()
    try:
        pending = []
        for topic, key, value in messages:
            pending.append(await producer.send(topic, value, key=key))
            if len(pending) >= 5_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


def _inputs(hub: Hub) -> list[str]:
    names = hub.names
    return [names.address_changes, names.dead_letters, *(names.registrations(s) for s in SOURCES)]


def _drain(hub: Hub, settings: Settings, log: Path, timeout: float) -> tuple[float, CpuShares, float, bool]:
    """Run a worker until every input partition is committed to its end."""
    worker = WorkerProcess(settings, log, log_level="info").start()
    started = time.monotonic()
    cpu = CpuShares.start(worker.process.pid)
    try:
        deadline = started + timeout
        while time.monotonic() < deadline and worker.running:
            ends = asyncio.run(end_offsets(admin(settings), _inputs(hub)))
            done = asyncio.run(committed_offsets(admin(settings), settings.app_id))
            if all(done.get(tp, 0) >= end for tp, end in ends.items() if end):
                break
            time.sleep(0.5)
        seconds = time.monotonic() - started
        cpu.stop()
        rss = peak_rss_mib(worker.process.pid) if worker.running else float("nan")
        stayed_up = worker.running
    finally:
        worker.stop()
    if time.monotonic() >= deadline:
        raise SystemExit(f"not drained within {timeout:.0f} s; see {log}")
    return seconds, cpu, rss, stayed_up


@contextlib.contextmanager
def _database(name: str, work: Path) -> Iterator[str]:
    if name == "sqlite":
        yield f"sqlite:///{work}/register.sqlite3"
    else:
        with postgres() as url:
            yield url


def _worker(database: str, url: str, work: Path, local: Any, messages: int) -> None:
    rates = {}
    for kind in ("hostile", "valid"):
        settings = bench_settings(local, url, work, hold_seconds=2.0, hold_check_seconds=1.0)
        fresh_register(url)
        hub = prepare_topics(settings)
        if kind == "hostile":
            fuzz = hostile_messages(hub.catalog, seed=1, count=messages, sources=SOURCES)
            produced = [(topic, m.key, m.value) for topic, m in routed(fuzz, hub.names, SOURCES)]
        else:
            topic = hub.names.registrations(SOURCE)
            produced = [(topic, k, v) for k, v, _ in claim_values(hub, messages)]
        asyncio.run(_produce(admin(settings), produced))
        log = work / f"worker-{kind}.log"
        seconds, cpu, rss, stayed_up = _drain(hub, settings, log, timeout=1800)
        rates[kind] = len(produced) / seconds
        lines = len(log.read_text(errors="replace").splitlines())
        print(
            f"{database:<10} {kind:<8} {len(produced):>7,} messages in {seconds:6.1f} s: "
            f"{rates[kind]:7,.0f}/s; CPU µs per message: {cpu.per_event(len(produced))}; "
            f"peak RSS {rss:.0f} MiB; {lines} log lines; worker {'stayed up' if stayed_up else 'ENDED'}"
        )
    print(f"{database:<10} hostile/valid rate ratio {rates['hostile'] / rates['valid']:.2f}")


def _ticketing(database: str, url: str, letters: int, filled: list[int]) -> None:
    """The dead-letter flow's tickets/s on the empty table and after each size of `filled`."""
    fresh_register(url)
    settings = dataclasses.replace(Settings(), database_url=url, allow_synthetic_identifiers=True)
    hub = Hub(settings=settings, registry=SourceRegistry.load(settings.sources_file), catalog=catalog())
    flow = dead_letter_flow(hub, RecordingPublisher())
    engine = make_engine(url)
    topic, sent, in_table = hub.names.registrations(SOURCE), 0, 0
    rates = []
    for size in [0, *filled]:
        started = time.perf_counter()
        # On the flood's topic, as a vendor's flood leaves them, at offsets apart from its letters'.
        fill_tickets(engine, in_table + 1, size, topics=(topic,))
        if size:
            print(
                f"{database:<10} filled to {size:,} tickets in {time.perf_counter() - started:.0f} s",
                flush=True,
            )
        in_table = max(in_table, size)
        # Made beforehand: the flood's letters are the broker's work, not the flow's.
        batches = list(_batched(flood(hub.catalog, topic, letters, start=sent), settings.batch_size))
        started = time.perf_counter()
        for batch in batches:
            asyncio.run(flow.process_batch(batch))
        seconds = time.perf_counter() - started
        rates.append(letters / seconds)
        print(
            f"{database:<10} tickets: {letters:,} dead letters with {size:>7,} tickets before them in "
            f"{seconds:5.1f} s: {rates[-1]:6,.0f}/s",
            flush=True,
        )
        sent += letters
    engine.dispose()
    print(
        f"{database:<10} tickets: the rate on the empty table / at {filled[-1]:,}: {rates[0] / rates[-1]:.2f}"
    )
    _incidents(database, hub)


def _incidents(database: str, hub: Hub) -> None:
    """What the desk's incident views cost on the table as the flood left it: the list of every
    incident, then resolving the largest (`resolve_incident`, its batches of 1,000)."""
    window = dt.timedelta(hours=hub.settings.incident_window_hours)
    with hub.unit_of_work() as uow:
        started = time.perf_counter()
        incidents = uow.incidents.find(window=window)
        listed = time.perf_counter() - started
        active = sum(i.tickets for i in incidents)
    print(
        f"{database:<10} incidents: listed {len(incidents)} incident(s) of {active:,} active tickets "
        f"in {listed * 1000:,.0f} ms",
        flush=True,
    )
    largest = max(incidents, key=lambda i: i.tickets)
    started = time.perf_counter()
    batches = list(resolve_incident(hub.unit_of_work, largest, "bench", hub.clock(), username="bench"))
    seconds = time.perf_counter() - started
    print(
        f"{database:<10} incidents: resolved the largest, {sum(batches):,} tickets in {len(batches)} "
        f"transaction(s), in {seconds:.1f} s: {sum(batches) / seconds:,.0f} tickets/s",
        flush=True,
    )


def _batched(messages: Iterator[Any], size: int) -> Iterator[list[Any]]:
    while batch := list(itertools.islice(messages, size)):
        yield batch


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--parts", default="worker,tickets")
    parser.add_argument("--letters", type=int, default=20_000, help="dead letters per size of the table")
    parser.add_argument("--filled", default="100000,500000", help="the ticket table's sizes")
    args = parser.parse_args()
    parts = args.parts.split(",")
    local = broker() if "worker" in parts else None
    print(f"machine: {machine()}")
    for database in args.databases.split(","):
        work = Path(tempfile.mkdtemp(prefix="nir-bench-hostile-"))
        with _database(database, work) as url:
            if "worker" in parts:
                _worker(database, url, work, local, args.messages)
            if "tickets" in parts:
                _ticketing(database, url, args.letters, [int(n) for n in args.filled.split(",")])


if __name__ == "__main__":
    run_benchmark(main)
