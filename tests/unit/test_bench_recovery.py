"""The recovery benchmark reads its arguments, and checks the recovered register before it gives
a figure: a lost or doubled event ends the run (bench/recovery.py)."""

from __future__ import annotations

import dataclasses

import pytest

from bench.recovery import Result, check, parse

WHOLE = Result(
    before=1_000,
    events=5_000,
    restored=1_000,
    rows=6_000,
    held=0,
    first_rate=2_000.0,
    restore_seconds=1.0,
    recover_seconds=0.5,
    catch_up_seconds=2.5,
)


def test_the_benchmark_recovers_a_hundred_thousand_events_after_the_backup_unless_told_otherwise() -> None:
    assert (parse([]).events, parse([]).before) == (100_000, 10_000)
    assert (parse(["--events", "20000"]).events, parse(["--events", "20000"]).before) == (20_000, 10_000)
    assert (parse(["--quick"]).events, parse(["--quick"]).before) == (5_000, 1_000)


def test_the_benchmark_refuses_an_empty_stream() -> None:
    with pytest.raises(SystemExit):
        parse(["--events", "0"])


def test_a_recovery_that_got_every_event_back_once_passes_and_is_timed_in_total() -> None:
    check(WHOLE)
    assert WHOLE.total_seconds == 4.0
    assert WHOLE.catch_up_rate == 2_000.0  # the 5,000 events after the backup in 2.5 s


@pytest.mark.parametrize(
    ("wrong", "said"),
    [
        (dataclasses.replace(WHOLE, rows=5_999), "5,999 registrations after the catch-up, should be 6,000"),
        (dataclasses.replace(WHOLE, rows=6_001), "6,001 registrations after the catch-up, should be 6,000"),
        (dataclasses.replace(WHOLE, held=3), "3 events held"),
        (
            dataclasses.replace(WHOLE, restored=0),
            "the restored register holds 0 registrations, the backup's 1,000",
        ),
    ],
)
def test_a_lost_doubled_or_held_event_ends_the_benchmark(wrong: Result, said: str) -> None:
    with pytest.raises(SystemExit, match=said):
        check(wrong)
