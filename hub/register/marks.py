"""The marks of unfinished work (`UnfinishedWork`), as the crash guard keeps them
(`hub.pipeline.crash_guard` decides what they mean; this is how they are stored).

`marks_of`, `mark` and `remove` run around every batch: their statements are built once
(`prebuilt` for those that differ by database)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, bindparam, delete, insert, select
from sqlalchemy.orm import Session

from hub.domain.events import Origin
from hub.register.database import among_parameter, prebuilt
from hub.register.models import UnfinishedWork

_MARKS = cast(Table, UnfinishedWork.__table__)
_MARK = insert(_MARKS).returning(_MARKS.c.id)


@dataclass(frozen=True)
class Mark:
    """A batch's offsets on one partition, begun and not yet finished."""

    id: int
    topic: str
    partition: int
    first_offset: int
    last_offset: int


@dataclass(frozen=True)
class NewMark:
    topic: str
    partition: int
    first_offset: int
    last_offset: int


class MarksRepository:
    """The marks of unfinished work in one unit of work."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def marks_of(self, flow: str, topics: Sequence[str]) -> list[Mark]:
        """The marks of `flow` on `topics`."""
        found = self.session.execute(
            prebuilt(self.session, _marks_of), {"flow": flow, "topics": list(topics)}
        )
        return [Mark(*row) for row in found]

    def mark(self, flow: str, marks: Sequence[NewMark], now: dt.datetime) -> list[int]:
        """Mark these offsets as begun by `flow`; the marks' ids."""
        rows = [
            {
                "flow": flow,
                "topic": m.topic,
                "partition": m.partition,
                "first_offset": m.first_offset,
                "last_offset": m.last_offset,
                "attempts": 1,
                "began_at": now,
            }
            for m in marks
        ]
        return list(self.session.scalars(_MARK, rows)) if rows else []

    def remove(self, ids: Sequence[int]) -> None:
        """These marks go: their work is done."""
        if ids:
            self.session.execute(prebuilt(self.session, _unmark), {"ids": list(ids)})

    def begin_one(self, flow: str, origin: Origin, now: dt.datetime) -> int:
        """Mark one message as begun once more; how many times it has been begun."""
        mark = self.session.scalar(
            select(UnfinishedWork)
            .where(_at(flow, origin), UnfinishedWork.first_offset == origin.offset)
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
            self.session.add(mark)
        mark.attempts += 1
        mark.began_at = now
        self.session.flush()
        return mark.attempts

    def finish_one(self, flow: str, origin: Origin) -> None:
        """This message is done, and with it every mark of its partition that ends at or before it."""
        self.session.execute(
            delete(UnfinishedWork).where(_at(flow, origin), UnfinishedWork.last_offset <= origin.offset)
        )


def _marks_of(dialect: str) -> Any:
    columns = _MARKS.c
    return select(
        columns.id, columns.topic, columns.partition, columns.first_offset, columns.last_offset
    ).where(columns.flow == bindparam("flow"), among_parameter(dialect, columns.topic, "topics"))


def _unmark(dialect: str) -> Any:
    return delete(_MARKS).where(among_parameter(dialect, _MARKS.c.id, "ids"))


def _at(flow: str, origin: Origin) -> ColumnElement[bool]:
    return and_(
        UnfinishedWork.flow == flow,
        UnfinishedWork.topic == origin.topic,
        UnfinishedWork.partition == origin.partition,
    )
