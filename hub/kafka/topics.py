"""Every topic the hub uses, its name and its partitioning, in one place.

Layout (with the default prefix `nir`):

| topic                                  | key                | written by                  |
|----------------------------------------|--------------------|-----------------------------|
| nir.source.<source-id>.registrations   | person key         | that source's fagsystem     |
| nir.source.<source-id>.receipts        | source id          | the hub (one per event)     |
| nir.folkeregister.address-changes      | national id        | the Folkeregister connector |
| nir.folkeregister.connector-position   | "position"         | the Folkeregister connector |
| nir.dead-letters                       | original key       | the hub                     |

A source's principal may write only its own registrations topic and read only its own receipts
topic (the ACLs `hub.kafka.principals` makes), so the topic an event arrives on proves its source.

The dead-letter, registrations and receipts topics carry `retention.ms` from the retention policy
(NIR_RETENTION_DEAD_LETTER_DAYS, _REGISTRATIONS_DAYS, _RECEIPTS_DAYS; `hub.register.retention`
has the register's side): registrations are kept forever by default, because the register can be
rebuilt from them.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from hub.config import Settings
from hub.sources import SOURCE_ID_PATTERN, SourceRegistry

RECEIPT_PARTITIONS = 1  # keyed by source id, and each source has its own topic
DEAD_LETTER_PARTITIONS = 3
# A registration's timestamp is when the broker appended it, whatever time its producer gave:
# the deadlines count to when the hub received an event, not to the fagsystem's clock.
RECEIVED_BY_BROKER = (("message.timestamp.type", "LogAppendTime"),)
_DAY_MS = 24 * 60 * 60 * 1000


def durability(replication_factor: int) -> tuple[tuple[str, str], ...]:
    """`min.insync.replicas` for a topic on `replication_factor` brokers: min(2, that). The hub's
    producers write with acks=all, which means "all in-sync replicas", and a broker's default
    for how many must be in sync is 1: a write acknowledged while one broker alone held it is
    lost with that broker's disk. With 2, an acknowledged write is on two brokers; with three,
    one broker can be lost and the topic still takes writes."""
    return (("min.insync.replicas", str(min(2, replication_factor))),)


def retention_ms(days: int) -> tuple[tuple[str, str], ...]:
    """A topic's `retention.ms` from a retention policy's days (NIR_RETENTION_*_DAYS): 0 is
    infinite (-1). Always explicit: the broker's default (a week, unless the operator changed
    it) would otherwise decide silently how long personal data stays on a topic."""
    return (("retention.ms", str(days * _DAY_MS if days else -1)),)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    configs: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class TopicNames:
    """Topic names derived from the configured prefix."""

    prefix: str

    def registrations(self, source_id: str) -> str:
        return f"{self.prefix}.source.{source_id}.registrations"

    def receipts(self, source_id: str) -> str:
        return f"{self.prefix}.source.{source_id}.receipts"

    @property
    def address_changes(self) -> str:
        return f"{self.prefix}.folkeregister.address-changes"

    @property
    def connector_position(self) -> str:
        """Where the Folkeregister connector keeps its place in the feed (compacted), written in
        the same Kafka transaction as the address changes of each page."""
        return f"{self.prefix}.folkeregister.connector-position"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}.dead-letters"

    @property
    def source_states(self) -> str:
        """Each source's revocation state (`hub.sources.SourceState`), compacted: the gateway
        reads it from the start and follows it."""
        return f"{self.prefix}.registry.source-states"

    @functools.cached_property  # the pipeline asks for every message's source
    def registrations_pattern(self) -> re.Pattern[str]:
        """Matches every source's registrations topic; group 1 is the source id."""
        return re.compile(rf"^{re.escape(self.prefix)}\.source\.({SOURCE_ID_PATTERN})\.registrations$")

    def source_of(self, registrations_topic: str) -> str | None:
        """The source id a registrations topic belongs to, or None if it is not one."""
        match = self.registrations_pattern.match(registrations_topic)
        return match.group(1) if match else None

    def matching_registrations(self, existing: Iterable[str]) -> list[str]:
        return sorted(t for t in existing if self.registrations_pattern.match(t))


def _durable(settings: Settings, specs: list[TopicSpec]) -> list[TopicSpec]:
    return [
        dataclasses.replace(s, configs=s.configs + durability(settings.replication_factor)) for s in specs
    ]


def folkeregister_topics(settings: Settings) -> list[TopicSpec]:
    """The Folkeregister connector's topics (the only ones its principal can see)."""
    names = TopicNames(settings.topic_prefix)
    return _durable(
        settings,
        [
            TopicSpec(
                names.address_changes,
                settings.address_partitions,
                retention_ms(settings.retention_address_changes_days),
            ),
            TopicSpec(names.connector_position, 1, (("cleanup.policy", "compact"),)),
        ],
    )


def required_topics(settings: Settings, registry: SourceRegistry) -> list[TopicSpec]:
    """Every topic the hub needs for the sources in the registry."""
    names = TopicNames(settings.topic_prefix)
    specs = [
        TopicSpec(
            names.dead_letters, DEAD_LETTER_PARTITIONS, retention_ms(settings.retention_dead_letter_days)
        ),
        TopicSpec(names.source_states, 1, (("cleanup.policy", "compact"),)),
    ]
    for source in registry:
        specs.append(
            TopicSpec(
                names.registrations(source.id),
                settings.registration_partitions,
                RECEIVED_BY_BROKER + retention_ms(settings.retention_registrations_days),
            )
        )
        specs.append(
            TopicSpec(
                names.receipts(source.id), RECEIPT_PARTITIONS, retention_ms(settings.retention_receipts_days)
            )
        )
    return folkeregister_topics(settings) + _durable(settings, specs)


def read_by_the_hub(names: TopicNames, registry: SourceRegistry) -> list[str]:
    """The topics the hub's workers consume for the sources in the registry: what a register
    restored from a backup is rebuilt from (`hub recover`, which adds any other source's topic
    the worker subscribes to by pattern), so what their retention must keep for a backup
    interval."""
    return [names.address_changes, names.dead_letters, *(names.registrations(s.id) for s in registry)]
