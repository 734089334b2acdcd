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
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, bindparam, delete, insert, select
from sqlalchemy.orm import Session

from hub.domain.events import Origin
from hub.domain.transfer import Message
from hub.register.database import among_parameter, prebuilt
from hub.register.models import UnfinishedWork

Place = tuple[str, int]  # topic, partition
# The marks' table for Core statements: `plan` and `finish` run around every batch.
_MARKS = cast(Table, UnfinishedWork.__table__)


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


# `plan` and `finish` run around every batch: their statements are built once (`prebuilt` for
# those that differ by database).
_MARK = insert(_MARKS).returning(_MARKS.c.id)


def _marks_of(dialect: str) -> Any:
    """The marks of `flow` on `topics`."""
    columns = _MARKS.c
    return select(
        columns.id, columns.topic, columns.partition, columns.first_offset, columns.last_offset
    ).where(columns.flow == bindparam("flow"), among_parameter(dialect, columns.topic, "topics"))


def _unmark(dialect: str) -> Any:
    """The marks of `ids` go."""
    return delete(_MARKS).where(among_parameter(dialect, _MARKS.c.id, "ids"))


def _at(flow: str, place: Place) -> ColumnElement[bool]:
    return and_(
        UnfinishedWork.flow == flow, UnfinishedWork.topic == place[0], UnfinishedWork.partition == place[1]
    )


def plan(session: Session, flow: str, messages: Sequence[Message], now: dt.datetime) -> Plan:
    """Mark the batch's unsuspected partitions and say how to work through it (one transaction
    of three statements at most: this runs before every batch)."""
    ranges = _ranges(messages)
    found = session.execute(
        prebuilt(session, _marks_of), {"flow": flow, "topics": sorted({topic for topic, _ in ranges})}
    )
    stale: list[int] = []
    suspected: set[Place] = set()
    for mark_id, topic, partition, first, last in found:
        if (topic, partition) not in ranges:
            continue
        low, high = ranges[topic, partition]
        if last < low:  # wholly before this batch: finished, its messages' offsets committed since
            stale.append(mark_id)
        elif first <= high:
            suspected.add((topic, partition))
    if stale:
        finish(session, stale)
    new = [
        {
            "flow": flow,
            "topic": topic,
            "partition": partition,
            "first_offset": low,
            "last_offset": high,
            "attempts": 1,
            "began_at": now,
        }
        for (topic, partition), (low, high) in ranges.items()
        if (topic, partition) not in suspected
    ]
    ids = list(session.scalars(_MARK, new)) if new else []
    together = [m for m in messages if (m.origin.topic, m.origin.partition) not in suspected]
    one_by_one = [m for m in messages if (m.origin.topic, m.origin.partition) in suspected]
    return Plan(together, ids, one_by_one)


def begin_one(session: Session, flow: str, origin: Origin, now: dt.datetime) -> int:
    """Mark one message as begun once more; returns how many times it has been begun."""
    place = (origin.topic, origin.partition)
    mark = session.scalar(
        select(UnfinishedWork)
        .where(_at(flow, place), UnfinishedWork.first_offset == origin.offset)
        .where(UnfinishedWork.last_offset == origin.offset)
        .limit(1)
    )
    if mark is None:
        mark = UnfinishedWork(
            flow=flow,
            topic=origin.topic,
            partition=origin.partition,
            first_offset=origin.offset,
            last_offset=origin.offset,
            attempts=0,
            began_at=now,
        )
        session.add(mark)
    mark.attempts += 1
    mark.began_at = now
    session.flush()
    return mark.attempts


def finish(session: Session, marks: Sequence[int]) -> None:
    """The batch these marks are of is done."""
    if marks:
        session.execute(prebuilt(session, _unmark), {"ids": list(marks)})


def finish_one(session: Session, flow: str, origin: Origin) -> None:
    """This message is done, and with it every mark of its partition that ends at or before it."""
    place = (origin.topic, origin.partition)
    session.execute(
        delete(UnfinishedWork).where(_at(flow, place), UnfinishedWork.last_offset <= origin.offset)
    )
