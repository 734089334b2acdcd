"""The lag exporter's arithmetic and what it watches (hub.ops.lag_exporter); against a real broker in
tests/e2e/test_monitoring.py and tests/integration/test_trust_boundary.py."""

from __future__ import annotations

import dataclasses

from hub.config import Settings
from hub.kafka.topics import TopicNames
from hub.ops.lag_exporter import consumed_topics, group_lag
from hub.sources import SourceRegistry


def test_lag_is_the_end_offset_minus_the_committed_offset_of_each_partition() -> None:
    ends = {("a", 0): 10, ("a", 1): 5, ("b", 0): 7}
    committed = {("a", 0): 4, ("a", 1): 5, ("b", 0): 9}  # b/0: committed past a truncated end
    assert group_lag(ends, committed, {}) == {("a", 0): 6, ("a", 1): 0, ("b", 0): 0}


def test_a_partition_the_group_never_committed_is_behind_by_every_message_on_it() -> None:
    # The workers start at the earliest offset: what retention removed is not lag.
    assert group_lag({("a", 0): 10, ("a", 1): 3}, {}, {("a", 0): 4, ("a", 1): 0}) == {
        ("a", 0): 6,
        ("a", 1): 3,
    }


def test_the_exporter_watches_every_topic_the_workers_consume() -> None:
    settings = dataclasses.replace(Settings(), topic_prefix="x")
    registry = SourceRegistry.load(settings.sources_file)
    names = TopicNames("x")
    topics = consumed_topics(settings, registry)
    assert {names.registrations(s.id) for s in registry} <= set(topics)
    assert {names.address_changes, names.dead_letters} <= set(topics)
    assert not any(t == names.receipts(s.id) for s in registry for t in topics)  # written, not read
