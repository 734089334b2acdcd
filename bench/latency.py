"""Latency: at a fixed publish rate, the time from publishing an event to seeing it committed in
the register (p50, p99), and from Folkeregisteret's feed publishing a move to seeing the address
in the register.

One worker and one Folkeregister connector (against the local stand-in) run as processes, as in
production; a poller reads the register every few milliseconds.

    python bench/latency.py [--rate 200] [--seconds 20] [--database sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

from confluent_kafka import Producer
from sqlalchemy import Select, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    SOURCE,
    CpuShares,
    admin,
    analyze,
    bench_settings,
    broker,
    claim_values,
    fresh_register,
    machine,
    postgres,
    prepare_topics,
    registrations,
    run_benchmark,
)
from hub.bootstrap import Hub
from hub.dev.folkeregister_standin import FolkeregisterStandIn, serving
from hub.dev.localrun import WorkerProcess
from hub.kafka.connection import KafkaConnection
from hub.register.database import make_session_factory
from hub.register.models import AddressRecord, PersonIdentifier, RegistrationRecord


class Poller:
    """Notes when each key first appears in the register.

    `query(after)` selects (id, key) of the rows with an id above `after`: each poll reads only
    what is new, so the poller's own cost does not grow with the register and take the cores
    the worker needs, which reading every key on each poll did (a second of p50 at 1,000/s).
    One worker writes the rows, a batch's in one transaction after the other's, so their ids
    become visible in order."""

    def __init__(self, hub: Hub, query: Callable[[int], Select[tuple[int, str]]]) -> None:
        self.hub, self.query = hub, query
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        highest = 0
        while not self._stop.is_set():
            with make_session_factory(self.hub.engine)() as session:
                rows = session.execute(self.query(highest)).all()
            now = time.monotonic()
            for row_id, key in rows:
                self.seen.setdefault(str(key), now)
                highest = max(highest, row_id)
            time.sleep(0.01)


def percentiles(name: str, latencies: list[float]) -> None:
    ordered = sorted(latencies)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(
        f"{name}: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms (n={len(ordered)})"
    )


def over_time(published: dict[str, float], seen: dict[str, float], slices: int = 10) -> None:
    """The worst latency in each tenth of the run: a stall shows where it happened (a start-up
    cost at the beginning, a periodic one throughout, a backlog growing to the end)."""
    start = min(published.values())
    length = (max(published.values()) - start) / slices or 1.0
    worst = [0.0] * slices
    for event, at in published.items():
        part = min(slices - 1, int((at - start) / length))
        worst[part] = max(worst[part], seen[event] - at)
    print("  worst per tenth of the run (ms): " + " ".join(f"{w * 1000:.0f}" for w in worst))


def publisher(kafka: KafkaConnection) -> Producer:
    """librdkafka's producer (confluent-kafka): aiokafka's, waking once per event, cost half a
    core at 1,000/s, taken from the worker this measures. One for the whole run: a new one
    spends its first half second connecting and registering as an idempotent producer, which
    would be the measured events' p99."""
    return Producer({**kafka.librdkafka(), "acks": "all", "enable.idempotence": True, "linger.ms": 0})


def publish_at_rate(
    producer: Producer, topic: str, values: list[tuple[bytes, bytes, str]], rate: float
) -> dict[str, float]:
    """Publish at `rate` a second, in ticks of `TICK` seconds (the events due by then). Each
    event's time is when it was handed to the producer; every one is confirmed before this
    returns."""
    published: dict[str, float] = {}
    failed: list[object] = []

    def delivered(error: object, _: object) -> None:
        if error is not None:
            failed.append(error)

    start, sent = time.monotonic(), 0
    while sent < len(values):
        due = min(len(values), int((time.monotonic() - start) * rate) + 1)
        now = time.monotonic()
        for key, value, event_id in values[sent:due]:
            published[event_id] = now
            producer.produce(topic, value, key, on_delivery=delivered)
        sent = due
        producer.poll(TICK)  # serves deliveries, and waits out the tick
    if producer.flush(60) or failed:
        raise SystemExit(f"{len(failed)} events not confirmed by the broker")
    return published


TICK = 0.005


def registered(after: int) -> Select[tuple[int, str]]:
    return select(RegistrationRecord.id, RegistrationRecord.event_id).where(RegistrationRecord.id > after)


def fed(after: int) -> Select[tuple[int, str]]:
    """Addresses from Folkeregisteret's feed, by the person's identifier."""
    return (
        select(AddressRecord.id, PersonIdentifier.value)
        .join(AddressRecord, AddressRecord.person_id == PersonIdentifier.person_id)
        .where(AddressRecord.sequence_number > 0, AddressRecord.id > after)
    )


def in_the_hub(hub: Hub, events: Collection[str]) -> list[float]:
    """Seconds from the broker's append (the registration's received_at) to the hub's decision
    (its accepted_at), for `events`: the hub's share of the latency, without the publisher's."""
    query = select(
        RegistrationRecord.event_id, RegistrationRecord.received_at, RegistrationRecord.accepted_at
    )
    with make_session_factory(hub.engine)() as session:
        return [
            (accepted - received).total_seconds()
            for event_id, received, accepted in session.execute(query)
            if event_id in events
        ]


def wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def database(kind: str, work: Path) -> Iterator[str]:
    if kind == "postgresql":
        with postgres() as url:
            yield url
    else:
        yield f"sqlite:///{work}/register.sqlite3"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=200.0, help="events published per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--moves", type=int, default=100, help="Folkeregister moves, at 10 a second")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--no-feed",
        action="store_true",
        help="registrations only: no Folkeregister connector (its look-up of every new person "
        "shares the two cores with the worker) and no feed latency",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nir-bench-"))
    local = broker()
    print(f"machine: {machine()}")
    with database(args.database, work) as url:
        fresh_register(url)
        stand_in = FolkeregisterStandIn()
        with serving(stand_in) as feed_url:
            settings = bench_settings(local, url, work, folkeregister_url=feed_url)
            hub = prepare_topics(settings)
            worker = WorkerProcess(settings, work / "worker.log", log_level="warn").start()
            connector = (
                None if args.no_feed else WorkerProcess.connector(settings, work / "connector.log").start()
            )
            try:
                warm_up = claim_values(hub, args.moves)
                producer = publisher(admin(settings))
                publish_at_rate(producer, hub.names.registrations(SOURCE), warm_up, 1000)
                wait_for(lambda: registrations(hub) >= args.moves, 120, "the worker to start")
                # As autovacuum would within a minute of a register's first rows: without
                # statistics PostgreSQL guesses that `id > :after` is a third of the table and
                # reads it whole on every poll, as much CPU as the worker's writes.
                analyze(url)

                count = int(args.rate * args.seconds)
                values = claim_values(hub, args.moves + count)[args.moves :]
                cpu = CpuShares.start(worker.process.pid)
                with Poller(hub, registered) as poller:
                    published = publish_at_rate(producer, hub.names.registrations(SOURCE), values, args.rate)
                    wait_for(lambda: all(e in poller.seen for e in published), 120, "every event")
                cpu.stop()
                percentiles(
                    f"publish -> committed in the register at {args.rate:g}/s on {args.database}",
                    [poller.seen[e] - t for e, t in published.items()],
                )
                over_time(published, poller.seen)
                percentiles(
                    "  of which the broker's append -> the hub's decision", in_the_hub(hub, published)
                )
                print(f"  CPU microseconds per event meanwhile: {cpu.per_event(len(published))}")

                if connector is None:
                    return
                # Folkeregisteret: the warm-up persons are known; move them one by one.
                national_ids = [key.decode() for key, _, _ in warm_up]
                time.sleep(2 * settings.folkeregister_poll_seconds)  # past their look-ups
                with Poller(hub, fed) as poller:
                    moved: dict[str, float] = {}
                    for national_id in national_ids:
                        moved[national_id] = time.monotonic()
                        stand_in.move(national_id, "4601", dt.date.today())
                        time.sleep(0.1)
                    wait_for(lambda: all(n in poller.seen for n in moved), 120, "every move")
                percentiles(
                    f"feed -> address in the register (connector polls every {settings.folkeregister_poll_seconds:g} s)",
                    [poller.seen[n] - t for n, t in moved.items()],
                )
            finally:
                if connector is not None:
                    connector.stop()
                worker.stop()


if __name__ == "__main__":
    run_benchmark(main)
