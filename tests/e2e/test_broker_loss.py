"""A broker lost mid-stream (issue 31): on a cluster of three brokers (deploy/kafka/kafka.sh
`--brokers 3`, secured as the single one is) with replication factor 3, a stream of mixed events
(held ones, duplicates, corrections, annulments) while one broker is killed with SIGKILL and
started again, then the broker that coordinates the worker's consumer group. Every event is in
the register exactly once and has its receipt, the Folkeregister connector's address changes and
position are exact, and neither the worker nor the connector exits. The figures are printed.

NIR_TEST_BROKER_LOSS_EVENTS sets the stream's length (default 20,000)."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime as dt
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy import select

from bench.common import national_ids
from bench.mixed import Sent, mixed_stream
from hub.connectors.fagsystem import FagsystemProducer
from hub.connectors.folkeregister import read_position
from hub.dev.folkeregister_standin import FolkeregisterStandIn, serving
from hub.dev.localrun import (
    LocalBroker,
    WorkerProcess,
    free_port,
    local_admin,
    start_local_broker,
    stop_local_broker,
)
from hub.kafka.admin import config_drift, topic_configs
from hub.kafka.topics import TopicSpec, durability
from hub.register.database import make_session_factory
from hub.register.models import AddressRecord, PersonIdentifier
from tests.conftest import make_settings
from tests.harness import HubHarness, wait_until

EVENTS = int(os.environ.get("NIR_TEST_BROKER_LOSS_EVENTS", "20000"))
BROKERS = 3
DOWN = 8.0  # seconds a killed broker stays down, at least
# The fagsystem's pace: a chunk of 500 events a second, so the stream lasts about 40 s at 20,000
# and both losses fall while events flow, whatever the worker's speed.
CHUNK, CHUNK_SECONDS = 500, 1.0


@dataclasses.dataclass(frozen=True)
class Cluster:
    broker: LocalBroker
    env: dict[str, str]

    def kill(self, node: int) -> None:
        """SIGKILL: the broker's machine gone, nothing flushed, no controlled shutdown."""
        pid = int((self.broker.data_dir / f"node-{node}" / "kafka.pid").read_text())
        os.kill(pid, signal.SIGKILL)

    def start(self, node: int) -> None:
        start_local_broker(self.env, "--node", str(node))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    data_dir = tmp_path_factory.mktemp("kafka-cluster")
    env = {"NIR_KAFKA_PORT": str(free_port(run=2 * BROKERS)), "NIR_KAFKA_DATA_DIR": str(data_dir)}
    broker = start_local_broker(env, "--brokers", str(BROKERS))
    assert len(broker.bootstrap.split(",")) == BROKERS
    yield Cluster(broker, env)
    stop_local_broker(env)


@pytest.fixture
def harness(cluster: Cluster, sqlite_url: str, tmp_path: Path) -> Iterator[HubHarness]:
    settings = dataclasses.replace(
        make_settings(cluster.broker, sqlite_url, tmp_path), replication_factor=BROKERS
    )
    with HubHarness(settings, tmp_path) as harness:
        yield harness


def test_the_hubs_topics_on_three_brokers_take_a_write_only_once_two_hold_it_and_less_is_drift(
    harness: HubHarness,
) -> None:
    topics = [harness.hub.names.registrations("oslo-fagsystem"), harness.hub.names.address_changes]
    configs = asyncio.run(topic_configs(harness.admin.kafka, {t: ["min.insync.replicas"] for t in topics}))
    assert {t: c["min.insync.replicas"] for t, c in configs.items()} == {t: "2" for t in topics}

    by_hand = f"{harness.settings.topic_prefix}.made-by-hand"

    async def create() -> None:
        admin = AIOKafkaAdminClient(**harness.admin.kafka.aiokafka())
        await admin.start()
        try:
            await admin.create_topics(
                [
                    NewTopic(by_hand, 1, 3, topic_configs={"min.insync.replicas": "1"}),
                    NewTopic(f"{by_hand}-3", 1, 3, topic_configs={"min.insync.replicas": "3"}),
                ]
            )
        finally:
            await admin.close()

    asyncio.run(create())
    specs = [TopicSpec(t, 1, durability(BROKERS)) for t in (by_hand, f"{by_hand}-3")]
    [drift] = asyncio.run(config_drift(harness.admin.kafka, specs))  # three is more, not drift
    assert (drift.topic, drift.key, drift.wanted, drift.actual) == (by_hand, "min.insync.replicas", "2", "1")


@dataclasses.dataclass
class Progress:
    """The register's row count, sampled four times a second from a thread."""

    harness: HubHarness
    samples: list[tuple[float, int]] = dataclasses.field(default_factory=list)
    done: threading.Event = dataclasses.field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.done.is_set():
            self.samples.append((time.monotonic(), self.harness.registration_count()))
            time.sleep(0.25)

    def rate(self, start: float, end: float) -> float:
        within = [(t, n) for t, n in self.samples if start <= t <= end]
        if len(within) < 2 or within[-1][0] == within[0][0]:
            return 0.0
        return (within[-1][1] - within[0][1]) / (within[-1][0] - within[0][0])

    def longest_pause(self, start: float, end: float, total: int) -> float:
        """The longest time in [start, end] the register did not grow while work was left."""
        longest, since = 0.0, None
        for t, n in (s for s in self.samples if start <= s[0] <= end):
            if since is None or n != since[1] or n >= total:
                since = (t, n)
            longest = max(longest, t - since[0])
        return longest


def test_a_broker_killed_and_restarted_then_the_group_coordinators_loses_no_event_receipt_or_address(
    cluster: Cluster, harness: HubHarness, tmp_path: Path
) -> None:
    stream = mixed_stream(national_ids(10 * EVENTS), EVENTS)
    accepted = [s.event["eventId"] for s in stream if s.final == "ACCEPTED"]
    stand_in = FolkeregisterStandIn()
    moved: dict[str, str] = {}

    def move_some(count: int) -> None:
        """People early in the stream (known to the register by now) move to Bergen."""
        for sent in (s for s in stream if s.kind == "claim"):
            national_id = sent.event["person"]["nationalId"]
            if national_id not in moved:
                moved[national_id] = "4601"
                stand_in.move(
                    national_id, "4601", dt.date.today() - dt.timedelta(days=1), postal_place="BERGEN"
                )
                count -= 1
                if count == 0:
                    return

    with serving(stand_in) as url:
        worker = harness.start_worker()
        connector_settings = dataclasses.replace(
            harness.settings, folkeregister_url=url, folkeregister_poll_seconds=0.2
        )
        connector = WorkerProcess.connector(connector_settings, tmp_path / "connector.log").start()
        progress = Progress(harness)
        sampler = threading.Thread(target=progress.run, daemon=True)
        sampler.start()
        sent: list[Sent] = []
        publisher = threading.Thread(target=lambda: _publish_in_chunks(harness, stream, sent), daemon=True)
        began = time.monotonic()
        publisher.start()
        try:
            phases = {}

            def sent_share(share: float, what: str, *, down_at_least: float = 0.0) -> float:
                """When the fagsystem has sent `share` of the stream (and a broker has been
                down `down_at_least` seconds): the losses fall while events flow."""
                since = time.monotonic()
                wait_until(
                    lambda: len(sent) >= share * len(stream) and time.monotonic() - since >= down_at_least,
                    timeout=300,
                    what=f"{what} ({share:.0%} of the stream sent)",
                )
                return time.monotonic()

            phases["first kill"] = sent_share(0.2, "the first kill")
            move_some(100)
            cluster.kill(2)
            phases["first restart"] = sent_share(0.45, "the first restart", down_at_least=DOWN)
            move_some(100)
            cluster.start(2)
            coordinator = asyncio.run(_coordinator(harness))
            phases["second kill"] = sent_share(0.55, "the second kill")
            move_some(100)
            cluster.kill(coordinator)
            phases["second restart"] = sent_share(0.8, "the second restart", down_at_least=DOWN)
            cluster.start(coordinator)
            move_some(100)
            publisher.join(timeout=600)
            assert not publisher.is_alive(), "the fagsystem could not send the whole stream"
            wait_until(
                lambda: harness.registration_count() >= len(accepted), timeout=300, what="the whole stream"
            )
            finished = time.monotonic()
            wanted = {number: {municipality} for number, municipality in moved.items()}
            wait_until(lambda: _addresses(harness) == wanted, timeout=120, what="every move in the register")
        finally:
            progress.done.set()
            sampler.join()

        # Neither the worker nor the connector exited on the way.
        assert worker.running and connector.running, harness.worker_logs()[-4000:]
        assert len(sent) == len(stream)
        rows = harness.registrations()
        assert collections.Counter(r.event_id for r in rows) == collections.Counter(accepted)
        records = harness.read_outputs(
            until=lambda rs: (
                {(str(r["eventId"]), r["outcome"]) for r in harness.receipts(rs)}
                >= {(s.event["eventId"], s.final) for s in stream}
            ),
            timeout=120,
        )
        receipts = {(str(r["eventId"]), r["outcome"]) for r in harness.receipts(records)}
        assert receipts >= {(s.event["eventId"], s.final) for s in stream}
        assert {outcome for _, outcome in receipts} <= {"ACCEPTED", "DUPLICATE", "HELD"}
        assert harness.dead_letters(records) == []
        position = asyncio.run(
            read_position(local_admin(harness.settings).kafka, harness.hub.names.connector_position)
        )
        assert position == stand_in.latest_sequence + 1
        connector.stop()

    first, second = phases["first kill"], phases["second kill"]
    print(
        f"\n{len(stream):,} events ({len(accepted):,} rows) on {BROKERS} brokers in "
        f"{finished - began:.0f} s; node 2 killed, then the group's coordinator (node {coordinator})\n"
        f"  before the first kill: {progress.rate(first - 10, first):.0f} rows/s (the last 10 s)\n"
        f"  longest pause after the first kill: {progress.longest_pause(first, second, len(accepted)):.1f} s; "
        f"after the coordinator's: {progress.longest_pause(second, finished, len(accepted)):.1f} s\n"
        f"  after the last restart: {progress.rate(phases['second restart'], finished):.0f} rows/s"
    )


def _publish_in_chunks(harness: HubHarness, stream: list[Sent], sent: list[Sent]) -> None:
    """The fagsystem sends on through the losses over one producer (acks=all, idempotent), a
    chunk a second, each acknowledged by two brokers before the next."""

    async def send() -> None:
        source = "oslo-fagsystem"
        async with FagsystemProducer(
            harness.source_kafka(source), source, topic_prefix=harness.settings.topic_prefix
        ) as producer:
            for start in range(0, len(stream), CHUNK):
                began = time.monotonic()
                chunk = stream[start : start + CHUNK]
                assert {s.event["sourceSystem"] for s in chunk} == {source}
                await producer.send_many_json([s.event for s in chunk])
                sent.extend(chunk)
                await asyncio.sleep(max(0.0, CHUNK_SECONDS - (time.monotonic() - began)))

    asyncio.run(send())


async def _coordinator(harness: HubHarness) -> int:
    """The node that coordinates the worker's consumer group."""
    admin = AIOKafkaAdminClient(**harness.admin.kafka.aiokafka())
    await admin.start()
    try:
        return await admin.find_coordinator(harness.settings.app_id)
    finally:
        await admin.close()


def _addresses(harness: HubHarness) -> dict[str, set[str | None]]:
    """The municipalities of each person's address records (each change of the feed is one
    record: its sequence number is unique), keyed by their fødselsnummer."""
    with make_session_factory(harness.hub.engine)() as session:
        rows = session.execute(
            select(PersonIdentifier.value, AddressRecord.municipality).join(
                AddressRecord, AddressRecord.person_id == PersonIdentifier.person_id
            )
        ).all()
    found: dict[str, set[str | None]] = collections.defaultdict(set)
    for number, municipality in rows:
        found[number].add(municipality)
    return dict(found)
