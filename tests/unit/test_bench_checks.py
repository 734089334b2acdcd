"""The throughput benchmark checks each consumer's own result: a lost event, or one answered or
written twice, ends the run instead of giving a figure (bench/throughput.py)."""

from __future__ import annotations

import collections
from typing import Any, cast

import pytest

from bench.common import RegisterState, WorkerRun
from bench.throughput import Result, Stream, check

# Ten events: eight accepted, two duplicates, one of them sent before what it depends on.
STREAM = Stream("mixed", cast(Any, None), collections.Counter(ACCEPTED=8, DUPLICATE=2), rows=8, held_first=1)


def result(rows: int = 8, held: int = 0, **outcomes: int) -> Result:
    got = collections.Counter({"ACCEPTED": 8, "DUPLICATE": 2, "HELD": 1, **outcomes})
    return Result(WorkerRun(10, 1.0, 100.0, cast(Any, None), got), RegisterState(rows, held, rows))


def test_a_run_that_got_exactly_what_the_stream_should_get_passes() -> None:
    check(STREAM, "hub", result())


@pytest.mark.parametrize(
    ("wrong", "said"),
    [
        (result(ACCEPTED=7), "ACCEPTED: 7 receipts, should be 8"),  # an event lost
        (result(ACCEPTED=9), "ACCEPTED: 9 receipts, should be 8"),  # an event answered twice
        (result(rows=9), "9 register rows, should be 8"),  # an event written twice
        (result(rows=7), "7 register rows, should be 8"),  # an event not written
        (result(HELD=0), "HELD: 0 receipts, should be at least 1"),  # the early event not held
        (result(held=1), "1 events still held"),  # a held event never released
    ],
)
def test_a_lost_or_doubled_event_ends_the_benchmark(wrong: Result, said: str) -> None:
    with pytest.raises(SystemExit, match=said):
        check(STREAM, "peer", wrong)
