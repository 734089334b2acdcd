"""The tests' authenticator app: completes a local account's sign-in with its second factor in
the register's own terms (`hub.support.access`), enrolling the user first if they have none, so
tests about what a signed-in user may do sign in as a real user does, never around the second
factor."""

from __future__ import annotations

import datetime as dt
import functools
import time
from typing import Any

import pyotp
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hub.register.models import User
from hub.register.unit_of_work import UnitOfWork
from hub.support.access import SignIn, Throttle, give_second_factor, pending_sign_in, sign_in
from hub.support.second_factor import Sealer

# The tests' own key: a register made by a test is sealed and opened with it.
SEALER = Sealer(b"tests' mask key, 32 bytes at least" * 2)


def code_for(
    sessions: sessionmaker[Session], username: str, now: dt.datetime, sealer: Sealer = SEALER
) -> str:
    """The enrolled user's app's code at `now`: of the current step, or of the next if the
    current one was used (accepted too: the clocks of a phone and a server differ a little)."""
    with sessions() as s:
        user = s.scalars(select(User).where(User.username == username)).one()
        secret = sealer.open(user.totp_secret or "", user.id)
        assert secret is not None, "the user has no second factor"
        app = pyotp.TOTP(secret)
        step = max(app.timecode(now), (user.totp_last_step or -1) + 1)
        return app.generate_otp(step)


def enrolment_code(
    sessions: sessionmaker[Session], pending: str, now: dt.datetime, sealer: Sealer = SEALER
) -> str:
    """The code of the secret a pending sign-in offers for enrolment, as the QR code gives it."""
    with UnitOfWork(sessions) as uow:
        found = pending_sign_in(uow, pending, now, sealer)
        assert found is not None and found.enrol_secret is not None
        return pyotp.TOTP(found.enrol_secret).at(now)


def signed_in(
    sessions: sessionmaker[Session],
    username: str,
    password: str,
    now: dt.datetime,
    *,
    client_address: str = "127.0.0.1",
    throttle: Throttle | None = None,
    sealer: Sealer = SEALER,
) -> str:
    """A session's token after a sign-in with password and second factor (enrolled if need be)."""
    units = functools.partial(UnitOfWork, sessions)
    first: SignIn = sign_in(
        units, username, password, now, client_address=client_address, sealer=sealer, throttle=throttle
    )
    assert first.token is not None, first.refusal
    code = (
        enrolment_code(sessions, first.token, now, sealer)
        if first.must_enrol
        else code_for(sessions, username, now, sealer)
    )
    done = give_second_factor(
        units, first.token, code, now, client_address=client_address, sealer=sealer, throttle=throttle
    )
    assert done.token is not None, done.refusal
    return done.token


# The authenticator apps of users signing in through a browser against a running worker (real
# time): by whatever key the test gives (its page's base and the username), the secret and the
# last time step whose code was given.
BROWSER_APPS: dict[str, tuple[pyotp.TOTP, int]] = {}
SECOND_FACTOR_PATH = "/support/login/second-factor"


def answer_second_factor(tab: Any, key: str) -> None:
    """After a right password in `tab` (Playwright): enrol with the secret the page shows, or give
    the app's code, waiting for the next one if this one was given already (a code is accepted
    once); then past the recovery codes shown after enrolling. Nothing if no second factor is asked."""
    if SECOND_FACTOR_PATH not in tab.url:
        return
    if tab.locator("#totp-secret").count():
        app, last = pyotp.TOTP(tab.inner_text("#totp-secret").replace(" ", "")), -1
    else:
        app, last = BROWSER_APPS[key]
    while app.timecode(dt.datetime.now(dt.UTC)) <= last:
        time.sleep(0.5)
    now = dt.datetime.now(dt.UTC)
    tab.fill("#code", app.at(now))
    tab.click("#confirm")
    BROWSER_APPS[key] = (app, app.timecode(now))
    if tab.locator("#recovery-codes").count():
        tab.click("#continue")
