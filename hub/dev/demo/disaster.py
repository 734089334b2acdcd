"""`hub demo --disaster`: after the demo, the register's database is lost, and restored and
recovered, in one command.

With the demo's worker running, the register is backed up (`hub backup`); more events follow
(`hub/dev/demo/after_backup.jsonl`: new persons' claims and decisions, a duplicate, a rejection and an
event held for want of its start), then the worker is stopped and the demo's register deleted.
The backup is restored (`hub restore`), the consumer group moved back as the admin by the
backup's manifest (`hub recover --manifest`), and the worker started again decides once more
what came after the backup. It prints each step with its figures, and whether the register
equals what it was before the loss: its registrations (each with the topic, partition and offset
it came from), held events and tickets, without surrogate ids or times, as the recovery tests
compare it (tests/e2e/test_recovery.py).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka.admin import OffsetSpec

from hub.bootstrap import Hub
from hub.config import Settings
from hub.connectors.receipts import decode_receipt
from hub.dev.localrun import WorkerProcess, local_admin
from hub.kafka.admin import end_offsets, read_from
from hub.ops.recovery import GroupAdmin, Move, hub_topics, manifest_path, recover, restore_backup, take_backup

AFTER_BACKUP = Path(__file__).resolve().parent / "after_backup.jsonl"
BACKUP = Path("var/demo/backup/register.sqlite3")
REGISTER = Path("var/demo/register.sqlite3")  # the demo's (`demo_settings`)


@dataclass(frozen=True)
class RegisterState:
    """What the register holds, without surrogate ids or times: each registration by event id
    with where it came from, each held event, each ticket with its status and attempts."""

    registrations: Counter[str]
    origins: dict[str, tuple[str, int, int]]
    held: Counter[str]
    tickets: Counter[tuple[Any, ...]]

    def differences(self, other: RegisterState) -> list[str]:
        """What differs from `other`, by name (none: the two are equal)."""
        return [
            name
            for name in ("registrations", "origins", "held", "tickets")
            if getattr(self, name) != getattr(other, name)
        ]

    def describe(self) -> str:
        return (
            f"{sum(self.registrations.values())} registrations, {sum(self.held.values())} held, "
            f"{sum(self.tickets.values())} tickets"
        )


def register_state(hub: Hub) -> RegisterState:
    with hub.unit_of_work() as uow:
        contents = uow.register.contents()
    rows = contents.registrations
    state = RegisterState(
        registrations=Counter(event_id for event_id, *_ in rows),
        origins={event_id: (topic, partition, offset) for event_id, topic, partition, offset in rows},
        held=Counter(contents.held),
        tickets=Counter(contents.tickets),
    )
    hub.engine.dispose()  # the register's file is deleted and replaced below
    return state


def offsets_back(moves: list[Move]) -> dict[str, int]:
    """Per topic, how many offsets the group was moved back (a partition it had no committed
    offset on counts from where it is now read)."""
    back: Counter[str] = Counter()
    for m in moves:
        if m.committed is not None and m.committed > m.to:
            back[m.topic] += m.committed - m.to
    return dict(back)


def receipts_again(
    hub: Hub, records: list[Any], origin_of: Callable[[Hub, Any], tuple[str, int, int]]
) -> tuple[int, int]:
    """Of the events answered more than once among `records`, how many, and how many of them
    got the same final outcome each time (a HELD receipt comes before a held event's final one,
    and is not an outcome)."""
    outcomes: dict[tuple[str, int, int], list[str]] = {}
    for r in records:
        if r.topic != hub.names.dead_letters:
            outcome = decode_receipt(hub.catalog, r.value).outcome
            outcomes.setdefault(origin_of(hub, r), []).append(outcome)
    again = [o for o in outcomes.values() if len(o) > 1]
    return len(again), sum(len(set(o)) == 1 for o in again)


def run_disaster(
    hub: Hub,
    worker: WorkerProcess,
    watched_from: dict[tuple[str, int], int],
    publish: Callable[[Path], set[tuple[str, int, int]]],
    origin_of: Callable[[Hub, Any], tuple[str, int, int]],
    timeout: float,
) -> int:
    """The disaster after the demo (module docstring); `worker` is the demo's, running, and is
    stopped here. `watched_from` is where the receipts' and dead letters' topics began; `publish`
    sends a file of events as the demo sends its sample. Returns the exit code."""
    settings = hub.settings
    admin = local_admin(settings)
    print()
    print("disaster")

    manifest = asyncio.run(take_backup(hub, BACKUP))
    backed_up = register_state(hub)
    print(f"  backup         {BACKUP} taken while the worker ran: {backed_up.describe()}")
    print(f"                 manifest {manifest_path(BACKUP)}: {len(manifest.offsets)} partitions")

    sent = publish(AFTER_BACKUP)
    answered = _answered(hub, admin, timeout)
    if answered is None:
        print("  the worker did not answer the events after the backup in time; see var/demo/worker.log")
        return 1
    before = register_state(hub)
    print(f"  more events    {len(sent)} sent after the backup, all answered")
    print(f"  before loss    {before.describe()}")

    worker.stop()
    for path in REGISTER.parent.glob(REGISTER.name + "*"):  # with its WAL: all of it is lost
        path.unlink()
    print(f"  loss           worker stopped, {REGISTER} deleted")

    restored = restore_backup(hub, BACKUP)
    after_restore = register_state(hub)
    print(f"  restore        {after_restore.describe()} (revision {restored.revision})")

    _wait_for(lambda: GroupAdmin(admin).members(settings.app_id) == 0, timeout)
    moves = recover(hub, admin, manifest)
    back = offsets_back(moves)
    print(
        f"  recover        as {admin.kafka_username}, by the manifest: {sum(back.values())} offsets back "
        f"on {len(back)} topics ({len(moves)} partitions read)"
    )
    for topic, count in sorted(back.items()):
        print(f"                   {topic}  {count} back")

    catching_up = WorkerProcess(settings, Path("var/demo/worker.log"), log_level="warn").start()
    try:
        started = time.monotonic()
        # Caught up: the group is back where it was before the loss, on every partition.
        caught_up = _committed_up_to(GroupAdmin(admin), settings.app_id, answered, timeout) is not None
        seconds = time.monotonic() - started
        after = register_state(hub)
        if caught_up:
            print(f"  catch-up       worker started again, caught up in {seconds:.1f} s: {after.describe()}")
        else:
            print(f"  catch-up       not caught up in {timeout:.0f} s: {after.describe()}")
        records = asyncio.run(_read_answers(admin, watched_from, timeout))
        again, same = receipts_again(hub, records, origin_of)
        print(f"  receipts       {again} sent again, {same} of them with the same outcome")
    finally:
        catching_up.stop()
    differences = after.differences(before)
    if differences:
        print(f"the register differs from what it was before the loss: {', '.join(differences)}")
        return 1
    print("the register equals what it was before the loss")
    return 0 if caught_up and again == same else 1


async def _read_answers(admin: Settings, start: dict[tuple[str, int], int], timeout: float) -> list[Any]:
    """Every receipt and dead letter since `start`, up to where their topics end now."""
    ends = await end_offsets(admin.kafka, sorted({topic for topic, _ in start}))
    expected = sum(ends[place] - offset for place, offset in start.items())
    return await read_from(admin.kafka, start, until=lambda rs: len(rs) >= expected, timeout=timeout)


Place = tuple[str, int]


def _answered(hub: Hub, admin: Settings, timeout: float) -> dict[Place, int] | None:
    """Wait until the consumer group has committed every message on the sources' topics and the
    dead letters (it commits an offset only once its outcome is in the register and answered);
    returns its committed offsets then, None if it did not get there in time. Not the address
    changes: the connector writes them in transactions, and a transaction's closing marker takes
    an offset that no consumer commits past (nothing comes on that topic after the demo's moves)."""
    groups = GroupAdmin(admin)
    on_broker = groups.topics()
    places = [
        (topic, partition)
        for topic in hub_topics(hub.names, hub.registry, on_broker)
        if topic != hub.names.address_changes
        for partition in on_broker[topic]
    ]
    ends = groups.offsets(places, OffsetSpec.latest())
    return _committed_up_to(groups, hub.settings.app_id, ends, timeout)


def _committed_up_to(
    groups: GroupAdmin, group: str, targets: dict[Place, int], timeout: float
) -> dict[Place, int] | None:
    """Wait until `group` has committed at least `targets`; returns its committed offsets then."""
    committed: dict[Place, int] = {}

    def reached() -> bool:
        nonlocal committed
        committed = groups.committed(group)
        return all(committed.get(place, 0) >= offset for place, offset in targets.items())

    return committed if _wait_for(reached, timeout) else None


def _wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True
