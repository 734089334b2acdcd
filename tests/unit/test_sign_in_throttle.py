"""The sign-in throttle's arithmetic: the growing wait and when failures lock out."""

from __future__ import annotations

import datetime as dt

import pytest

from hub.config import Settings
from hub.support.access import AccessDenied, Throttle, check_new_password

T0 = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)


def minutes(*values: float) -> list[dt.datetime]:
    return [T0 + dt.timedelta(minutes=v) for v in values]


def test_the_wait_after_a_failure_doubles_with_each_recent_failure_up_to_the_cap() -> None:
    throttle = Throttle(first_delay=0.5, max_delay=8.0)
    assert [throttle.delay(n) for n in range(7)] == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert throttle.delay(10_000) == 8.0


def test_five_failures_within_the_window_lock_for_the_lockout_after_the_newest() -> None:
    throttle = Throttle(window=dt.timedelta(minutes=15), lockout=dt.timedelta(minutes=15))
    assert throttle.locked_until(minutes(4, 3, 2, 1, 0), limit=5) == T0 + dt.timedelta(minutes=19)
    assert throttle.locked_until(minutes(3, 2, 1, 0), limit=5) is None  # one short
    assert throttle.locked_until(minutes(20, 4, 3, 2, 1), limit=5) is None  # spread wider than the window


def test_the_throttle_is_read_from_the_settings() -> None:
    settings = Settings.from_env({"NIR_SIGNIN_FAILURE_LIMIT": "3", "NIR_SIGNIN_LOCKOUT_SECONDS": "60"})
    throttle = Throttle.from_settings(settings)
    assert (throttle.user_limit, throttle.lockout, throttle.address_limit) == (3, dt.timedelta(minutes=1), 50)


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("kari", "short", "12 characters"),
        ("kari.nordmann", "Kari.Nordmann", "not be the username"),
        ("kari.nordmann", " kari.nordmann ", "not be the username"),
    ],
)
def test_a_new_password_must_be_long_and_not_the_username(username: str, password: str, message: str) -> None:
    with pytest.raises(AccessDenied, match=message):
        check_new_password(username, password)
    check_new_password(username, "correct horse battery")
