"""What the benchmarks share: a broker, a PostgreSQL cluster, isolated settings, synthetic
events, and a worker whose committed rows are counted and receipts read."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime as dt
import os
import platform
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import func, select, text

from hub.bootstrap import Hub
from hub.config import LOCAL_KAFKA_DIR, Settings
from hub.dev.localrun import (
    LocalBroker,
    WorkerProcess,
    free_port,
    isolated_settings,
    local_admin,
    local_broker_answers,
    start_local_broker,
)
from hub.domain.identifiers import make_national_id
from hub.kafka.admin import delete_topics_with_prefix, end_offsets
from hub.kafka.connection import KafkaConnection
from hub.kafka.principals import prepare_broker
from hub.register.database import make_engine, make_session_factory
from hub.register.migrate import upgrade
from hub.register.models import HeldEvent, RegistrationRecord
from hub.schemas.codec import REGISTRATION
from hub.schemas.contract import from_json

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "oslo-fagsystem"


def machine() -> str:
    cpus = os.cpu_count()
    return f"{platform.node()}: {cpus} cores, Python {platform.python_version()}, {dt.date.today()}"


def broker() -> LocalBroker:
    """The local broker (deploy/kafka/kafka.sh's defaults), started if it does not answer."""
    local = LocalBroker(Settings.from_env().kafka_bootstrap, LOCAL_KAFKA_DIR)
    return local if local_broker_answers(local.settings()) else start_local_broker()


def admin(settings: Settings) -> KafkaConnection:
    """The local broker's admin: the benchmarks prepare and fill topics as it."""
    return local_admin(settings).kafka


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="nir-bench-pg-")
    script = ROOT / "deploy" / "postgres" / "postgres.sh"
    url = subprocess.run(
        ["bash", str(script), "start", directory, str(free_port())],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    try:
        yield url
    finally:
        subprocess.run(["bash", str(script), "stop", directory], capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)


_RUNS: list[Settings] = []  # the settings `bench_settings` gave, whose topics `run_benchmark` deletes


# What `isolated_settings` and the local broker decide for a run, whatever the environment says.
_RUN_OWN = {
    "database_url",
    "topic_prefix",
    "app_id",
    "allow_synthetic_identifiers",
    "web_port",
    "connector_metrics_port",
    "data_dir",
}


def bench_settings(broker: LocalBroker, database_url: str, work: Path, **changes: Any) -> Settings:
    """Settings for one benchmark run, with topics of its own (deleted by `run_benchmark`), and
    the hub's tuning from the environment where it is set, so that a lever can be measured
    against its default: `NIR_BATCH_WINDOW_SECONDS=0.05 python bench/latency.py`."""
    environment, defaults = Settings.from_env(), Settings()
    tuned = {
        field.name: getattr(environment, field.name)
        for field in dataclasses.fields(Settings)
        if getattr(environment, field.name) != getattr(defaults, field.name)
        and field.name not in _RUN_OWN
        and not field.name.startswith("kafka_")
    }
    settings = isolated_settings(broker, database_url, work, label="bench", **{**tuned, **changes})
    _RUNS.append(settings)
    return settings


def run_benchmark(main: Callable[[], None]) -> None:
    """Run a benchmark's `main`, then delete the topics its runs made: the local broker lives on
    between benchmarks, and one that kept every run's topics (1,800 partitions after a day of
    measuring) spent a tenth of a core on them in every later measurement. Also when the run is
    terminated (`timeout`, a CI job's end): SIGTERM then ends it as an exception would."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        main()
    finally:
        prefixes = tuple(sorted({settings.topic_prefix + "." for settings in _RUNS}))
        if prefixes:
            try:
                asyncio.run(delete_topics_with_prefix(admin(_RUNS[0]), prefixes))
            except Exception as exc:  # the figures are printed already; say what is left behind
                print(f"the topics of {', '.join(prefixes)} were not deleted: {type(exc).__name__}")


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def fresh_register(url: str) -> None:
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()


def analyze(url: str) -> None:
    """Gather the register's statistics for the query planner (ANALYZE)."""
    engine = make_engine(url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("ANALYZE"))
    engine.dispose()


def preload_register(url: str, persons: int) -> None:
    """Fill a fresh PostgreSQL register with `persons` persons, each with an identifier and a
    registration (a training claim), as a register in use holds them: the write path's indexes
    are as large as they would be. Their identifiers (11 digits from 9) are no real number's, so
    no event of a stream finds them. Written by the database itself, in seconds."""
    if not persons:
        return
    if not url.startswith("postgresql"):
        raise SystemExit("a preloaded register is made on PostgreSQL only")
    statements = [
        "INSERT INTO persons (id, created_at) SELECT n, now() FROM generate_series(1, :n) n",
        "INSERT INTO person_identifiers (person_id, kind, value, first_seen_at, number_kind) "
        "SELECT n, 'national_id', '9' || lpad(n::text, 10, '0'), now(), 'fodselsnummer' "
        "FROM generate_series(1, :n) n",
        "INSERT INTO registrations (event_id, person_id, action, registration_key, event_type, fact_date, "
        "sent_at, source_system, municipality, payload, warnings, late, writer_schema, topic, partition, "
        '"offset", accepted_at, received_at) '
        "SELECT md5(n::text)::uuid::text, n, 'REGISTER', md5(n::text)::uuid::text, 'TRAINING_CLAIM', "
        "date '2026-01-05', now(), 'oslo-fagsystem', '0301', '{\"claimedWithinDeadline\": true}', '[]', "
        "false, 'registration.v1', 'preloaded', 0, n, now(), now() FROM generate_series(1, :n) n",
        "SELECT setval(pg_get_serial_sequence('persons', 'id'), :n)",
    ]
    engine = make_engine(url)
    started = time.perf_counter()
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement), {"n": persons})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))
    engine.dispose()
    print(
        f"  register preloaded with {persons:,} persons in {time.perf_counter() - started:.0f} s", flush=True
    )


def national_ids(count: int) -> Iterator[str]:
    """Distinct synthetic fødselsnumre."""
    day = dt.date(1960, 1, 1)
    produced = 0
    while produced < count:
        for individual in range(500, 1000):
            number = make_national_id(day, individual)
            if number is not None:
                yield number
                produced += 1
                if produced == count:
                    return
        day += dt.timedelta(days=1)


def claim_values(hub: Hub, count: int) -> list[tuple[bytes, bytes, str]]:
    """`count` valid TRAINING_CLAIM events of distinct persons, encoded: (key, value, event id)."""
    fact_date = dt.date.today() - dt.timedelta(days=10)
    template = from_json(
        {
            "eventId": str(uuid.uuid4()),
            "eventType": "TRAINING_CLAIM",
            "factDate": fact_date.isoformat(),
            "sentAt": dt.datetime.now(dt.UTC).isoformat(),
            "sourceSystem": SOURCE,
            "municipality": "0301",
            "person": {"nationalId": "x", "dufNumber": None},
            "payload": {"claimedWithinDeadline": True},
        }
    )
    values = []
    for national_id in national_ids(count):
        event_id = uuid.uuid4()
        datum = {**template, "eventId": event_id, "person": {"nationalId": national_id, "dufNumber": None}}
        values.append((national_id.encode(), hub.catalog.encode(REGISTRATION, datum), str(event_id)))
    return values


def prepare_topics(settings: Settings) -> Hub:
    """The topics, and the worker's and sources' ACLs, as the admin prepares them."""
    hub = Hub.from_settings(settings)
    asyncio.run(prepare_broker(local_admin(settings), hub.registry))
    return hub


async def produce(kafka: KafkaConnection, topic: str, values: list[tuple[bytes, bytes, str]]) -> None:
    producer = AIOKafkaProducer(
        **kafka.aiokafka(), acks="all", linger_ms=20, max_batch_size=1 << 20, enable_idempotence=True
    )
    await producer.start()
    try:
        pending = []
        for key, value, _ in values:
            pending.append(await producer.send(topic, value, key=key))
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


def registrations(hub: Hub, after: int = 0) -> int:
    """Registration rows with an id above `after` (the last id of a preloaded register): a range
    of the primary key, so polling costs what is new, not the whole register."""
    with make_session_factory(hub.engine)() as session:
        query = select(func.count()).select_from(RegistrationRecord).where(RegistrationRecord.id > after)
        return session.scalar(query) or 0


def last_registration_id(hub: Hub) -> int:
    with make_session_factory(hub.engine)() as session:
        return session.scalar(select(func.max(RegistrationRecord.id))) or 0


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set size (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds() -> dict[tuple[int, str], float]:
    """User and system CPU seconds of every process on the machine, by (pid, name)."""
    ticks = os.sysconf("SC_CLK_TCK")
    seconds: dict[tuple[int, str], float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # ended meanwhile
        name, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        seconds[(int(entry.name), name)] = (int(fields[11]) + int(fields[12])) / ticks
    return seconds


def machine_busy_seconds() -> float:
    """CPU seconds the machine has spent busy (all cores), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    return (sum(values) - values[3] - values[4]) / ticks  # all but idle and iowait


@dataclasses.dataclass
class CpuShares:
    """Where the machine's CPU time went between two moments, by who spent it."""

    worker_pid: int
    before: dict[tuple[int, str], float]
    busy_before: float
    by_whom: dict[str, float] = dataclasses.field(default_factory=dict)

    @classmethod
    def start(cls, worker_pid: int) -> CpuShares:
        return cls(worker_pid, cpu_seconds(), machine_busy_seconds())

    def stop(self) -> None:
        after, busy = cpu_seconds(), machine_busy_seconds()
        spent: dict[str, float] = {"worker": 0.0, "PostgreSQL": 0.0, "broker": 0.0, "this benchmark": 0.0}
        for (pid, name), seconds in after.items():
            who = self._whose(pid, name)
            if who:
                spent[who] += seconds - self.before.get((pid, name), 0.0)
        spent["kernel and the rest"] = max(0.0, busy - self.busy_before - sum(spent.values()))
        self.by_whom = spent

    def _whose(self, pid: int, name: str) -> str | None:
        if pid == self.worker_pid:
            return "worker"
        if pid == os.getpid():
            return "this benchmark"  # polling the register
        if name.startswith("postgres"):
            return "PostgreSQL"
        return "broker" if name == "java" else None

    def per_event(self, events: int) -> str:
        return ", ".join(f"{who} {seconds / events * 1e6:,.0f}" for who, seconds in self.by_whom.items())


@dataclasses.dataclass
class WorkerRun:
    events: int
    seconds: float
    peak_rss_mib: float
    cpu: CpuShares
    outcomes: collections.Counter[str]  # every receipt of the run, by outcome (a held event has two)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else float("nan")


@dataclasses.dataclass
class Receipts:
    outcomes: collections.Counter[str]  # every receipt, by outcome (a held event has two)
    answered: int  # events with their final receipt


async def read_receipts(
    hub: Hub, settings: Settings, start: dict[tuple[str, int], int], events: int, timeout: float
) -> Receipts:
    """The receipts the worker sent, from `start` (where their topic ended before it started),
    read until every one of the topic's `events` has its final receipt, any but HELD (a held
    event gets HELD first, and its final receipt when it is released or dead-lettered), or
    `timeout` seconds have passed."""
    consumer = AIOKafkaConsumer(**admin(settings).aiokafka(), enable_auto_commit=False)
    await consumer.start()
    outcomes: collections.Counter[str] = collections.Counter()
    final: set[tuple[str, int, int]] = set()  # the events answered for good, by origin
    try:
        consumer.assign([TopicPartition(t, p) for t, p in start])
        for (topic, partition), offset in start.items():
            consumer.seek(TopicPartition(topic, partition), offset)
        deadline = time.monotonic() + timeout
        while len(final) < events and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200, max_records=10_000)).values():
                for record in records:
                    receipt = hub.catalog.decode(record.value).datum
                    outcomes[receipt["outcome"]] += 1
                    if receipt["outcome"] != "HELD":
                        final.add(
                            (
                                receipt["originalTopic"],
                                receipt["originalPartition"],
                                receipt["originalOffset"],
                            )
                        )
        return Receipts(outcomes, len(final))
    finally:
        await consumer.stop()


def run_worker_until(
    hub: Hub,
    settings: Settings,
    expected: int,
    log: Path,
    timeout: float,
    *,
    events: int | None = None,
    stalled: float = 60.0,
    program: tuple[str, ...] | None = None,
) -> WorkerRun:
    """Start a worker on a preloaded topic of `events` messages (default: `expected`) and time it
    from its first committed row until the register has the `expected` rows the stream should
    leave and holds no event back; then, the clock stopped, read its receipts until every event
    has its final one (`read_receipts`), before the worker is stopped.

    Not every event leaves a row when it is answered (a duplicate leaves none, a held event one
    later), so the events timed are the topic's less the first rows' share of them. A stream
    that leaves fewer rows than expected (a rejection) ends the run once no row came for
    `stalled` seconds, with the receipts read so far.

    `program` runs another consumer in the worker's place, with the worker's settings (the
    peer, `bench/peer_quixstreams.py`)."""
    events = expected if events is None else events
    start = asyncio.run(end_offsets(admin(settings), [hub.names.receipts(SOURCE)]))
    preloaded = last_registration_id(hub)
    worker = WorkerProcess(settings, log, log_level="warn")
    if program is not None:
        worker = dataclasses.replace(worker, program=program, command=())
    worker.start()
    try:
        deadline = time.monotonic() + timeout
        first_at, first_count = None, 0
        count, held = 0, 0
        progress_at = time.monotonic()
        cpu = CpuShares.start(worker.process.pid)
        while time.monotonic() < deadline and worker.running:
            now, latest = time.monotonic(), registrations(hub, preloaded)
            if latest != count:
                count, progress_at = latest, now
            if first_at is None and count > 0:
                first_at, first_count = now, count
                cpu = CpuShares.start(worker.process.pid)
            if count >= expected:
                held = held_events(hub)
                if held == 0:
                    break
            if first_at is not None and now - progress_at > stalled:
                break
            time.sleep(0.05)
        finished = time.monotonic()
        cpu.stop()
        rss = peak_rss_mib(worker.process.pid) if worker.running else float("nan")
        receipts = asyncio.run(read_receipts(hub, settings, start, events, stalled))
    finally:
        worker.stop()
    if count < expected or held or receipts.answered < events:
        raise SystemExit(
            f"the worker wrote {count} of {expected} rows, left {held} events held and answered "
            f"{receipts.answered} of {events} events for good in time (receipts: {dict(receipts.outcomes)}); "
            f"see {log}"
        )
    assert first_at is not None
    timed = events - round(first_count * events / expected)
    return WorkerRun(timed, finished - first_at, rss, cpu, receipts.outcomes)


def held_events(hub: Hub) -> int:
    with make_session_factory(hub.engine)() as session:
        return session.scalar(select(func.count()).select_from(HeldEvent)) or 0


@dataclasses.dataclass(frozen=True)
class RegisterState:
    rows: int
    held: int  # events still held
    rows_in_batches: int  # rows that share their accepted_at with others: written by the batch path


def register_state(hub: Hub, preloaded: int = 0) -> RegisterState:
    """What the register holds after a run. The batch path stamps every row of a batch with one
    moment and the one-by-one path each row with its own, so rows sharing their accepted_at were
    written by the batch path (about: a batch that accepted one event counts as one by one). Rows
    up to the id `preloaded` were there before the run."""
    with make_session_factory(hub.engine)() as session:
        shared = (
            select(func.count().label("n"))
            .select_from(RegistrationRecord)
            .where(RegistrationRecord.id > preloaded)
            .group_by(RegistrationRecord.accepted_at)
            .subquery()
        )
        in_batches = session.scalar(select(func.coalesce(func.sum(shared.c.n), 0)).where(shared.c.n > 1)) or 0
    return RegisterState(registrations(hub, preloaded), held_events(hub), in_batches)


@dataclasses.dataclass
class Preloaded:
    work: Path
    broker: LocalBroker
    settings: Settings  # of the preloading run: its topic prefix names the preloaded topics
    hub: Hub
    topic: str
    events: int  # messages on the topic


def preload(
    events: int,
    values: Callable[[Hub, int], list[tuple[bytes, bytes, str]]] = claim_values,
    *,
    what: str = "events",
    announce: bool = True,
) -> Preloaded:
    """A broker, fresh topics, and `values(hub, events)` on the source topic (default: `events`
    valid claims of distinct persons). `announce` prints the machine first."""
    work = Path(tempfile.mkdtemp(prefix="nir-bench-"))
    local = broker()
    settings = bench_settings(local, f"sqlite:///{work}/unused.sqlite3", work)
    hub = prepare_topics(settings)
    topic = hub.names.registrations(SOURCE)
    if announce:
        print(f"machine: {machine()}")
    started = time.perf_counter()
    messages = values(hub, events)
    print(f"preloading {len(messages)} {what} on {topic} ...", flush=True)
    asyncio.run(produce(admin(settings), topic, messages))
    print(f"  encoded and produced in {time.perf_counter() - started:.1f} s", flush=True)
    return Preloaded(work, local, settings, hub, topic, len(messages))
