"""Latency: at a fixed publish rate, the time from publishing an event to seeing it committed in
the register (p50, p99), and from Folkeregisteret's feed publishing a move to seeing the address
in the register.

One worker and one Folkeregister connector (against the local stand-in) run as processes, as in
production; a poller reads the register every few milliseconds.

    python bench/latency.py [--rate 200] [--seconds 20] [--database sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

from aiokafka import AIOKafkaProducer
from sqlalchemy import Select, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    SOURCE,
    admin,
    bench_settings,
    broker,
    claim_values,
    fresh_register,
    machine,
    postgres,
    prepare_topics,
    registrations,
)
from hub.bootstrap import Hub
from hub.connectors.folkeregister_standin import FolkeregisterStandIn, serving
from hub.kafka_client import KafkaConnection
from hub.localrun import WorkerProcess
from hub.register.models import AddressRecord, PersonIdentifier, RegistrationRecord


class Poller:
    """Notes when each key first appears in the register.

    `query(after)` selects (id, key) of the rows with an id above `after`: each poll reads only
    what is new (and a margin below, for a transaction that took its ids earlier but committed
    later), so the poller's own cost does not grow with the register and take the cores the
    worker needs, which reading every key on each poll did (a second of p50 at 1,000/s)."""

    MARGIN = 2_000  # ids re-read below the highest seen

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
            with self.hub.session_factory() as session:
                rows = session.execute(self.query(highest - self.MARGIN)).all()
            now = time.monotonic()
            for row_id, key in rows:
                self.seen.setdefault(str(key), now)
                highest = max(highest, row_id)
            time.sleep(0.005)


def percentiles(name: str, latencies: list[float]) -> None:
    ordered = sorted(latencies)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(
        f"{name}: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms (n={len(ordered)})"
    )


async def publish_at_rate(
    kafka: KafkaConnection, topic: str, values: list[tuple[bytes, bytes, str]], rate: float
) -> dict[str, float]:
    producer = AIOKafkaProducer(**kafka.aiokafka(), acks="all", enable_idempotence=True, linger_ms=0)
    await producer.start()
    published: dict[str, float] = {}
    try:
        start = time.monotonic()
        pending = []
        for index, (key, value, event_id) in enumerate(values):
            delay = start + index / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            published[event_id] = time.monotonic()
            pending.append(await producer.send(topic, value, key=key))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return published


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
    with hub.session_factory() as session:
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
            connector = WorkerProcess.connector(settings, work / "connector.log").start()
            try:
                warm_up = claim_values(hub, args.moves)
                asyncio.run(publish_at_rate(admin(settings), hub.names.registrations(SOURCE), warm_up, 1000))
                wait_for(lambda: registrations(hub) >= args.moves, 120, "the worker to start")

                count = int(args.rate * args.seconds)
                values = claim_values(hub, args.moves + count)[args.moves :]
                with Poller(hub, registered) as poller:
                    published = asyncio.run(
                        publish_at_rate(admin(settings), hub.names.registrations(SOURCE), values, args.rate)
                    )
                    wait_for(lambda: all(e in poller.seen for e in published), 120, "every event")
                percentiles(
                    f"publish -> committed in the register at {args.rate:g}/s on {args.database}",
                    [poller.seen[e] - t for e, t in published.items()],
                )
                percentiles(
                    "  of which the broker's append -> the hub's decision", in_the_hub(hub, published)
                )

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
                connector.stop()
                worker.stop()


if __name__ == "__main__":
    main()
