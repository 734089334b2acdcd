"""The crash guard: how a worker that keeps dying on the same message finds it and sets it aside.

Everything a flow can foresee ends as an outcome; what it cannot (a fault in the hub, a library
that crashes, a process killed for its memory) ends the process, and Faust delivers the same
messages to the restarted worker. Without a guard that is a crash loop: every restart dies on the
same offset and the partition never moves again.

So, before a flow begins a batch, the guard marks in the register, per partition, the offsets it
is about to work on (`UnfinishedWork`), and removes the mark once the batch is done. A mark found
still there when the same offsets come again means the worker stopped while working on them. The
guard then takes that partition's messages one at a time, each with its own mark counting how
often it was begun. A message begun `limit` times without finishing is set aside unread: the flow
answers it as poison (`NIR-POISON`, dead-lettered with a ticket, so support staff can look at it
and replay it once the fault is fixed) and the partition moves on.

A mark can also be left by a graceful stop mid-batch, or by a rebalance while another worker still
finishes the batch; that costs one pass one at a time, and at most one count, so a message is set
aside only after it has really stopped the worker `limit - 1` times at least.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from hub.domain.transfer import Message
from hub.pipeline.ports import Marks
from hub.register.marks import NewMark

Place = tuple[str, int]  # topic, partition


@dataclass(frozen=True)
class Plan:
    """How to work through a batch: the messages of unsuspected partitions together (`marks` are
    their marks), then the suspected partitions' messages one at a time."""

    together: list[Message]
    marks: list[int]
    one_by_one: list[Message]


def _ranges(messages: Sequence[Message]) -> dict[Place, tuple[int, int]]:
    ranges: dict[Place, tuple[int, int]] = {}
    for m in messages:
        place = (m.origin.topic, m.origin.partition)
        low, high = ranges.get(place, (m.origin.offset, m.origin.offset))
        ranges[place] = (min(low, m.origin.offset), max(high, m.origin.offset))
    return ranges


def plan(marks: Marks, flow: str, messages: Sequence[Message], now: dt.datetime) -> Plan:
    """Mark the batch's unsuspected partitions and say how to work through it (one transaction
    of three statements at most: this runs before every batch)."""
    ranges = _ranges(messages)
    stale: list[int] = []
    suspected: set[Place] = set()
    for mark in marks.marks_of(flow, sorted({topic for topic, _ in ranges})):
        place = (mark.topic, mark.partition)
        if place not in ranges:
            continue
        low, high = ranges[place]
        if mark.last_offset < low:  # wholly before this batch: finished, its offsets committed since
            stale.append(mark.id)
        elif mark.first_offset <= high:
            suspected.add(place)
    marks.remove(stale)
    ids = marks.mark(
        flow,
        [
            NewMark(topic, partition, low, high)
            for (topic, partition), (low, high) in ranges.items()
            if (topic, partition) not in suspected
        ],
        now,
    )
    together = [m for m in messages if (m.origin.topic, m.origin.partition) not in suspected]
    one_by_one = [m for m in messages if (m.origin.topic, m.origin.partition) in suspected]
    return Plan(together, ids, one_by_one)
