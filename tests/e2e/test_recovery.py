"""The register's database is lost: a backup taken while the worker ran, restore, recover, and the
register is what it would have been, each event in it once (`hub backup`, `hub restore`,
`hub recover`; issue 31, "How it is checked").

The stream: `bench.mixed`'s (claims, decisions, starts, hours, ends; duplicates, corrections,
annulments; events held until what they depend on arrives), with rejections every 100th event
(an unknown municipality: a dead letter and a ticket), an event held for good every 250th (an end
with no start) and five messages that do not decode (dead letters and tickets by where they were
read). All are published while the worker runs; the backup is taken in the middle.

"An identical run that lost nothing" is the same run's register just before the loss, once every
message was decided: it is what the hub made of exactly these messages, at exactly these offsets
and broker timestamps, with nothing lost. A second hub on a second database fed the same topic
would differ only in what the comparison ignores anyway (surrogate ids, times of receipt), and
would double the test's time. After restore and recover the register is compared with it table
by table (`TABLES`: every table of the register is compared, or ignored with a reason; a new one
fails `test_every_table_of_the_register_is_compared_or_ignored_with_a_reason` until classified),
each row with surrogate ids replaced by natural keys (a person by their identifiers, a ticket by
its event or its place), and times of receipt and decision left out. The receipts are compared by
the final outcome of each event (or undecodable message): a receipt may come twice after a
recovery, and must then carry an outcome the message already had.

Three variants, on SQLite and PostgreSQL:
- by manifest: the backup taken when half the stream is in the register;
- in flight: the backup taken while a batch is provably in flight (the worker holds it, marked in
  `unfinished_work`, until the backup is done: tests/e2e/faults), and the manifest starts that
  partition again at the mark, not past it;
- by the register, without the manifest, with the catch-up worker killed (SIGKILL) while it holds
  a batch of the catch-up, then another started.

Sizes: the by-manifest variant runs NIR_TEST_RECOVERY_EVENTS events (default 20,000), the other
two min(2,000, that), to keep the file within about five minutes on two cores for both databases.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import Connection, func, select
from sqlalchemy.engine import make_url

from bench.common import national_ids
from bench.mixed import mixed_stream
from hub.dev.localrun import LocalBroker, local_admin
from hub.kafka.admin import end_offsets, read_from
from hub.ops.recovery import Manifest, manifest_path
from hub.register.database import make_session_factory, sqlite_file
from hub.register.migrate import head_revision
from hub.register.models import Base, CaseTicket, HeldEvent, RegistrationRecord, UnfinishedWork
from hub.schemas.codec import REGISTRATION
from hub.schemas.contract import from_json
from tests.conftest import make_settings
from tests.factories import event, synthetic_person
from tests.harness import HubHarness, hub_command

pytestmark = pytest.mark.timeout(600)

EVENTS = int(os.environ.get("NIR_TEST_RECOVERY_EVENTS", "20000"))
SMALL = min(2000, EVENTS)
SOURCE = "oslo-fagsystem"
FAULTS = Path(__file__).resolve().parent / "faults"

# --- the register, table by table ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Compared:
    """How a table's rows are compared: every column as it is, except `dropped` ones (surrogate
    ids, times of receipt or decision), `keyed` ones (a surrogate id replaced by the natural key
    of what it names: "person", "ticket" or "person_event") and `present` ones (a time of
    decision compared as set or not)."""

    dropped: frozenset[str] = frozenset({"id"})
    keyed: tuple[tuple[str, str], ...] = ()
    present: frozenset[str] = frozenset()


def _compared(*dropped: str, keyed: dict[str, str] | None = None, present: tuple[str, ...] = ()) -> Compared:
    return Compared(frozenset({"id", *dropped}), tuple((keyed or {}).items()), frozenset(present))


# Every table of the register: compared (how), or ignored (why). Times of receipt and decision
# differ after a recovery by nature (the worker decided again, later); the broker's own time of
# a message (`received_at` of a registration) and the sender's (`sent_at`) do not, and are compared.
TABLES: dict[str, Compared | str] = {
    "persons": _compared("created_at", keyed={"id": "person"}),
    "person_identifiers": _compared("first_seen_at", keyed={"person_id": "person"}, present=("ceased_at",)),
    "registrations": _compared("accepted_at", keyed={"person_id": "person"}),
    "held_events": _compared("held_at", present=("nudged_at",)),
    "case_tickets": _compared(
        "first_failed_at", "last_failed_at", present=("closed_at", "approved_at", "anonymised_at")
    ),
    "ticket_outcomes": _compared("at", keyed={"ticket_id": "ticket"}),
    "ticket_edits": _compared("edited_at", keyed={"ticket_id": "ticket"}),
    "addresses": _compared("received_at", keyed={"person_id": "person"}),
    "folkeregister_lookups": _compared(
        "requested_at", keyed={"person_id": "person"}, present=("completed_at",)
    ),
    "person_events": _compared("received_at", keyed={"person_id": "person"}),
    "person_event_numbers": _compared(keyed={"person_event_id": "person_event"}),
    # Every batch finished: no mark may be left, before the loss or after the recovery.
    "unfinished_work": _compared("began_at"),
    "person_merges": "merges and splits name persons that no longer exist by their ids only; neither "
    "the registration flow nor this stream makes one (a stream that does needs their natural keys here)",
    "person_merge_moves": "a merge's moved rows, by table and id (see person_merges)",
    "users": "support staff, made by `hub users`, never by the worker",
    "sign_in_attempts": "support staff's sign-ins",
    "user_sessions": "support staff's sessions",
    "pending_sign_ins": "support staff's sign-ins",
    "recovery_codes": "support staff's second factor",
    "oidc_sign_ins": "support staff's sign-ins",
    "audit_log": "what support staff did; not the worker's",
    "access_log": "who read personal data (support staff, the command line); not the worker's",
    "source_states": "sources revoked and restored by an operator; not the worker's",
}

Canonical = dict[str, Counter[tuple[tuple[str, Any], ...]]]


def _value(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, memoryview):
        return bytes(value)
    return value




def canonical(connection: Connection) -> Canonical:
    """Each compared table as a multiset of rows, surrogate ids replaced by natural keys."""
    tables = Base.metadata.tables
    identifiers: dict[int, list[tuple[str, str]]] = {}
    for row in connection.execute(select(tables["person_identifiers"])).mappings():
        identifiers.setdefault(row["person_id"], []).append((row["kind"], row["value"]))
    keys: dict[str, dict[Any, Any]] = {
        "person": {person: tuple(sorted(ids)) for person, ids in identifiers.items()},
        "ticket": {
            row["id"]: (row["original_topic"], row["event_id"])
            if row["event_id"] is not None
            else (row["original_topic"], row["original_partition"], row["original_offset"])
            for row in connection.execute(select(tables["case_tickets"])).mappings()
        },
        "person_event": {
            row["id"]: (row["sequence_number"], row["event_type"])
            for row in connection.execute(select(tables["person_events"])).mappings()
        },
    }
    compared: Canonical = {}
    for name, how in TABLES.items():
        if isinstance(how, str):
            continue
        keyed = dict(how.keyed)
        rows: Counter[tuple[tuple[str, Any], ...]] = Counter()
        for row in connection.execute(select(tables[name])).mappings():
            fields = []
            for column, value in sorted((str(c), v) for c, v in row.items()):
                if column in how.dropped:
                    continue
                if column in keyed:
                    value = keys[keyed[column]].get(value, ("unknown", value)) if value is not None else None
                elif column in how.present:
                    value = value is not None
                fields.append((column, _value(value)))
            rows[tuple(fields)] += 1
        compared[name] = rows
    return compared


def _register(harness: HubHarness) -> Canonical:
    try:
        with harness.hub.engine.connect() as connection:
            return canonical(connection)
    finally:
        harness.hub.engine.dispose()  # the database is about to be lost: hold no connection to it


def _differences(before: Canonical, after: Canonical) -> str:
    """What differs, table by table, a few rows of each side."""
    lines = []
    for table in before.keys() | after.keys():
        lost, gained = before[table] - after[table], after[table] - before[table]
        if lost or gained:
            lines.append(f"{table}: {sum(lost.values())} rows only before, {sum(gained.values())} only after")
            lines += [f"  before: {dict(row)}" for row in list(lost)[:3]]
            lines += [f"  after:  {dict(row)}" for row in list(gained)[:3]]
    return "\n".join(lines)


def _counts(harness: HubHarness) -> tuple[int, int, int, int]:
    """Registrations, held events, tickets, marks of unfinished work."""
    with make_session_factory(harness.hub.engine)() as session:
        counted = tuple(
            session.scalar(select(func.count()).select_from(model)) or 0
            for model in (RegistrationRecord, HeldEvent, CaseTicket, UnfinishedWork)
        )
    harness.hub.engine.dispose()
    return counted  # type: ignore[return-value]


def test_every_table_of_the_register_is_compared_or_ignored_with_a_reason() -> None:
    assert set(TABLES) == set(Base.metadata.tables), "classify these tables in TABLES"
    for name, how in TABLES.items():
        if isinstance(how, Compared):
            columns = set(Base.metadata.tables[name].columns.keys())
            named = how.dropped | how.present | {c for c, _ in how.keyed}
            assert named <= columns, f"{name}: no such columns {named - columns}"


# --- the stream --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Stream:
    """The messages in the order sent (key, value, what identifies the receipt: an event id, or
    None for a message that does not decode) and what the register should hold in the end."""

    messages: list[tuple[bytes, bytes, str | None]]
    finals: dict[str, str]  # event id → the outcome of its last receipt
    rows: int
    held: int
    tickets: int
    ids: list[str]  # every event id in the order sent, duplicates once

    def marker(self, at: float) -> bytes:
        """The event id, as bytes in its message, of a claim or decision about `at` (0 to 1) into
        the stream: it pauses the worker (tests/e2e/faults)."""
        return self.ids[int(at * (len(self.ids) - 1))].encode()


def _stream(harness: HubHarness, count: int) -> Stream:
    def encode(e: dict[str, Any]) -> bytes:
        return harness.hub.catalog.encode(REGISTRATION, from_json(e))

    garbage = {count * k // 6 for k in range(1, 6)}
    mixed = iter(mixed_stream(national_ids(count), count - count // 100 - count // 250 - len(garbage)))
    messages: list[tuple[bytes, bytes, str | None]] = []
    finals: dict[str, str] = {}
    values: dict[str, bytes] = {}  # a duplicate is the same message again, bytes and all
    rows = held = tickets = 0
    for index in range(count):
        if index in garbage:
            messages.append((f"garbage-{index}".encode(), b"\x00not avro " + bytes([index % 256]) * 8, None))
            tickets += 1
            continue
        if index % 100 == 99:  # a municipality that does not exist: rejected, dead-lettered
            e, final = event(synthetic_person(), municipality="9999"), "REJECTED"
            tickets += 1
        elif index % 250 == 124:  # an end with no start: held for good
            e, final = event(synthetic_person(), "INTRODUCTION_PROGRAMME_ENDED"), "HELD"
            held += 1
        else:
            sent = next(mixed, None)
            if sent is None:
                continue
            e, final = sent.event, sent.final
            rows += final == "ACCEPTED"
        event_id = e["eventId"]
        if event_id not in values:
            values[event_id] = encode(e)
        key = str(e["person"]["nationalId"] or e["person"]["dufNumber"]).encode()
        messages.append((key, values[event_id], event_id))
        finals[event_id] = final
    for sent in mixed:  # what is left of the last chains
        values.setdefault(sent.event["eventId"], encode(sent.event))
        messages.append((sent.key, values[sent.event["eventId"]], sent.event["eventId"]))
        finals[sent.event["eventId"]] = sent.final
        rows += sent.final == "ACCEPTED"
    ids = list(dict.fromkeys(i for _, _, i in messages if i is not None and finals[i] == "ACCEPTED"))
    return Stream(messages, finals, rows, held, tickets, ids)


# The second half of the stream is sent in parts over about this many seconds, so that the
# worker is still deciding it when the backup (a process that takes seconds to start on a busy
# machine) reads its snapshot; its last tenth waits for the backup, so that something is surely
# left to catch up on, however fast the worker is.
PACE_SECONDS = 6.0


def _publish(harness: HubHarness, stream: Stream, backed_up: threading.Event) -> dict[tuple[int, int], str]:
    """Send the stream as its source, the first half at once, the second paced (PACE_SECONDS),
    its last tenth once `backed_up` is set; returns where each undecodable message was written."""

    async def send() -> dict[tuple[int, int], str]:
        producer = AIOKafkaProducer(**harness.source_kafka(SOURCE).aiokafka(), acks="all", linger_ms=5)
        await producer.start()
        topic, half, parts = harness.hub.names.registrations(SOURCE), len(stream.messages) // 2, 20
        written = []
        try:
            pieces = [stream.messages[:half]]
            step = -(-(len(stream.messages) - half) // parts)
            pieces += [stream.messages[i : i + step] for i in range(half, len(stream.messages), step)]
            for number, piece in enumerate(pieces):
                if number == 1:  # the first half is in the register before the second comes
                    while harness.registration_count() < stream.rows * 2 // 5:
                        await asyncio.sleep(0.2)
                if number > 1:
                    await asyncio.sleep(PACE_SECONDS / parts)
                if number > parts * 9 // 10:
                    await asyncio.to_thread(backed_up.wait, 240)
                futures = [await producer.send(topic, value, key=key) for key, value, _ in piece]
                written += await asyncio.gather(*futures)
        finally:
            await producer.stop()
        return {
            (m.partition, m.offset): "REJECTED"
            for m, (_, _, event_id) in zip(written, stream.messages, strict=True)
            if event_id is None
        }

    return asyncio.run(send())


def _receipts(harness: HubHarness) -> tuple[dict[Any, str], dict[Any, set[str]], Counter[Any]]:
    """Of every receipt sent so far: the last outcome of each event (an undecodable message by
    where it was read), every outcome each message was given, and how many receipts each event got."""
    topic = harness.hub.names.receipts(SOURCE)
    start = {p: o for p, o in harness.start_offsets.items() if p[0] == topic}
    ends = asyncio.run(end_offsets(harness.admin.kafka, [topic]))
    count = sum(ends[p] - start.get(p, 0) for p in ends)
    records = asyncio.run(
        read_from(harness.admin.kafka, start, until=lambda rs: len(rs) >= count, timeout=120)
    )
    assert len(records) == count
    last: dict[Any, str] = {}
    given: dict[Any, set[str]] = {}
    times: Counter[Any] = Counter()
    for receipt in harness.receipts(records):  # one partition: a source's receipts, in order
        event_id = receipt["eventId"]
        about = (
            str(event_id)
            if event_id is not None
            else (receipt["originalPartition"], receipt["originalOffset"])
        )
        last[about] = receipt["outcome"]
        times[about] += 1
        given.setdefault((about, receipt["originalPartition"], receipt["originalOffset"]), set()).add(
            receipt["outcome"]
        )
    return last, given, times


def _lose_the_database(url: str) -> None:
    file = sqlite_file(url)
    if file is not None:
        for path in (file, file.with_name(file.name + "-wal"), file.with_name(file.name + "-shm")):
            path.unlink(missing_ok=True)
        return
    parsed = make_url(url)
    with psycopg.connect(
        f"host={parsed.host} port={parsed.port} user={parsed.username} dbname=postgres", autocommit=True
    ) as connection:
        connection.execute(f'DROP DATABASE "{parsed.database}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{parsed.database}"')


@dataclasses.dataclass(frozen=True)
class Pause:
    """A worker that holds the batch of the message `marker` is in until told to go on."""

    marker: bytes
    directory: Path

    @property
    def paused(self) -> Path:
        return self.directory / "paused"

    @property
    def go(self) -> Path:
        return self.directory / "go"

    def environment(self) -> dict[str, str]:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = os.pathsep.join(p for p in (str(FAULTS), os.environ.get("PYTHONPATH")) if p)
        return {
            "PYTHONPATH": path,
            "NIR_TEST_PAUSE_MARKER": self.marker.decode(),
            "NIR_TEST_PAUSED_FILE": str(self.paused),
            "NIR_TEST_GO_FILE": str(self.go),
        }

    def where(self, harness: HubHarness) -> tuple[str, int, int]:
        harness.wait_until(self.paused.exists, timeout=120, what="the worker holding the marked batch")
        topic, partition, offset = self.paused.read_text().split()
        return topic, int(partition), int(offset)


# --- the test ----------------------------------------------------------------------------------


def test_a_register_lost_after_a_backup_taken_while_the_worker_ran_is_restored_and_recovered_whole(
    kafka_broker: LocalBroker, database_url: str, tmp_path: Path
) -> None:
    """By the manifest; the variants under faults are in test_recovery_faults.py, a file of its
    own so that the suite's two workers share the recovery tests."""
    lose_restore_recover_and_compare(kafka_broker, database_url, tmp_path, "by-manifest", EVENTS)


def lose_restore_recover_and_compare(
    kafka_broker: LocalBroker, database_url: str, tmp_path: Path, variant: str, count: int
) -> None:
    """The run of the module's docstring, in `variant`, with a stream of about `count` events."""
    settings = make_settings(kafka_broker, database_url, tmp_path)
    with HubHarness(settings, tmp_path) as harness:
        stream = _stream(harness, count)
        backup = tmp_path / "backups" / "register.backup"
        in_flight = Pause(stream.marker(0.75), tmp_path / "in-flight")
        harness.start_worker(environment=in_flight.environment() if variant == "in-flight" else None)

        # The backup is taken while the worker decides the stream.
        backed_up = threading.Event()
        publishing = threading.Thread(target=lambda: written.update(_publish(harness, stream, backed_up)))
        written: dict[tuple[int, int], str] = {}
        publishing.start()
        if variant == "in-flight":
            topic, partition, offset = in_flight.where(harness)
            with make_session_factory(harness.hub.engine)() as session:
                marks = [
                    m.first_offset
                    for m in session.scalars(select(UnfinishedWork))
                    if (m.topic, m.partition) == (topic, partition)
                    and m.first_offset <= offset <= m.last_offset
                ]
            assert len(marks) == 1, "the held batch is marked in the register"
            taken = hub_command(settings, "backup", "--out", str(backup))
            in_flight.go.touch()
        else:
            harness.wait_until(
                lambda: harness.registration_count() >= stream.rows // 2, timeout=240, what="half the stream"
            )
            taken = hub_command(settings, "backup", "--out", str(backup))
        backed_up.set()
        assert taken.returncode == 0, taken.stderr
        publishing.join()
        expected = (stream.rows, stream.held, stream.tickets, 0)
        harness.wait_until(lambda: _counts(harness) == expected, timeout=240, what="every message decided")
        whole = _register(harness)
        finals, given, _ = _receipts(harness)
        assert finals == stream.finals | written  # the run that lost nothing did what the stream says

        manifest = Manifest.read(manifest_path(backup))
        assert manifest.revision == head_revision() and manifest.group == settings.app_id
        assert manifest.group_committed is not None  # the broker answered the backup
        assert harness.hub.names.dead_letters in {t for t, _ in manifest.offsets}
        if variant == "in-flight":
            # That partition starts again at the batch in flight, not past it.
            assert manifest.offsets[(topic, partition)] == marks[0] <= offset
            assert manifest.group_committed.get((topic, partition), 0) <= marks[0]

        admin = local_admin(settings)
        refused = hub_command(admin, "recover", "--manifest", str(manifest_path(backup)))
        assert refused.returncode == 2 and "NIR-RECOVERY-REFUSED" in refused.stderr, refused.stderr

        # The database is lost; the backup is restored, and the group moved back.
        harness.stop_all()
        _lose_the_database(database_url)
        restored = hub_command(settings, "restore", str(backup))
        assert restored.returncode == 0, restored.stderr
        again = hub_command(settings, "restore", str(backup))
        assert again.returncode == 2 and "--force" in again.stderr
        restored_rows = _counts(harness)[0]
        assert 0 < restored_rows < stream.rows
        by = [] if variant == "by-register-with-a-kill" else ["--manifest", str(manifest_path(backup))]
        recovered = hub_command(admin, "recover", *by)
        assert recovered.returncode == 0, recovered.stderr

        if variant == "by-register-with-a-kill":
            # Killed while it holds a batch of the catch-up: the last claim or decision sent is
            # surely after what the backup's register proves.
            catching_up = Pause(stream.ids[-1].encode(), tmp_path / "catch-up")
            worker = harness.start_worker(environment=catching_up.environment())
            catching_up.where(harness)
            assert _counts(harness)[0] < stream.rows and _counts(harness)[3] > 0  # mid-catch-up
            worker.kill()
        harness.start_worker()
        try:  # generous: a busy machine decides a catch-up slowly, and the test asserts no speed
            harness.wait_until(lambda: _counts(harness) == expected, timeout=300, what="the catch-up done")
        except AssertionError as exc:
            raise AssertionError(
                f"registrations, held, tickets, marks: {_counts(harness)}, expected {expected}\n{exc}\n"
                + _differences(whole, _register(harness))
            ) from None
        with contextlib.suppress(AssertionError):  # the comparison below shows what differs
            harness.wait_until(
                lambda: _register(harness) == whole,
                timeout=15,
                what="the register as before",
            )
        after = _register(harness)
        assert after == whole, _differences(whole, after)

        # Receipts: each event's last outcome as before; a receipt that came again (what was
        # decided again) carries an outcome its message already had.
        finals_after, given_after, times = _receipts(harness)
        assert finals_after == finals
        assert given_after == given
        assert any(n > 1 for about, n in times.items() if finals[about] != "HELD")
        assert set(Counter(r["event_id"] for r in _rows(after, "registrations")).values()) == {1}
        assert {r["attempts"] for r in _rows(after, "case_tickets")} == {1}  # each failure counted once


def _rows(register: Canonical, table: str) -> list[dict[str, Any]]:
    return [dict(row) for row, n in register[table].items() for _ in range(n)]
