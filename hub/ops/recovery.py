"""After the register's database is lost: backups with their manifest, and `hub recover`, which
moves the hub's consumer group back to where the restored register is complete.

The manifest is a JSON file beside the backup (`<backup>.manifest.json`), readable by whoever
restores: the register's migration revision, when and from which database the backup was taken,
the consumer group, and per partition of every topic the hub reads (each source's registrations,
Folkeregisteret's address changes, the dead letters) the offset from which the backup's
register is not proven complete (Kafka's sense of a committed offset: the next message to read).

That offset is the higher of two proofs, each "everything before it is in the register":
- the group's committed offsets, read before the snapshot: a worker commits an offset only after
  its message's outcome is committed in the register and answered;
- what the register itself proves (`hub.register.backup.positions`), read in the snapshot.
A partition neither proves anything of is read again from its beginning.

`recover` moves the group back to those offsets (never forward: an offset the group has not yet
reached stays), as the admin principal, and refuses while a member of the group is alive (Kafka
itself refuses to alter a group's offsets then). The worker then decides again what came after:
a registration the register holds is a redelivery and answered with the outcome it had, the rest
as if new. What no longer is on a topic (its retention ran out) cannot be read again: `recover`
says so, partition by partition, and starts such a partition at its first offset.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka.errors import GroupCoordinatorNotAvailableError, KafkaError
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from hub.bootstrap import Hub
from hub.config import Settings
from hub.domain.calendar import iso_utc
from hub.errors import BrokerUnavailable, ConfigurationError, RecoveryRefused
from hub.kafka.admin import OffsetReader, list_topics
from hub.kafka.principals import admin_result, admin_results
from hub.kafka.topics import TopicNames, read_by_the_hub
from hub.register.backup import Place, backup, has_data, restore
from hub.sources import SourceRegistry

log = logging.getLogger(__name__)

MANIFEST_FORMAT = 1
_TIMEOUT = 15.0


def manifest_path(backup_file: Path) -> Path:
    return backup_file.with_name(backup_file.name + ".manifest.json")


# Backups in a directory (`hub backup --into`, compose's scheduled backup) are named by when they
# were taken, in UTC, so their names sort as their times.
_BACKUP_NAME = "register-{:%Y%m%dT%H%M%S.%fZ}.backup"
_BACKUP_GLOB = "register-*.backup"


def timestamped_backup(directory: Path, now: dt.datetime) -> Path:
    """Where a backup taken `now` goes in `directory`."""
    return directory / _BACKUP_NAME.format(now.astimezone(dt.UTC))


def prune_backups(directory: Path, keep: int) -> list[Path]:
    """Remove all but the newest `keep` backups in `directory`, each with its manifest; returns
    those removed. Only whole backups count (a `.partial` being written is not one)."""
    backups = sorted(directory.glob(_BACKUP_GLOB))
    gone = backups[: max(0, len(backups) - keep)]
    for backup_file in gone:
        manifest_path(backup_file).unlink(missing_ok=True)
        backup_file.unlink()
    return gone


@dataclass(frozen=True)
class Manifest:
    revision: str | None
    taken_at: dt.datetime
    database: str
    group: str
    offsets: dict[Place, int]
    # The group's committed offsets read before the snapshot; None when the broker did not answer.
    group_committed: dict[Place, int] | None = field(default=None, compare=False)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": MANIFEST_FORMAT,
                "revision": self.revision,
                "taken_at": iso_utc(self.taken_at),
                "database": self.database,
                "consumer_group": self.group,
                "offsets": _by_topic(self.offsets),
                "group_committed": None if self.group_committed is None else _by_topic(self.group_committed),
            },
            indent=2,
            sort_keys=True,
        )

    @classmethod
    def read(cls, path: Path) -> Manifest:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"format {data.get('format')!r}, not {MANIFEST_FORMAT}")
            committed = data.get("group_committed")
            return cls(
                revision=data["revision"],
                taken_at=dt.datetime.fromisoformat(data["taken_at"]),
                database=data["database"],
                group=data["consumer_group"],
                offsets=_from_topics(data["offsets"]),
                group_committed=None if committed is None else _from_topics(committed),
            )
        except FileNotFoundError:
            raise ConfigurationError(f"there is no manifest at {path}") from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigurationError(f"the manifest {path} does not read: {exc}") from None


def _by_topic(offsets: dict[Place, int]) -> dict[str, dict[str, int]]:
    grouped: dict[str, dict[str, int]] = {}
    for (topic, partition), offset in sorted(offsets.items()):
        grouped.setdefault(topic, {})[str(partition)] = offset
    return grouped


def _from_topics(grouped: dict[str, dict[str, int]]) -> dict[Place, int]:
    return {(topic, int(p)): int(o) for topic, partitions in grouped.items() for p, o in partitions.items()}


def hub_topics(names: TopicNames, registry: SourceRegistry, existing: Iterable[str]) -> list[str]:
    """Every topic the hub's worker reads: each source's registrations (those in the registry,
    and any other on the broker that the worker subscribes to by pattern), the address changes
    and the dead letters."""
    existing = set(existing)
    read = set(read_by_the_hub(names, registry)) | set(names.matching_registrations(existing))
    return sorted(read & existing)


def complete_up_to(
    partitions: Iterable[Place], committed: dict[Place, int], proven: dict[Place, int]
) -> dict[Place, int]:
    """Per partition, the offset from which nothing is proven done: the higher of the group's
    committed offset (read before the snapshot) and what the register proves; 0 (the
    beginning) where neither proves anything."""
    return {place: max(committed.get(place, 0), proven.get(place, 0)) for place in partitions}


# --- backup ------------------------------------------------------------------------------------


async def take_backup(hub: Hub, out: Path) -> Manifest:
    """Back up the register to `out` and write its manifest beside it."""
    settings, names = hub.settings, hub.names
    committed: dict[Place, int] | None = None
    partitions: list[Place] = []
    try:
        # Before the snapshot: an offset committed now is of work the snapshot will hold.
        topics = hub_topics(names, hub.registry, await list_topics(settings.kafka, timeout=_TIMEOUT))
        async with OffsetReader(settings.kafka, timeout=_TIMEOUT) as reader:
            partitions = [(tp.topic, tp.partition) for tp in await reader.partitions(topics, wait=False)]
            try:
                committed = await reader.committed(settings.app_id)
            except GroupCoordinatorNotAvailableError:
                # A group that never committed has no coordinator yet. Were it the broker's
                # trouble instead, nothing is lost: the register's own proof still counts, and
                # a lower offset only means more is decided again, which is idempotent.
                committed = {}
    except (BrokerUnavailable, KafkaError, OSError) as exc:
        log.warning(
            "the broker did not answer (%s): the manifest holds what the register proves only",
            type(exc).__name__,
        )
    taken_at = hub.clock()
    snapshot = await asyncio.to_thread(backup, hub.engine, out, names.dead_letters)
    readable = set(partitions) | {p for p in snapshot.positions if _is_read(names, p[0])}
    manifest = Manifest(
        revision=snapshot.revision,
        taken_at=taken_at,
        database=snapshot.dialect,
        group=settings.app_id,
        offsets=complete_up_to(readable, committed or {}, snapshot.positions),
        group_committed=None if committed is None else {p: o for p, o in committed.items() if p in readable},
    )
    manifest_path(out).write_text(manifest.to_json() + "\n", encoding="utf-8")
    return manifest


def _is_read(names: TopicNames, topic: str) -> bool:
    return topic in (names.address_changes, names.dead_letters) or names.source_of(topic) is not None


# --- restore -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Restored:
    """What `restore_backup` left: the revision the backup's register was at, and the one it was
    upgraded to (None: it was at the newest already)."""

    revision: str | None
    upgraded_to: str | None


def restore_backup(hub: Hub, file: Path, *, force: bool = False) -> Restored:
    """Put the backup in `file` in place of the register (`hub restore`), after checking its
    manifest: a revision this hub knows, the same kind of database, and a register that holds
    nothing (unless `force`); then upgrade it to the newest revision if it is older."""
    from hub.register.migrate import current_revision, head_revision, known_revision, upgrade

    manifest = Manifest.read(manifest_path(file))
    if manifest.revision is None or not known_revision(manifest.revision):
        raise RecoveryRefused(
            f"the backup's register is at revision {manifest.revision or 'none'}, which this hub "
            f"does not know (its newest is {head_revision()}): restore it with the hub that took it"
        )
    engine = hub.engine
    if manifest.database != engine.dialect.name:
        raise RecoveryRefused(
            f"the backup is of a {manifest.database} register, NIR_DATABASE_URL is {engine.dialect.name}"
        )
    if has_data(engine) and not force:
        raise RecoveryRefused("the register holds data: restore over it only with --force")
    restore(engine, file)
    revision = current_revision(engine)
    if revision == head_revision():
        return Restored(revision, None)
    upgrade(engine)
    return Restored(revision, current_revision(engine))


# --- recover -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Move:
    """One partition of the group moved back: from its committed offset (None: it had none) to
    `to`. `lost` is the first offset that should have been read again and is no longer on the
    topic (its retention ran out), else None."""

    topic: str
    partition: int
    committed: int | None
    to: int
    lost: int | None = None


class GroupAdmin:
    """The admin principal's hand on the hub's consumer group (confluent-kafka's admin client:
    aiokafka's has no call to alter a group's offsets)."""

    def __init__(self, admin: Settings) -> None:
        self._admin = AdminClient({**admin.kafka.librdkafka(), "logger": log})  # type: ignore[dict-item]

    def topics(self) -> dict[str, list[int]]:
        try:
            metadata = self._admin.list_topics(timeout=_TIMEOUT)
        except Exception as exc:  # librdkafka's KafkaException: the broker did not answer
            raise BrokerUnavailable(f"Kafka does not answer: {type(exc).__name__}") from None
        return {name: sorted(t.partitions) for name, t in metadata.topics.items()}

    def members(self, group: str) -> int:
        futures = self._admin.describe_consumer_groups([group], request_timeout=_TIMEOUT)
        return len(admin_result(futures[group]).members)

    def committed(self, group: str) -> dict[Place, int]:
        futures = self._admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group)], request_timeout=_TIMEOUT
        )
        found = admin_result(futures[group]).topic_partitions or []
        return {(tp.topic, tp.partition): tp.offset for tp in found if tp.offset >= 0}

    def offsets(self, places: Iterable[Place], spec: Any) -> dict[Place, int]:
        wanted = {TopicPartition(topic, partition): spec for topic, partition in places}
        if not wanted:
            return {}
        futures = self._admin.list_offsets(wanted, request_timeout=_TIMEOUT)
        return {(tp.topic, tp.partition): admin_result(f).offset for tp, f in futures.items()}

    def move(self, group: str, offsets: dict[Place, int]) -> None:
        partitions = [
            TopicPartition(topic, partition, offset) for (topic, partition), offset in offsets.items()
        ]
        admin_results(
            self._admin.alter_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(group, partitions)], request_timeout=_TIMEOUT
            )
        )


def recover(hub: Hub, admin: Settings, manifest: Manifest | None, *, dry_run: bool = False) -> list[Move]:
    """Move the hub's consumer group back to the manifest's offsets (without one: to what the
    register proves done); returns the moves, made unless `dry_run`."""
    group = hub.settings.app_id
    if manifest is not None and manifest.group != group:
        raise RecoveryRefused(
            f"the manifest is of consumer group {manifest.group}, this hub's is {group} (NIR_APP_ID)"
        )
    groups = GroupAdmin(admin)
    alive = groups.members(group)
    if alive:
        raise RecoveryRefused(
            f"{alive} worker(s) of consumer group {group} are running: stop every worker first "
            "(Kafka moves a group's offsets only while it has no member)"
        )
    on_broker = groups.topics()
    places = [(t, p) for t in hub_topics(hub.names, hub.registry, on_broker) for p in on_broker[t]]
    if manifest is not None:
        targets = manifest.offsets
    else:
        with hub.unit_of_work() as uow:
            targets = uow.register.positions(hub.names.dead_letters)
    starts = groups.offsets(places, OffsetSpec.earliest())
    ends = groups.offsets(places, OffsetSpec.latest())
    committed = groups.committed(group)
    moves = []
    for place in places:
        target, lost = targets.get(place, 0), None
        if target < starts[place]:  # not proven in the register, and no longer on the topic
            target, lost = starts[place], target
        target = min(target, ends[place])
        current = committed.get(place)
        to = target if current is None else min(current, target)  # back, never forward
        moves.append(Move(place[0], place[1], current, to, lost))
    if not dry_run:
        groups.move(group, {(m.topic, m.partition): m.to for m in moves})
    return moves
