"""The crash guard's decisions (`hub.pipeline.crash_guard.plan`) over marks kept in memory: which
partitions a batch works through together, which one message at a time, and which marks are
stale. The same marks in the register are the e2e tests' (tests/e2e/test_hostile_input.py)."""

from __future__ import annotations

import datetime as dt

from hub.domain.events import Origin
from hub.domain.transfer import Message
from hub.pipeline.crash_guard import plan
from tests.fakes import FakeMarks

NOW = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)
FLOW = "registrations"


def batch(*places: tuple[int, int]) -> list[Message]:
    return [Message(Origin("topic", partition, offset), b"k", b"v") for partition, offset in places]


def test_a_batch_on_unmarked_partitions_is_marked_and_worked_through_together() -> None:
    marks = FakeMarks()
    messages = batch((0, 10), (0, 11), (1, 5))
    first = plan(marks, FLOW, messages, NOW)
    assert first.together == messages and first.one_by_one == []
    assert sorted((m.partition, m.first_offset, m.last_offset) for m in marks.marks_of(FLOW, ["topic"])) == [
        (0, 10, 11),
        (1, 5, 5),
    ]
    marks.remove(first.marks)  # done: the next batch finds nothing
    assert marks.marks_of(FLOW, ["topic"]) == []


def test_the_same_offsets_again_while_marked_are_taken_one_at_a_time_and_only_on_that_partition() -> None:
    marks = FakeMarks()
    plan(marks, FLOW, batch((0, 10), (0, 11), (1, 5)), NOW)  # the worker stopped: never finished
    again = batch((0, 11), (0, 12), (1, 6))
    second = plan(marks, FLOW, again, NOW)
    # Partition 0 overlaps its mark: suspected. Partition 1's mark ends before offset 6: it was
    # finished, its offsets committed since, and the mark is stale.
    assert second.one_by_one == again[:2] and second.together == again[2:]
    assert sorted((m.partition, m.first_offset) for m in marks.marks_of(FLOW, ["topic"])) == [(0, 10), (1, 6)]


def test_a_message_begun_again_and_again_counts_its_beginnings_until_it_is_finished() -> None:
    marks = FakeMarks()
    origin = Origin("topic", 0, 11)
    assert [marks.begin_one(FLOW, origin, NOW) for _ in range(3)] == [1, 2, 3]
    marks.finish_one(FLOW, origin)
    assert marks.begin_one(FLOW, origin, NOW) == 1


def test_another_flows_marks_are_not_this_flows() -> None:
    marks = FakeMarks()
    plan(marks, "addresses", batch((0, 10)), NOW)
    assert plan(marks, FLOW, batch((0, 10)), NOW).one_by_one == []
